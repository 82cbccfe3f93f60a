"""Commands run to completion, and services started detached (own session, log file, pid file) and stopped by
process id: SIGTERM to the service's process group, then SIGKILL after a grace period; SIGINT and SIGTERM of a
command turned into an exception (``interrupt_on_signals``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType

import psutil

from dataops_ops.deploy.errors import ServiceError


def run(command: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    """Run ``command`` to completion; its standard output, or ServiceError with the end of its standard error."""
    completed = subprocess.run(
        list(command), capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=600
    )
    if completed.returncode != 0:
        raise ServiceError(f"`{' '.join(command[:4])} …` failed: {completed.stderr.strip()[-800:]}")
    return completed.stdout


def start_detached(command: Sequence[str], log_file: Path, cwd: Path, env: Mapping[str, str], pid_file: Path) -> int:
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
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def is_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def stop(pid: int, grace_s: float = 10.0) -> None:
    """SIGTERM the process's group (the session it leads: e.g. the code server and the runs it spawned), wait up
    to ``grace_s``, then SIGKILL what is left of the group. Only ever called with ids this package started."""
    if not is_alive(pid):
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)  # the service leads its own session, so its group id is its pid
        deadline = time.monotonic() + wait_s
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it when it is this process's child


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


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout_s: float, pid: int, what: str) -> None:
    """Wait until 127.0.0.1:``port`` accepts connections; fail early if ``pid`` exits."""
    deadline = time.monotonic() + timeout_s
    while not port_open(port):
        if not is_alive(pid):
            raise ServiceError(f"{what} (pid {pid}) exited before listening on 127.0.0.1:{port}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f}s")
        time.sleep(0.2)


class Interrupted(BaseException):
    """SIGINT or SIGTERM, raised where the command was (a BaseException, so no ``except Exception`` swallows it);
    the exit code is 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """While the block runs, the first SIGINT or SIGTERM raises ``Interrupted``; later ones are ignored, so the
    cleanup it starts (terminating runs, restoring a release) is not cut short."""
    received: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if received:
            os.write(2, f"dataops: {signal.Signals(signum).name} again: still cleaning up\n".encode())
            return
        received.append(signum)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
