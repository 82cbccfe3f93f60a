"""The Dagster instance of an environment: its own DAGSTER_HOME, so asset keys never collide across environments;
its daemon, which dequeues and launches the runs that ``dataops run`` submits, and fails the runs whose process
died; and what a failure of its storage means for the person running the command."""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from filelock import FileLock, Timeout

from dataops_assets.environments import Settings
from dataops_assets.files import exclusive_folder_lock, write_atomic
from dataops_ops.processes import start_detached, stop_pid_file
from dataops_ops.run_processes import with_dagster_site

# Written (and rewritten) by dataops while this line heads the file; remove it to keep a hand-made dagster.yaml.
_MARKER = "# written by dataops: edit freely after removing this line"
# SQLite storage under the environment's folder, telemetry off; deploys write their own dagster.yaml. The queue
# launches up to max_concurrent_runs runs at once: months write their own partitions of the Delta tables.
_INSTANCE_YAML = """\
{marker}
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: {runs}
  dequeue_interval_seconds: 1
# Dagster's default launcher plus a health check (dataops_ops/launcher.py): the daemon's run monitoring marks a run
# whose process died failed within poll_interval_seconds; a run that never starts fails after start_timeout_seconds
# and one that ignores its termination is marked canceled after cancel_timeout_seconds.
run_launcher:
  module: dataops_ops.launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
  start_timeout_seconds: 180
  cancel_timeout_seconds: 60
  max_resume_run_attempts: 0
  cancellation_thread_poll_interval_seconds: 2
"""
# The daemon `dataops run` starts writes its pid here, in DAGSTER_HOME.
DAEMON_PID_FILE = "daemon.pid"
# The code location the daemon launches runs from: this interpreter, this package.
WORKSPACE_YAML = """\
load_from:
  - python_module:
      module_name: dataops_assets.definitions
      location_name: dataops
      executable_path: {python}
"""


def prepare_dagster_home(settings: Settings) -> str:
    """Create the environment's DAGSTER_HOME with dataops's ``dagster.yaml`` unless a hand-made one is there."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    wanted = _INSTANCE_YAML.format(marker=_MARKER, runs=settings.max_concurrent_runs)
    if not config.exists() or (config.read_text().startswith(_MARKER) and config.read_text() != wanted):
        write_atomic(config, wanted)  # a reader (the daemon, a run) never sees half of it
    os.environ["DAGSTER_HOME"] = str(home)
    return str(home)


def open_instance(settings: Settings) -> dg.DagsterInstance:
    """The environment's instance. Its storage (the SQLite schema) is created under a lock on DAGSTER_HOME: two
    commands starting at once on a brand-new data root would otherwise both create it, and one would fail."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    with exclusive_folder_lock(settings.dagster_home):
        return dg.DagsterInstance.from_config(prepare_dagster_home(settings))


@contextmanager
def exclusive_run(
    settings: Settings, on_wait: Callable[[Path], None], should_stop: Callable[[], bool]
) -> Iterator[bool]:
    """Hold the environment's run lock for the block (one ``dataops run`` at a time owns the daemon it starts);
    ``on_wait`` hears of a wait once. Yields False when ``should_stop`` turned true before the lock was taken."""
    lock = FileLock(settings.dagster_home / "dataops-run.lock")
    waited = False
    while True:
        try:
            lock.acquire(timeout=0 if not waited else 1)
            break
        except Timeout:
            if should_stop():
                yield False
                return
            if not waited:
                on_wait(Path(lock.lock_file))
                waited = True
    try:
        yield True
    finally:
        lock.release()


@contextmanager
def running_daemon(settings: Settings, instance: dg.DagsterInstance, leave_running: bool = False) -> Iterator[None]:
    """The environment's daemon for the block: ours unless one (``make ui``, a deployment) is already healthy. With
    ``leave_running`` ours outlives the block (a preview's, stopped by ``preview down`` by its pid file)."""
    from dagster._daemon.controller import all_daemons_healthy

    pid_file = settings.dagster_home / DAEMON_PID_FILE
    if pid_file.exists():  # ours, left behind by a killed ``dataops run``: its heartbeats would still look alive
        stop_pid_file(pid_file)
        instance.wipe_daemon_heartbeats()
    if all_daemons_healthy(instance, heartbeat_tolerance_seconds=60):
        yield
        return
    workspace = settings.dagster_home / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML.format(python=sys.executable))
    start_detached(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(workspace)],
        log_file=settings.dagster_home / "daemon.log",
        cwd=settings.dagster_home,
        env=with_dagster_site({**os.environ, "DAGSTER_HOME": str(settings.dagster_home)}),
        pid_file=pid_file,
    )
    try:
        yield
    finally:
        if not leave_running:
            stop_pid_file(pid_file)
            instance.wipe_daemon_heartbeats()  # so the next ``dataops run`` does not take it for a live daemon


