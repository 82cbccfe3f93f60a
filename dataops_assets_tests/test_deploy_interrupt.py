"""A deploy stopped by SIGINT or SIGTERM while its gate runs.

The end-to-end test runs a real ``dataops deploy`` of release B over release A, served in a dev environment on
127.0.0.1 (its own webserver, SQLite instance and code server; no PostgreSQL). B adds a check that sleeps, so B's
first gate run stays STARTED; once the instance shows it so, the test signals the ``dataops`` process and then
checks from the outside: the exit code, the run's status in the instance, what the code server and the webserver
serve, the ``current`` pointer and the audit log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dataops_assets.environments import DATA_ROOT_VAR
from dataops_assets_tests.fixtures.deploy import SLOW_CHECK_ASSET, SLOW_CHECK_NAME, free_port, release_wheel
from dataops_ops.deploy import deploy as operations
from dataops_ops.deploy.artifact import wheel_version
from dataops_ops.deploy.environment_root import EnvironmentRoot, Release
from dataops_ops.deploy.services import served_python, start_webserver, stop_services
from dataops_ops.processes import Interrupted, interrupt_on_signals, stop

pytestmark = pytest.mark.faults

VERSION_TAG = "dataops/version"  # how the gate tags its runs
GATE_RUN_STARTED_WITHIN_S = 300  # install, code server start, landing check, run worker start, on 2 busy cores
STOPPED_WITHIN_S = 120  # terminate the run, wait for CANCELED, restart A's code server, reload
_ASSET_CHECKS = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
  ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name } } } } } }"""


def test_the_first_signal_raises_interrupted_and_later_ones_wait_for_the_cleanup() -> None:
    before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))  # whatever earlier code installed
    with pytest.raises(Interrupted) as raised, interrupt_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert (raised.value.name, raised.value.exit_code) == ("SIGTERM", 143)
    with interrupt_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Interrupted as interrupt:
            os.kill(os.getpid(), signal.SIGINT)  # during the cleanup: ignored
            assert interrupt.exit_code == 130
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # the handlers are put back


@pytest.fixture(scope="module")
def dev_serving_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvironmentRoot]:
    """dev with release A (this checkout) deployed, its gate passed, and served; the services stopped by pid."""
    env = EnvironmentRoot(tmp_path_factory.mktemp("environments"), "dev")
    env.init(webserver_port=free_port(), code_server_port=free_port())  # the gate: the first month
    webserver = start_webserver(env)
    try:
        operations.deploy(env.root, "dev", release_wheel(tmp_path_factory, "good"), log=lambda line: None)
        yield env
    finally:
        stop_services(env)
        stop(webserver)


@pytest.mark.e2e
def test_a_deploy_sigterm_during_its_gate_cancels_the_gate_run_and_serves_the_previous_release_again(
    dev_serving_a: EnvironmentRoot, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    env, signum = dev_serving_a, signal.SIGTERM  # what `kill` and a container stop send; SIGINT takes the same path
    name = signum.name
    release_a = env.current()
    assert release_a is not None
    wheel_b = release_wheel(tmp_path_factory, "slow")
    version_b, audited = wheel_version(wheel_b), len(env.audit_records())
    with dg.DagsterInstance.from_config(str(env.dagster_home)) as instance:
        earlier_runs = {run.run_id for run in instance.get_runs(dg.RunsFilter(tags={VERSION_TAG: version_b}))}
        with _dataops_deploy(env, wheel_b, tmp_path) as deploy:
            gate_run = _started_gate_run(instance, version_b, deploy)
            assert SLOW_CHECK_NAME in _served_checks(env)  # B is served while its gate runs
            os.kill(deploy.pid, signum)
            signaled = time.monotonic()
            code = deploy.wait(timeout=STOPPED_WITHIN_S)
            print(f"\n{name}: dataops deploy exited {code} {time.monotonic() - signaled:.1f}s after the signal")
        runs = instance.get_runs(dg.RunsFilter(tags={VERSION_TAG: version_b}))

    stderr = (tmp_path / "deploy.err").read_text()
    assert code == 128 + signum, stderr
    assert stderr.strip().endswith(f"dataops: stopped by {name}"), stderr
    gate_runs = {run.run_id: run.status for run in runs if run.run_id not in earlier_runs}
    assert gate_runs == {gate_run: dg.DagsterRunStatus.CANCELED}
    _assert_serves(env, release_a)
    [record] = env.audit_records()[audited:]
    assert (record["event"], record["status"], record["version"]) == ("deploy", "rolled_back", version_b), record
    assert record["reason"] == f"interrupted by {name}", record
    assert (record["runs"], record["restored"]) == ([f"{gate_run}: CANCELED"], release_a.version), record


@contextlib.contextmanager
def _dataops_deploy(env: EnvironmentRoot, wheel: Path, out: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dataops deploy`` of ``wheel`` to ``env`` in its own process (and session); its output in
    ``out``/deploy.{out,err}. Should the test fail before it exits, it is stopped by its pid."""
    command = [str(Path(sys.executable).with_name("dataops")), "deploy", "--env", env.name]
    command += ["--artifact", str(wheel), "--root", str(env.root)]
    with (out / "deploy.out").open("wb") as stdout, (out / "deploy.err").open("wb") as stderr:
        deploy = subprocess.Popen(
            command, stdout=stdout, stderr=stderr, env={**os.environ, DATA_ROOT_VAR: str(out)}, start_new_session=True
        )
    try:
        yield deploy
    finally:
        stop(deploy.pid)


def _started_gate_run(instance: dg.DagsterInstance, version: str, deploy: subprocess.Popen[bytes]) -> str:
    """The id of the release's gate run once the instance has it STARTED."""
    deadline = time.monotonic() + GATE_RUN_STARTED_WITHIN_S
    started = dg.RunsFilter(tags={VERSION_TAG: version}, statuses=[dg.DagsterRunStatus.STARTED])
    while not (runs := instance.get_runs(started)):
        assert deploy.poll() is None, f"dataops deploy exited {deploy.returncode} before its gate run started"
        assert time.monotonic() < deadline, f"no gate run of {version} STARTED within {GATE_RUN_STARTED_WITHIN_S}s"
        time.sleep(0.5)
    [run] = runs
    return run.run_id


def _served_checks(env: EnvironmentRoot) -> set[str]:
    """The checks on the slow check's asset, as the webserver serves the location now (no reload asked)."""
    body = {"query": _ASSET_CHECKS, "variables": {"key": {"path": list(SLOW_CHECK_ASSET)}}}
    request = urllib.request.Request(
        f"http://127.0.0.1:{env.config().webserver_port}/graphql",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        node = json.load(response)["data"]["assetNodeOrError"]
    return {check["name"] for check in node["assetChecksOrError"]["checks"]}


def _assert_serves(env: EnvironmentRoot, release: Release) -> None:
    """The code server runs the release's interpreter, the webserver shows its definitions, ``current`` names it."""
    served = served_python(env.config().code_server_port)
    assert served is not None and Path(served).is_relative_to(release.path), served
    assert SLOW_CHECK_NAME not in _served_checks(env)
    assert env.current() == release and env.current_link.resolve() == release.path
