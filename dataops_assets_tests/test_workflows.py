"""The GitHub workflows pass actionlint and zizmor; each linter also proves it fails on a broken workflow."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BROKEN = """\
on: pull_request_target
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo ${{ github.event.foo }
"""


def lint(tool: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.linters
def test_workflows_pass_actionlint() -> None:
    result = lint("actionlint")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linters
def test_workflows_pass_zizmor() -> None:
    result = lint("zizmor", "--offline", ".github/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


@pytest.fixture
def broken_repo(tmp_path: Path) -> Path:
    workflow = tmp_path / ".github" / "workflows" / "broken.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(BROKEN)
    return tmp_path


@pytest.mark.linters
def test_actionlint_fails_on_a_broken_workflow(broken_repo: Path) -> None:
    result = lint("actionlint", ".github/workflows/broken.yml", cwd=broken_repo)
    assert result.returncode == 1  # 1: findings; 2 and 3 are usage and project errors
    assert "broken.yml:10:" in result.stdout  # the unterminated expression


@pytest.mark.linters
def test_zizmor_fails_on_an_unpinned_injectable_workflow(broken_repo: Path) -> None:
    result = lint("zizmor", "--offline", ".github/", cwd=broken_repo)
    assert result.returncode != 0
    assert "template-injection" in result.stdout + result.stderr


def test_ci_checks_lineage_against_the_spec_of_the_locked_openlineage_client() -> None:
    """CI's copy of the official OpenLineage spec is the release the locked client was generated from."""
    locked = re.search(r"^openlineage-python==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    checkout = re.search(r"repository: OpenLineage/OpenLineage\n\s+ref: (\S+)", ci)
    assert checkout is not None, "ci.yml no longer checks out the OpenLineage spec"
    assert checkout.group(1) == locked.group(1)
    assert "OPENLINEAGE_SPEC_DIR:" in ci
