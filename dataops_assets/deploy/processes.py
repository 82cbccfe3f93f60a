"""Services started detached (own session, log file, pid file) and stopped by process id: SIGTERM, then SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ServiceError(RuntimeError):
    """A service did not start, or did not answer in time."""


def start_detached(
    command: Sequence[str], log_file: Path, cwd: Path, env: Mapping[str, str], pid_file: Path | None = None
) -> int:
    """Start ``command`` in its own session (it outlives the caller); returns the process id."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{process.pid}\n")
    return process.pid


def is_alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        finished = 0  # not our child: fall through to a signal probe
    if finished == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def stop(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process's group (the session it leads: the code server and the runs it spawned), wait up to
    ``grace_s``, then SIGKILL. Only ever called with ids this package started."""
    if not is_alive(pid):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            _signal_group(pid, signal.SIGKILL)  # stragglers of the group
            return
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def stop_pid_file(pid_file: Path, grace_s: float = 10.0) -> None:
    pid = read_pid(pid_file)
    if pid is not None:
        stop(pid, grace_s)
    pid_file.unlink(missing_ok=True)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout_s: float, pid: int | None = None, what: str = "service") -> None:
    """Wait until ``host:port`` accepts connections; fail early if ``pid`` exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if pid is not None and not is_alive(pid):
            raise ServiceError(f"{what} (pid {pid}) exited before listening on {host}:{port}")
        time.sleep(0.2)
    raise ServiceError(f"{what} did not listen on {host}:{port} within {timeout_s:.0f}s")


def wait_port_free(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while port_open(host, port):
        if time.monotonic() > deadline:
            raise ServiceError(f"{host}:{port} is still taken by another process")
        time.sleep(0.1)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the service leads its own session, so its group id is its pid
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _is_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] == "Z"
