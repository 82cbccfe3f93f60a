"""Faults around ``dataops run``: signals, killed run processes, two first runs at once, a damaged, read-only or
full instance storage. Each runs the real command in a process of its own on a hand-made landing under
``tmp_path`` and looks at what the person sees (exit code, lines) and at what the instance keeps (no run left
unfinished)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dataops_assets import environments
from dataops_assets.environments import Settings, settings_for
from dataops_assets.files import exclusive_folder_lock
from dataops_assets_tests.fixtures.landing import write_landing
from dataops_assets_tests.fixtures.observability import TINY_BOUNDS, TINY_MONTH, write_tiny_landing
from dataops_assets_tests.fixtures.pipeline import FIXTURE_BOUNDS
from dataops_ops.launcher import LocalRunLauncher, reconcile_dead_runs, run_worker
from dataops_ops.runner import STOP_GRACE_SECONDS

pytestmark = pytest.mark.faults

DATAOPS = str(Path(sys.executable).with_name("dataops"))
_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
_TIMEOUT_S = 300.0


@dataclass
class Command:
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def wait(self, timeout_s: float = _TIMEOUT_S) -> int:
        return self.process.wait(timeout=timeout_s)

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()


def _environment(root: Path, bounds: dict[str, Any], max_runs: int) -> dict[str, str]:
    return {
        **os.environ,
        environments.ENV_VAR: "dev",
        environments.DATA_ROOT_VAR: str(root),
        environments.THRESHOLDS_VAR: json.dumps(bounds),
        environments.MAX_RUNS_VAR: str(max_runs),
    }


def _tiny_root(root: Path) -> tuple[Settings, dict[str, str]]:
    """One month (the tiny landing); months run one at a time."""
    settings = settings_for("dev", data_root=root)
    write_tiny_landing(settings.landing_dir)
    return settings, _environment(root, TINY_BOUNDS, 1)


def _two_month_root(root: Path) -> tuple[Settings, dict[str, str]]:
    """Two hand-made months; one at a time, so the second waits in the queue behind the first."""
    settings = settings_for("dev", data_root=root)
    write_landing(settings.landing_dir, ["2013-01", "2013-02"])
    return settings, _environment(root, FIXTURE_BOUNDS, 1)


def _start(env: dict[str, str], args: list[str], logs: Path, name: str = "dataops", prefix: list[str] = []) -> Command:  # noqa: B006
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen([*prefix, DATAOPS, *args], env=env, stdout=stdout, stderr=stderr)
    return Command(process, out, err)


@contextmanager
def _instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The command's instance, opened under its lock: opening it while the command creates it is the race."""
    with exclusive_folder_lock(settings.dagster_home):
        instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    with instance:
        yield instance


