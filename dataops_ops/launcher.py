"""Dead runs found: a run whose process died (SIGKILL, the out-of-memory killer) is marked failed, with the reason.

Dagster's ``DefaultRunLauncher`` cannot tell whether a launched run's process is alive, so its run monitoring only
times out runs that never start. ``LocalRunLauncher`` is that launcher plus the health check: a run worker records
its process id in the run's ``Started process for run (pid: N)`` event (the ``dataops run`` in-process run, in its
``dataops/pid`` tag); the run is dead when no process with that id exists any more, or a newer one took the id.
The instance's ``dagster.yaml`` names it, so the daemon's run monitoring fails dead runs within its poll interval;
``reconcile_dead_runs`` does the same at once for a command that starts (the leftovers of an earlier kill).

Kept light (Dagster and psutil only): every process that opens the instance imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

PID_TAG = "dataops/pid"
# A process that started this long after the run recorded its id is another process that got the id.
_PID_REUSE_SLACK_SECONDS = 2.0
_WORKER_STARTED = "Started process for run"
_UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


@dataclass(frozen=True)
class Worker:
    pid: int
    recorded_at: float  # when the run recorded the id (seconds since the epoch)


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher (runs in processes of the code location's server), with a health check."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        worker = run_worker(self._instance, run)
        if worker is None:  # not launched here, or not started yet: the start timeout covers it
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no worker process recorded")
        if worker_alive(worker):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"pid {worker.pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, dead_worker_reason(worker))


def run_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Worker | None:
    """The process the run executes in, as the run recorded it."""
    record = instance.get_run_record_by_id(run.run_id)
    if PID_TAG in run.tags and record is not None:
        return Worker(int(run.tags[PID_TAG]), record.create_timestamp.timestamp())
    for entry in reversed(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        if not entry.message.startswith(_WORKER_STARTED):  # not a step's process, which ends before the run
            continue
        data = entry.dagster_event.event_specific_data if entry.dagster_event else None
        pid = getattr(data, "metadata", {}).get("pid")
        if pid is not None:
            return Worker(int(str(pid.value)), entry.timestamp)
    return None


def worker_alive(worker: Worker) -> bool:
    try:
        process = psutil.Process(worker.pid)
        return process.status() != psutil.STATUS_ZOMBIE and (
            process.create_time() <= worker.recorded_at + _PID_REUSE_SLACK_SECONDS
        )
    except psutil.NoSuchProcess:
        return False


def dead_worker_reason(worker: Worker) -> str:
    return (
        f"the run's process (pid {worker.pid}) is gone without ending the run: it was killed (SIGKILL, the "
        "out-of-memory killer) or crashed; marked failed so the queue goes on"
    )


def reconcile_dead_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, str]]:
    """Mark every unfinished run of the instance whose process is gone as failed (canceled if it was being
    canceled); returns them with the reason."""
    dead = []
    for run in instance.get_runs(dg.RunsFilter(statuses=_UNFINISHED)):
        worker = run_worker(instance, run)
        if worker is None or worker_alive(worker):
            continue
        reason = dead_worker_reason(worker)
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, reason)
        else:
            instance.report_run_failed(run, reason)
        dead.append((run, reason))
    return dead
