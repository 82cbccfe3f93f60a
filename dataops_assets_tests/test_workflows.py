"""The GitHub workflows pass actionlint and zizmor, and CD deploys only a commit whose CI tests passed."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # the lock has PyYAML, not its stubs

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
# Job conditions that let a job run after a job it needs failed or was cancelled.
RUNS_AFTER_A_FAILURE = ("always()", "failure()", "cancelled()")


def lint(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.linters
def test_workflows_pass_actionlint() -> None:
    result = lint("actionlint")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.linters
def test_workflows_pass_zizmor() -> None:
    result = lint("zizmor", "--offline", ".github/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr


Job = dict[str, Any]


def _jobs(workflow: str) -> dict[str, Job]:
    return dict(yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"])


def _runs(job: Job, command: str) -> bool:
    return any(command in step.get("run", "") for step in job.get("steps", []))


def _needs(job: Job) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _needed(jobs: dict[str, Job], name: str) -> set[str]:
    """Every job ``name`` waits for, directly or through the jobs it needs."""
    found: set[str] = set()
    pending = _needs(jobs[name])
    while pending:
        needed = pending.pop()
        if needed not in found:
            found.add(needed)
            pending.extend(_needs(jobs[needed]))
    return found


TESTS = "$/.github/workflows/test.yml"  # the reusable workflow of the tests, called by ci.yml and cd.yml


def _runs_when_a_needed_job_failed(job: Job) -> bool:
    return any(call in str(job.get("if", "")) for call in RUNS_AFTER_A_FAILURE)


def _passes_when_a_step_failed(job: Job) -> bool:
    return job.get("continue-on-error") is True or any(s.get("continue-on-error") is True for s in job["steps"])


def test_the_reusable_tests_run_make_test_and_fail_when_it_fails() -> None:
    jobs = _jobs("test.yml")
    assert [name for name, job in jobs.items() if _runs(job, "make test")], "test.yml does not run make test"
    forgiving = [name for name, job in jobs.items() if _passes_when_a_step_failed(job)]
    assert not forgiving, f"{forgiving} pass even when the tests fail"


def test_ci_runs_the_reusable_tests() -> None:
    assert [name for name, job in _jobs("ci.yml").items() if job.get("uses") == TESTS]


def test_no_deploy_job_runs_unless_the_tests_passed() -> None:
    """Each job that runs ``dataops deploy`` needs, directly or not, the reusable tests of the same commit, and
    no job on the way runs after a failure."""
    cd = _jobs("cd.yml")
    gates = {name for name, job in cd.items() if job.get("uses") == TESTS}
    deploys = [name for name, job in cd.items() if _runs(job, "dataops deploy")]
    assert deploys, "cd.yml no longer runs dataops deploy"
    assert gates, "no job of cd.yml runs the tests"
    for deploy in deploys:
        chain = {deploy} | _needed(cd, deploy)
        assert gates & chain, f"{deploy} does not wait for the tests"
        unconditional = [name for name in chain if _runs_when_a_needed_job_failed(cd[name])]
        assert not unconditional, f"{unconditional} run even when a job they need failed"


def test_every_cd_job_checks_out_the_pushed_commit() -> None:
    """So the tests, the build and the deploys are of one commit: no checkout of this repository names a ref."""
    for name, job in (_jobs("cd.yml") | _jobs("test.yml")).items():
        for step in job.get("steps", []):
            inputs = step.get("with", {})
            if step.get("uses", "").startswith("actions/checkout@") and "repository" not in inputs:
                assert "ref" not in inputs, f"{name} checks out {inputs['ref']}, not the pushed commit"


def test_ci_checks_lineage_against_the_spec_of_the_locked_openlineage_client() -> None:
    """CI's copy of the official OpenLineage spec is the release the locked client was generated from."""
    locked = re.search(r"^openlineage-python==(\S+)", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None
    ci = (WORKFLOWS / "test.yml").read_text()
    checkout = re.search(r"repository: OpenLineage/OpenLineage\n\s+ref: (\S+)", ci)
    assert checkout is not None, "test.yml no longer checks out the OpenLineage spec"
    assert checkout.group(1) == locked.group(1)
    assert "OPENLINEAGE_SPEC_DIR:" in ci