def _wait_for(command: Command, settings: Settings, condition: Callable[[dg.DagsterInstance], Any]) -> Any:
    """Poll the command's instance until ``condition`` returns something truthy; fail if the command ends first."""
    deadline = time.monotonic() + _TIMEOUT_S
    while time.monotonic() < deadline:
        assert command.process.poll() is None, f"dataops ended first:\n{command.stdout()}\n{command.stderr()}"
        if (settings.dagster_home / "history" / "runs.db").is_file():
            with _instance(settings) as instance:
                found = condition(instance)
                if found:
                    return found
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _started_month(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """A month's run whose process has recorded its id (it is executing)."""
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if run.job_name != "reference_tables" and run_worker(instance, run) is not None:
            return run
    return None


def _finished(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and run.is_finished


def _runs(settings: Settings) -> dict[str, dg.DagsterRunStatus]:
    with _instance(settings) as instance:
        return {run.tags.get("dagster/partition", run.job_name): run.status for run in instance.get_runs()}


def _assert_nothing_unfinished(settings: Settings) -> None:
    with _instance(settings) as instance:
        left = instance.get_runs(dg.RunsFilter(statuses=_UNFINISHED))
        assert not left, [(run.run_id, run.status) for run in left]


def test_sigterm_cancels_the_running_month_starts_no_other_and_exits_143(tmp_path: Path) -> None:
    settings, env = _two_month_root(tmp_path / "root")
    command = _start(env, ["run", "2013-01", "2013-02"], tmp_path / "logs")
    _wait_for(command, settings, _started_month)
    signaled = time.monotonic()
    command.process.send_signal(signal.SIGTERM)

    assert command.wait() == 128 + signal.SIGTERM
    seconds = time.monotonic() - signaled
    print(f"SIGTERM to exit: {seconds:.1f} s")
    assert seconds < STOP_GRACE_SECONDS + 20
    _assert_nothing_unfinished(settings)
    runs = _runs(settings)
    assert runs["reference_tables"] == dg.DagsterRunStatus.SUCCESS
    assert runs["2013-01"] == dg.DagsterRunStatus.CANCELED  # terminated through Dagster, not left STARTED
    assert runs.get("2013-02", dg.DagsterRunStatus.CANCELED) == dg.DagsterRunStatus.CANCELED  # never ran
    out = command.stdout().splitlines()
    assert any(line.startswith("dev 2013-01 canceled: ") for line in out), out
    assert out[-1] == "stopped by SIGTERM: published no month; not published 2013-01, 2013-02"
    assert "dataops: SIGTERM: no further month starts" in command.stderr()
    assert "Traceback" not in command.stderr()


def test_sigint_during_the_reference_tables_lets_them_finish_and_starts_no_month(tmp_path: Path) -> None:
    settings, env = _tiny_root(tmp_path / "root")
    command = _start(env, ["run", TINY_MONTH], tmp_path / "logs")
    started = dg.RunsFilter(job_name="reference_tables", statuses=[dg.DagsterRunStatus.STARTED])
    _wait_for(command, settings, lambda instance: instance.get_runs(started))
    command.process.send_signal(signal.SIGINT)

    assert command.wait() == 128 + signal.SIGINT
    _assert_nothing_unfinished(settings)
    assert _runs(settings) == {"reference_tables": dg.DagsterRunStatus.SUCCESS}  # no month was submitted
    out = command.stdout().splitlines()
    assert out[-1] == f"stopped by SIGINT: published no month; not published {TINY_MONTH}"
    assert "Traceback" not in command.stderr()
    assert not (settings.dagster_home / "daemon.pid").exists()


def test_a_killed_run_process_is_marked_failed_and_the_queued_month_still_runs(tmp_path: Path) -> None:
    settings, env = _two_month_root(tmp_path / "root")
    command = _start(env, ["run", "2013-01", "2013-02"], tmp_path / "logs")
    victim = _wait_for(command, settings, _started_month)
    with _instance(settings) as instance:
        worker = run_worker(instance, victim)
    assert worker is not None
    os.kill(worker.pid, signal.SIGKILL)
    killed = time.monotonic()
    finished = _wait_for(command, settings, lambda instance: _finished(instance, victim.run_id))
    print(f"killed run marked failed after {time.monotonic() - killed:.1f} s")
    assert finished

    assert command.wait() == 1  # one month failed; nobody had to mark anything by hand
    _assert_nothing_unfinished(settings)
    runs = _runs(settings)
    month = victim.tags["dagster/partition"]
    other = ({"2013-01", "2013-02"} - {month}).pop()
    assert (runs[month], runs[other]) == (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.SUCCESS)
    out = command.stdout()
    assert f"dev {month} FAILED" in out and f"dev {other} ok" in out
    # whichever saw the death first explains it: the code server (the exit signal) or run monitoring (the pid)
    reasons = (
        f"error Run execution process for {victim.run_id} was terminated by signal 9 (SIGKILL).",
        f"the run's process (pid {worker.pid}) is gone without ending the run",
    )
    assert any(reason in out for reason in reasons), out


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _started_run(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    """A run STARTED in the instance whose process recorded ``pid``, as a run worker does."""
    from dagster._core.events import EngineEventData

    run = instance.add_run(dg.DagsterRun(job_name="flights_pipeline", status=dg.DagsterRunStatus.STARTED))
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run


def test_a_run_whose_process_is_gone_is_failed_with_the_reason_at_start(tmp_path: Path) -> None:
    from dataops_ops.instance import open_instance

    settings = settings_for("dev", data_root=tmp_path)
    with open_instance(settings) as instance:
        assert instance.run_monitoring_enabled
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        dead, alive = _started_run(instance, _dead_pid()), _started_run(instance, os.getpid())
        assert instance.run_launcher.check_run_worker_health(alive).status.value == "RUNNING"
        assert instance.run_launcher.check_run_worker_health(dead).status.value == "FAILED"

        assert [run.run_id for run, _ in reconcile_dead_runs(instance)] == [dead.run_id]
        failed = instance.get_run_record_by_id(dead.run_id)
        assert failed is not None and failed.dagster_run.status == dg.DagsterRunStatus.FAILURE
        messages = [entry.message for entry in instance.all_logs(dead.run_id)]
        assert any("is gone without ending the run" in message for message in messages)
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED  # type: ignore[union-attr]
        instance.report_run_failed(alive)


def test_the_daemons_run_monitoring_fails_a_dead_run_within_its_poll_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataops_ops.instance import open_instance, running_daemon

    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # open_instance exports it; monkeypatch restores it
    settings = settings_for("dev", data_root=tmp_path)
    with open_instance(settings) as instance:
        dead = _started_run(instance, _dead_pid())
        with running_daemon(settings, instance):  # the daemon alone, as under `dataops ui` or a deployment
            started = time.monotonic()
            while instance.get_run_by_id(dead.run_id).status != dg.DagsterRunStatus.FAILURE:  # type: ignore[union-attr]
                assert time.monotonic() - started < 120, (settings.dagster_home / "daemon.log").read_text()[-2000:]
                time.sleep(0.5)
        print(f"dead run failed by the daemon {time.monotonic() - started:.1f} s after it started")


_OPEN_INSTANCE = """
import sys
from pathlib import Path
from dataops_assets.environments import settings_for
from dataops_ops.instance import open_instance
with open_instance(settings_for("dev", data_root=Path(sys.argv[1]))) as instance:
    print(len(instance.get_runs()))
"""


def test_commands_starting_at_once_on_a_new_root_create_the_instance_once(tmp_path: Path) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_INSTANCE, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(process.wait(timeout=120), *process.communicate()) for process in processes]
    assert all(code == 0 and out.strip() == "0" for code, out, _ in results), results


def test_two_first_runs_at_once_on_a_new_root_both_succeed(tmp_path: Path) -> None:
    settings, env = _tiny_root(tmp_path / "root")
    first, second = (_start(env, ["run", TINY_MONTH], tmp_path / "logs", name) for name in ("first", "second"))
    assert (first.wait(), second.wait()) == (0, 0), (first.stderr(), second.stderr())
    _assert_nothing_unfinished(settings)
    with _instance(settings) as instance:
        months = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": TINY_MONTH}))
        assert [run.status for run in months] == [dg.DagsterRunStatus.SUCCESS] * 2
    waited = [command for command in (first, second) if "is running: waiting for it to end" in command.stderr()]
    assert len(waited) == 1  # the second waited for the first instead of sharing (or killing) its daemon
    assert all("Traceback" not in command.stderr() for command in (first, second))


def _one_line_failure(command: Command) -> str:
    assert command.wait(120) == 1, command.stderr()
    errors = [line for line in command.stderr().splitlines() if line.startswith("dataops: ")]
    assert len(errors) == 1, command.stderr()
    assert "Traceback" not in command.stderr()
    return errors[0]


def test_a_corrupt_runs_db_is_one_line_naming_it_and_what_to_do(tmp_path: Path) -> None:
    settings, env = _tiny_root(tmp_path / "root")
    runs_db = settings.dagster_home / "history" / "runs.db"
    runs_db.parent.mkdir(parents=True)
    runs_db.write_bytes(b"not an SQLite file, written over by something else" * 20)

    line = _one_line_failure(_start(env, ["run", TINY_MONTH], tmp_path / "logs"))
    assert line.startswith(f"dataops: {runs_db} is not a readable SQLite database (corrupt): move it aside")
    log = settings.dagster_home / "dataops-errors.log"
    assert f"traceback in {log}" in line
    assert "file is not a database" in log.read_text()


def _mount_namespaces() -> list[tuple[str, list[str]]]:
    """The ways to a private mount namespace, best first: root needs no user namespace (which a kernel or AppArmor
    may refuse: GitHub's ubuntu-24.04 runners do until ci.yml's sysctl); anyone else maps themselves to root in one."""
    private = ["--mount", "--propagation", "private"]  # mounts made inside never show outside
    ways = [("as an unprivileged user in a user namespace", ["unshare", "--map-root-user", *private])]
    if os.geteuid() == 0:
        ways.insert(0, ("as root", ["unshare", *private]))
    return ways


@pytest.fixture
def namespace(tmp_path: Path) -> list[str]:
    """A shell command prefix in a private mount namespace where a test may mount a small or read-only file system;
    a skip names why no way could mount one."""
    if shutil.which("unshare") is None:
        pytest.skip("no `unshare` (util-linux) on this machine: cannot mount a small or read-only file system")
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    refusals = []
    for way, command in _mount_namespaces():
        mounted = subprocess.run(
            [*command, "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode == 0:
            return [*command, "sh", "-c"]
        refusals.append(f"{way}: {mounted.stderr.strip() or f'exit code {mounted.returncode}'}")
    pytest.skip(f"cannot mount a small or read-only file system in a private mount namespace ({'; '.join(refusals)})")


def test_a_read_only_data_root_is_one_line_naming_it(tmp_path: Path, namespace: list[str]) -> None:
    settings, env = _tiny_root(tmp_path / "root")
    root = tmp_path / "root"
    script = f'mount --bind "{root}" "{root}" && mount -o remount,ro,bind "{root}" && exec "$0" "$@"'
    line = _one_line_failure(_start(env, ["run", TINY_MONTH], tmp_path / "logs", prefix=[*namespace, script]))
    assert line.startswith(f"dataops: {settings.dagster_home}")
    assert "cannot write there (read-only file system or no permission)" in line


def test_a_full_disk_is_one_line_naming_it(tmp_path: Path, namespace: list[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # a 4 MiB file system holding the landing, then filled up to its last byte
    script = (
        f'mount -t tmpfs -o size=4m tmpfs "{root}" && "{sys.executable}" -c "{_LAND_TINY}" "{root}" && '
        f'(dd if=/dev/zero of="{root}/filler" bs=64k 2>/dev/null; true) && exec "$0" "$@"'
    )
    env = _environment(root, TINY_BOUNDS, 1)
    line = _one_line_failure(_start(env, ["run", TINY_MONTH], tmp_path / "logs", prefix=[*namespace, script]))
    assert "the disk is full (0.0 MiB free)" in line
    assert str(settings_for("dev", data_root=root).dagster_home) in line


_LAND_TINY = (
    "import sys; from pathlib import Path; from dataops_assets.environments import settings_for; "
    "from dataops_assets_tests.fixtures.observability import write_tiny_landing; "
    "write_tiny_landing(settings_for('dev', data_root=Path(sys.argv[1])).landing_dir)"
)


def test_storage_errors_are_told_apart_and_other_errors_are_not_taken_for_them(tmp_path: Path) -> None:
    import errno
    import sqlite3

    from dataops_ops.instance import storage_error

    settings = settings_for("dev", data_root=tmp_path)
    home = settings.dagster_home
    full = OSError(errno.ENOSPC, "No space left on device", str(home / "dagster.yaml"))
    read_only = sqlite3.OperationalError("attempt to write a readonly database")
    outdated = sqlite3.OperationalError("no such column: runs.backfill_id")
    expected = {
        full: f"{home / 'dagster.yaml'}: the disk is full (",
        read_only: f"{home}: cannot write there (read-only file system or no permission)",
        outdated: f"{home}: the Dagster instance's schema is older than this Dagster: run `DAGSTER_HOME={home} ",
    }
    for error, start in expected.items():
        problem = storage_error(error, settings)
        assert problem is not None and str(problem).startswith(start), (error, problem)
    # a disk I/O error with room left on the disk is not a full disk; a bug is not a storage failure
    assert storage_error(sqlite3.OperationalError("disk I/O error"), settings) is None
    assert storage_error(KeyError("core/flights"), settings) is None
