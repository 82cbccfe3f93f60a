"""Run the flow on an environment's own instance: the reference tables once, in process; then the months through
the run queue, as one asset backfill (the path a backfill from the UI takes), so up to ``max_concurrent_runs``
months run at once in their own processes. Each month is reported as its run ends. Then, in process, the checks
of the landing as a whole (is the newest landed month published in time?), reported as ``freshness``.

SIGINT or SIGTERM (``stop_on_signals``) stops gently: no further month starts (the backfill is canceled), the
running months are terminated through Dagster so they end CANCELED, and the command waits for them (bounded)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id

from dataops_assets.environments import Settings
from dataops_assets.observability.config import build_observability_config
from dataops_assets.observability.runlog import RunDigest
from dataops_assets.observability.runs import RUNNER_TAGS, observe_run
from dataops_assets.orchestration import (
    MONTHLY_ASSETS,
    REFERENCE_ASSETS,
    REFERENCE_CURSOR_KEY,
    landed_stamps,
    newest_month_freshness,
    reference_tables,
)
from dataops_assets.partitions import PARTITION_TAG
from dataops_assets.quality.verdict import CheckVerdict
from dataops_ops.instance import exclusive_run, open_instance, running_daemon
from dataops_ops.launcher import PID_TAG, reconcile_dead_runs
from dataops_ops.sensor_state import remember_loaded_files

_POLL_SECONDS = 1.0
# A backfill whose first run has not been created by then has no daemon working on it.
_STALL_SECONDS = 180.0
# The in-process run's events still go to the instance (and the UI); the terminal gets the CLI's summary, and in
# stage and prod every event is a JSON line in the environment's log file (the ``console`` logger is the JSON one).
_QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
_JSON_CONSOLE = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# After SIGINT/SIGTERM, how long the running months get to end CANCELED (a container's grace period is often 30 s).
STOP_GRACE_SECONDS = 25.0
_PROCESS_DIED = "Run execution process for"
# How the run of the landing checks after the months is named in the report (a month's key names its run).
FRESHNESS_LABEL = "freshness"
_NOT_LAUNCHED = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED}
_FINAL_BACKFILL = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


@dataclass
class PartitionOutcome:
    partition: str
    run_id: str
    success: bool
    errors: list[str] = field(default_factory=list)
    checks: list[CheckVerdict] = field(default_factory=list)
    status: str = ""  # the run's Dagster status (SUCCESS, FAILURE, CANCELED)

    @property
    def findings(self) -> list[CheckVerdict]:
        return [check for check in self.checks if not check.passed]


@dataclass
class StopRequest:
    """The first SIGINT or SIGTERM the command received, if any."""

    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """While the block runs, SIGINT and SIGTERM only record a stop request (``run_partitions`` acts on it)."""
    stop = StopRequest()

    def request(signum: int, frame: FrameType | None) -> None:
        if stop.signum is None:
            stop.signum = signum
            notice = f"dataops: {stop.name}: no further month starts; ending the running ones (up to "
            os.write(2, f"{notice}{STOP_GRACE_SECONDS:g} s)\n".encode())  # print() is not safe in a handler

    previous = {signum: signal.signal(signum, request) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_partitions(
    defs: dg.Definitions,
    settings: Settings,
    partitions: Sequence[str],
    on_outcome: Callable[[PartitionOutcome], None] = lambda outcome: None,
    *,
    stop: StopRequest | None = None,
    on_note: Callable[[str], None] = lambda line: None,
    only: Set[dg.AssetKey] | None = None,
    leave_daemon: bool = False,
) -> list[PartitionOutcome]:
    """The reference tables, then one run per month through the queue, then the landing checks; ``on_outcome``
    hears of each as it ends, ``on_note`` of what happened around them (a wait, a dead run found). After ``stop`` is
    requested no month starts, the running ones are terminated and the landing checks are not run. With ``only``
    (a preview's rebuilt assets), those assets and their checks alone, and no landing checks. With
    ``leave_daemon`` the daemon started here stays up, and the months are done once each has a run that ended: the
    daemon marks the backfill complete at its next loop (every 30 s), which need not be waited for."""
    stop = stop or StopRequest()
    outcomes: list[PartitionOutcome] = []

    def heard(outcome: PartitionOutcome) -> None:
        outcomes.append(outcome)
        on_outcome(outcome)

    waiting = f"another `dataops run` of {settings.name} is running: waiting for it to end (lock file "
    with (
        open_instance(settings) as instance,
        exclusive_run(settings, lambda lock: on_note(f"{waiting}{lock})"), lambda: stop.requested) as owned,
    ):
        if not owned:
            return outcomes
        for run, reason in reconcile_dead_runs(instance):
            on_note(
                f"run {run.run_id} ({run.tags.get(PARTITION_TAG, run.job_name)}) was left {run.status.value}: {reason}"
            )
        if stop.requested:
            return outcomes
        # taken before the loads: a file that changes while they run stays new to the sensor
        landed = landed_stamps(settings.landing_dir, partitions)
        _load(defs, settings, instance, partitions, stop=stop, heard=heard, only=only, leave_daemon=leave_daemon)
        loaded = {o.partition for o in outcomes if o.success}
        remember_loaded_files(instance, {key: stamp for key, stamp in landed.items() if key in loaded})
        if not stop.requested and only is None:  # judged once the months have run, not in each month's run
            heard(_run_in_process(defs, settings, instance, newest_month_freshness.name, FRESHNESS_LABEL))
    return outcomes


def _load(
    defs: dg.Definitions,
    settings: Settings,
    instance: dg.DagsterInstance,
    partitions: Sequence[str],
    *,
    stop: StopRequest,
    heard: Callable[[PartitionOutcome], None],
    only: Set[dg.AssetKey] | None,
    leave_daemon: bool,
) -> None:
    """The reference tables, then (if they loaded) the months: of ``only``, those it names."""
    graph = defs.resolve_asset_graph()
    reference_keys, monthly_keys = (set(selection.resolve(graph)) for selection in (REFERENCE_ASSETS, MONTHLY_ASSETS))
    if only is None or reference_keys & only:
        reference = _run_reference_tables(defs, settings, instance, None if only is None else reference_keys & only)
        heard(reference)
        if not reference.success or stop.requested:
            return
    monthly = sorted(monthly_keys if only is None else monthly_keys & only)
    if not monthly:
        return
    with running_daemon(settings, instance, leave_running=leave_daemon):
        backfill_id = _submit_backfill(defs, instance, partitions, monthly)
        months = _await_months(defs, settings, instance, backfill_id, partitions, stop=stop, runs_suffice=leave_daemon)
        for outcome in months:
            heard(outcome)
    if stop.requested:  # the daemon is gone: nothing may stay queued for the next one to start
        _cancel_unlaunched(instance, backfill_id)


def _run_reference_tables(
    defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance, keys: Set[dg.AssetKey] | None
) -> PartitionOutcome:
    # "reference", named as in the sensor's cursor
    return _run_in_process(defs, settings, instance, reference_tables.name, REFERENCE_CURSOR_KEY, keys=keys)


def _run_in_process(
    defs: dg.Definitions,
    settings: Settings,
    instance: dg.DagsterInstance,
    job_name: str,
    label: str,
    *,
    keys: Set[dg.AssetKey] | None = None,
) -> PartitionOutcome:
    """An unpartitioned job, in a worker thread: in the main thread Dagster would take SIGINT and SIGTERM over for
    the run (and fail it as interrupted); this way a signal waits for the run (seconds), then nothing starts."""
    job = defs.resolve_job_def(job_name)
    console = _JSON_CONSOLE if settings.json_logs else _QUIET_CONSOLE
    tags = RUNNER_TAGS | {PID_TAG: str(os.getpid())}  # so a kill of this command is found (launcher.py)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=job_name) as pool:
        run = pool.submit(
            job.execute_in_process,
            instance=instance,
            raise_on_error=False,
            tags=tags,
            run_config=console,
            asset_selection=sorted(keys) if keys is not None else None,
        )
        result = run.result()
    digest = _observe(defs, settings, instance, result.run_id)
    return _outcome(instance, digest, partition=label)


def _submit_backfill(
    defs: dg.Definitions, instance: dg.DagsterInstance, partitions: Sequence[str], keys: Sequence[dg.AssetKey]
) -> str:
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=defs.resolve_asset_graph(),
        partition_names=list(partitions),
        asset_selection=list(keys),
        backfill_timestamp=time.time(),
        tags=RUNNER_TAGS,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title="dataops run",
        description=f"{len(partitions)} month(s) submitted by dataops run",
        run_config=None,
    )
    instance.add_backfill(backfill)
    return backfill.backfill_id


def _await_months(
    defs: dg.Definitions,
    settings: Settings,
    instance: dg.DagsterInstance,
    backfill_id: str,
    partitions: Sequence[str],
    *,
    stop: StopRequest,
    runs_suffice: bool = False,
) -> Iterator[PartitionOutcome]:
    """Each run of the backfill as it ends, until the backfill is done (or, with ``runs_suffice``, every month has
    a run) and every run of it has ended; once ``stop`` is requested, until every run it created has ended
    (canceled), or the grace period is over."""
    reported: set[str] = set()
    asked: set[str] = set()
    submitted = time.monotonic()
    stop_deadline: float | None = None
    while True:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        if stop.requested:
            stop_deadline = stop_deadline or time.monotonic() + STOP_GRACE_SECONDS
            _cancel(instance, backfill, runs, asked, past_deadline=time.monotonic() > stop_deadline)
            runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
        elif backfill is not None and not runs and time.monotonic() - submitted > _STALL_SECONDS:
            instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
            log = settings.dagster_home / "daemon.log"
            reason = f"no run started within {_STALL_SECONDS:g} s: is a daemon serving this instance? (see {log})"
            yield PartitionOutcome(", ".join(partitions), backfill_id, False, [f"backfill {backfill_id}: {reason}"])
            return
        for run in runs:
            if run.is_finished and run.run_id not in reported:
                reported.add(run.run_id)
                yield _outcome(instance, _observe(defs, settings, instance, run.run_id))
        done = stop.requested or (backfill is not None and backfill.status in _FINAL_BACKFILL)
        done = done or (runs_suffice and {run.tags.get(PARTITION_TAG) for run in runs} >= set(partitions))
        if done and all(run.is_finished for run in runs):
            break
        time.sleep(_POLL_SECONDS)
    if backfill is not None and backfill.status == BulkActionStatus.FAILED:
        error = backfill.error.message if backfill.error else "unknown error"
        yield PartitionOutcome(", ".join(partitions), backfill_id, False, [f"backfill {backfill_id}: {error}"])


def _cancel(
    instance: dg.DagsterInstance,
    backfill: PartitionBackfill | None,
    runs: Sequence[dg.DagsterRun],
    asked: set[str],
    past_deadline: bool,
) -> None:
    """Cancel the backfill (no further month starts) and terminate its runs through the run coordinator (queued
    ones end at once, running ones through their launcher, so they end CANCELED). Past the deadline, the runs
    still going are marked canceled: their processes end with the daemon's process group."""
    if backfill is not None and backfill.status not in _FINAL_BACKFILL | {BulkActionStatus.CANCELING}:
        instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELING))
    for run in runs:
        if run.is_finished:
            continue
        if past_deadline:
            reason = f"did not end within {STOP_GRACE_SECONDS:g} s of its termination; its process was stopped"
            instance.report_run_canceled(run, reason)
        elif run.run_id not in asked or run.status in _NOT_LAUNCHED:
            asked.add(run.run_id)
            try:
                instance.run_coordinator.cancel_run(run.run_id)
            except Exception as error:  # the code server is gone: the run's own cancellation thread still sees it
                instance.report_engine_event(f"terminate request failed: {error}", run)


