"""Timing and memory of one command, measured from outside, as a user would see it.

``run_measured`` starts the command, samples the resident memory (RSS) of its whole process tree every
``SAMPLE_INTERVAL`` seconds with psutil (the command, and every process it starts: run workers, a daemon), and
reports:

- ``wall_seconds``: from start to exit, interpreter start and imports included;
- ``peak_process_mib``: the largest RSS of any one process of the tree (the memory goal is per process);
- ``peak_tree_mib``: the largest sum of RSS over the tree at one instant (what the machine had to hold);
- ``cpu_seconds``: user + system time of the command and its descendants: each process's own CPU time as last
  sampled, summed (a daemon started in its own session is never waited for by the command, so the kernel's
  children accounting would miss it), or the kernel's figure for waited-for children when that is larger;
- ``other_cpu_share``: the share of the machine's CPU that other processes used meanwhile (a noisy neighbour
  makes every number slower; the report shows it).

Sampling from outside never competes with the measured processes for their GIL; a process living shorter than
one interval may be missed, which only matters for tiny helpers. A command still running after ``timeout_s`` is
stopped, with every process of its tree (by process id: SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

SAMPLE_INTERVAL = 0.05
STOP_GRACE_SECONDS = 10.0
_MIB = 1024 * 1024


class CommandFailedError(RuntimeError):
    """A measured command exited non-zero; the message ends with the last lines of its log."""


@dataclass
class Measured:
    command: list[str]
    exit_code: int
    wall_seconds: float
    cpu_seconds: float
    peak_process_mib: float
    peak_process: str  # name and arguments of the process that held the most
    peak_tree_mib: float
    processes_seen: int
    timed_out: bool
    other_cpu_share: float
    loadavg_before: float
    loadavg_after: float
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _TreeSampler:
    root: psutil.Process
    peak_process_mib: float = 0.0
    peak_process: str = ""
    peak_tree_mib: float = 0.0

    def __post_init__(self) -> None:
        self.cpu_by_process: dict[int, float] = {}  # own user + system seconds, as last sampled

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return []

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_process.values())

    def sample(self) -> None:
        total = 0.0
        for process in self.tree():
            try:
                with process.oneshot():
                    rss = process.memory_info().rss / _MIB
                    times = process.cpu_times()
            except psutil.Error:  # exited between listing and reading
                continue
            self.cpu_by_process[process.pid] = times.user + times.system
            total += rss
            if rss > self.peak_process_mib:
                self.peak_process_mib, self.peak_process = rss, _describe(process)
        self.peak_tree_mib = max(self.peak_tree_mib, total)


def _describe(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:200]
    except psutil.Error:
        return str(process.pid)


def _busy_cpu_seconds() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0))


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stop_tree(processes: list[psutil.Process]) -> None:
    """SIGTERM every process (all started by the measured command), then SIGKILL what is left after a grace."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=STOP_GRACE_SECONDS)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)


def run_measured(command: list[str], log: Path, env: dict[str, str], cwd: Path, timeout_s: float) -> Measured:
    """Run ``command`` to its end (or ``timeout_s``) with its output in ``log``, sampling its process tree."""
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    busy_before, children_before = _busy_cpu_seconds(), _children_cpu_seconds()
    start = time.perf_counter()
    timed_out = False
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        sampler = _TreeSampler(psutil.Process(process.pid))
        while process.poll() is None:
            sampler.sample()
            if time.perf_counter() - start > timeout_s:
                timed_out = True
                stop_tree(sampler.tree())
            time.sleep(SAMPLE_INTERVAL)
        code = process.wait()
    wall = time.perf_counter() - start
    cpu = max(sampler.cpu_seconds, _children_cpu_seconds() - children_before)
    others = max(0.0, _busy_cpu_seconds() - busy_before - cpu)
    return Measured(
        command=command,
        exit_code=code,
        wall_seconds=wall,
        cpu_seconds=cpu,
        peak_process_mib=sampler.peak_process_mib,
        peak_process=sampler.peak_process,
        peak_tree_mib=sampler.peak_tree_mib,
        processes_seen=len(sampler.cpu_by_process),
        timed_out=timed_out,
        other_cpu_share=others / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0,
        loadavg_before=load_before,
        loadavg_after=os.getloadavg()[0],
        log=str(log),
    )


def require_success(measured: Measured, what: str) -> Measured:
    """``measured``, or CommandFailedError naming ``what`` with the tail of its log."""
    if measured.exit_code == 0 and not measured.timed_out:
        return measured
    ended = "was stopped after its timeout" if measured.timed_out else f"exited with {measured.exit_code}"
    tail = "\n".join(Path(measured.log).read_text(errors="replace").splitlines()[-25:])
    raise CommandFailedError(f"{what} {ended}; last lines of {measured.log}:\n{tail}")


def measure_import(module: str, env: dict[str, str], cwd: Path, attempts: int = 3) -> dict[str, Any]:
    """Seconds to import ``module`` in a fresh interpreter (best of ``attempts``), and the slowest packages."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(attempts):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, check=False
        )
        if done.returncode != 0:
            raise CommandFailedError(f"import {module} failed:\n{done.stderr[-2000:]}")
        times.append(float(done.stdout.strip().splitlines()[-1]))
    profile = subprocess.run(
        [sys.executable, "-W", "ignore", "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )
    return {"seconds": min(times), "attempts": times, "seconds_by_package": _top_imports(profile.stderr)}


def _top_imports(importtime: str, count: int = 8) -> dict[str, float]:
    """Seconds spent importing each top-level package (sum of the self times in ``-X importtime`` output)."""
    totals: dict[str, float] = {}
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            name = match.group(2).split(".")[0]
            totals[name] = totals.get(name, 0.0) + int(match.group(1)) / 1e6
    return dict(sorted(totals.items(), key=lambda item: -item[1])[:count])