class StorageError(RuntimeError):
    """The instance's or the lake's storage failed (disk full, read-only, corrupt, wrong version): the message is
    one line naming the file and what to do."""


# The SQLite files of a local instance (the run shards beside index.db are per run, never shared).
_SQLITE_FILES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
_DISK_FULL = ("database or disk is full", "no space left on device", "disk i/o error")
_READ_ONLY = ("readonly database", "read-only file system", "unable to open database file", "permission denied")
_CORRUPT = ("file is not a database", "database disk image is malformed")
_OUTDATED = ("no such table", "no such column", "instance migrate")
_FULL_BELOW_BYTES = 16 * 1024**2  # a "disk I/O error" with less free than this is a full disk


def storage_error(error: BaseException, settings: Settings) -> StorageError | None:
    """What ``error`` means for the person running the command, if it is a failure of the storage; else None."""
    home = settings.dagster_home
    text = str(error).lower()
    path = Path(error.filename) if isinstance(error, OSError) and error.filename else None
    code = error.errno if isinstance(error, OSError) else None
    if code in (errno.ENOSPC, errno.EDQUOT) or (any(s in text for s in _DISK_FULL) and _nearly_full(home)):
        return StorageError(
            f"{path or home}: the disk is full ({_free(home)} free): free space on it (or move "
            f"{settings.data_root} to a larger disk) and run again; months reported ok above are published"
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or any(s in text for s in _READ_ONLY):
        return StorageError(
            f"{path or home}: cannot write there (read-only file system or no permission): make "
            f"{settings.data_root} writable (remount it read-write) or set DATAOPS_DATA_ROOT to a writable folder"
        )
    if any(s in text for s in _CORRUPT):
        damaged = path or next(iter(corrupt_databases(home)), home / _SQLITE_FILES[0])
        return StorageError(
            f"{damaged} is not a readable SQLite database (corrupt): move it aside (`mv {damaged} "
            f"{damaged}.corrupt`) and run again; the run history in it is lost, the lake's tables are not"
        )
    if any(s in text for s in _OUTDATED):
        return StorageError(
            f"{home}: the Dagster instance's schema is older than this Dagster: run "
            f"`DAGSTER_HOME={home} {Path(sys.executable).with_name('dagster')} instance migrate`, then run again"
        )
    return None


def corrupt_databases(home: Path) -> list[Path]:
    """The instance's SQLite files that SQLite cannot read."""
    damaged = []
    for name in _SQLITE_FILES:
        path = home / name
        if not path.is_file():
            continue
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                connection.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError:
            damaged.append(path)
    return damaged


def log_traceback(error: BaseException, settings: Settings) -> Path | None:
    """Append the traceback to ``dataops-errors.log`` in DAGSTER_HOME (in the temporary folder when that cannot be
    written: a full or read-only disk); returns where it went."""
    text = "".join(traceback.format_exception(error))
    for folder in (settings.dagster_home, Path(tempfile.gettempdir())):
        path = folder / ("dataops-errors.log" if folder == settings.dagster_home else f"dataops-{settings.name}.log")
        try:
            with path.open("a", encoding="utf-8") as log:
                log.write(text + "\n")
            return path
        except OSError:
            continue
    return None


def _nearly_full(home: Path) -> bool:
    return _free_bytes(home) < _FULL_BELOW_BYTES


def _free(home: Path) -> str:
    return f"{_free_bytes(home) / 1024**2:.1f} MiB"


def _free_bytes(home: Path) -> int:
    for folder in (home, *home.parents):  # the nearest folder that exists
        if folder.exists():
            return os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    return 0