def _cancel_unlaunched(instance: dg.DagsterInstance, backfill_id: str) -> None:
    """Runs the backfill created after its last look (still queued) are canceled, and so is the backfill."""
    for run in instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}, statuses=list(_NOT_LAUNCHED))):
        instance.report_run_canceled(run, "canceled by dataops run after SIGINT/SIGTERM, before it started")
    backfill = instance.get_backfill(backfill_id)
    if backfill is not None and backfill.status not in _FINAL_BACKFILL:
        instance.update_backfill(backfill.with_status(BulkActionStatus.CANCELED))


def _engine_error(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why a run failed outside its steps (its code did not load, its process died), from its engine events."""
    for entry in reversed(instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
        if error is not None:
            cause = error.cause or error
            return f"{entry.message}: {cause.cls_name}: {cause.message.strip().splitlines()[-1]}"
        if _PROCESS_DIED in entry.message:  # the code server saw its run's process die (a kill, OOM)
            return entry.message.removeprefix("[DagsterApiServer] ").strip().splitlines()[0]
    return None


def _observe(defs: dg.Definitions, settings: Settings, instance: dg.DagsterInstance, run_id: str) -> RunDigest:
    """Lineage of the run (never raises), and its digest for the report."""
    return observe_run(instance, run_id, defs.resolve_asset_graph(), build_observability_config(settings)).digest


def _outcome(instance: dg.DagsterInstance, digest: RunDigest, partition: str | None = None) -> PartitionOutcome:
    errors = [f"{asset.step_key}: {_last_line(asset.error)}" for asset in digest.assets if asset.error]
    if digest.status not in {"SUCCESS", "CANCELED"} and not errors:
        errors.append(_engine_error(instance, digest.run_id) or digest.failure_message or f"run {digest.status}")
    checks = list(digest.checks)
    return PartitionOutcome(
        partition or digest.partition or "-", digest.run_id, digest.status == "SUCCESS", errors, checks, digest.status
    )


# A frame of a native backtrace, as delta-rs appends to its errors ("  12: start_thread", "      at ./nptl/...").
_BACKTRACE_FRAME = re.compile(r"^\s*(\d+: |at )")


def _last_line(error: str) -> str:
    """The line of an error that names what went wrong: its last one, leaving out native backtrace frames."""
    lines = [line for line in error.strip().splitlines() if line.strip() and not _BACKTRACE_FRAME.match(line)]
    return lines[-1] if lines else error.strip()
