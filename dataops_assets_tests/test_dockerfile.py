"""The code location image, short of building it (no container engine here): the Dockerfile passes hadolint; the
image's artifact check, run as written in the Dockerfile, accepts a wheel that matches manifest.json and refuses one
that does not; and the image serves the module and Python version the rest of the project uses."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dataops_ops.deploy.artifact import ArtifactFile, Manifest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "hadolint"), "--no-color", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.linters
def test_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def _artifact_check_script() -> str:
    """The Python the image runs to compare the wheel with manifest.json (between ``<<'PY'`` and ``PY``)."""
    found = re.search(r"<<'PY'\n(.*?)\nPY\n", DOCKERFILE.read_text(), re.DOTALL)
    assert found is not None, "the Dockerfile no longer checks the wheel against manifest.json"
    return found.group(1)


def _dist(folder: Path, wheel_bytes: bytes, listed_bytes: bytes) -> Path:
    folder.mkdir()
    wheel = folder / "dataops_assets-1.2.3-py3-none-any.whl"
    wheel.write_bytes(wheel_bytes)
    sdist = ArtifactFile("dataops_assets-1.2.3.tar.gz", "0" * 64, 1)
    entry = ArtifactFile(wheel.name, hashlib.sha256(listed_bytes).hexdigest(), len(listed_bytes))
    manifest = Manifest(version="1.2.3", files=(entry, sdist), built_at="2026-11-25T00:00:00+00:00")
    (folder / "manifest.json").write_text(manifest.to_json())
    return folder


@pytest.mark.parametrize("matches", [True, False])
def test_the_image_refuses_a_wheel_that_does_not_match_its_manifest(tmp_path: Path, matches: bool) -> None:
    built = b"the wheel CD built"
    dist = _dist(tmp_path / "dist", built if matches else b"a wheel changed on the way", built)
    result = subprocess.run(
        [sys.executable, "-c", _artifact_check_script()],
        cwd=dist,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if matches:
        assert result.returncode == 0, result.stderr
        assert "matches manifest.json (version 1.2.3)" in result.stdout
    else:
        assert result.returncode == 1
        assert f"sha256 {hashlib.sha256(b'a wheel changed on the way').hexdigest()} != manifest" in result.stderr


def test_the_image_serves_the_project_module_on_the_ci_python() -> None:
    text = DOCKERFILE.read_text()
    assert '"-m", "dataops_assets.definitions"' in text  # the module workspace.yaml and pyproject.toml load
    assert "module_name: dataops_assets.definitions" in (ROOT / "workspace.yaml").read_text()
    assert "--require-hashes" in text and "COPY requirements.lock" in text
    image_python = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)-", text)
    assert image_python is not None
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert f'python-version: "{image_python.group(1)}"' in ci
