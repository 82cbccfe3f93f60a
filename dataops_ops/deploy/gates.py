"""What each environment demands of a release before it becomes current. A gate knows checks, not tables:

- dev (smoke) and stage (business validation): the reference tables' job, then one run of the monthly job per gate
  partition (dev: the first month, stage: the year by default), launched through the webserver so they run in the
  release's code server. Each run must succeed, every blocking check of its job must have run in it, and no check
  may fail with ERROR; a WARN is recorded. The blocking checks include the marts' reconciliation with core.
- prod (post-release): read-only: the monthly job has published assets (tagged ``published: true``), each with a
  blocking check. That the code server serves the release was proven when it was switched (``deploy.activate``);
  that the very artifact passed stage, before anything changed (``deploy.require_stage_pass``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dataops_assets.orchestration import flights_pipeline, reference_tables
from dataops_assets.partitions import MONTH_KEYS, PARTITION_TAG
from dataops_ops.deploy.environment_root import EnvironmentConfig, EnvironmentRoot, Release
from dataops_ops.deploy.errors import GateTimeoutError
from dataops_ops.deploy.webserver import RunOutcome, Webserver
from dataops_ops.processes import run

PARTITION_GATES = {"dev": "dev-smoke", "stage": "stage-business-validation"}
GATE_JOBS = (reference_tables, flights_pipeline)
Log = Callable[[str], None]


@dataclass
class GateResult:
    gate: str
    passed: bool = True
    partitions: list[str] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def fail(self, message: str) -> None:
        self.passed = False
        self.failures.append(message)


class GateFailedError(RuntimeError):
    def __init__(self, result: GateResult) -> None:
        listed = "\n".join(f"  - {failure}" for failure in result.failures)
        super().__init__(f"gate {result.gate} failed:\n{listed}")
        self.result = result


def run_gate(
    env: EnvironmentRoot, config: EnvironmentConfig, release: Release, webserver: Webserver, log: Log
) -> GateResult:
    started = time.monotonic()
    if env.name in PARTITION_GATES:
        result = partition_gate(env, config, release, webserver, log)
    else:
        result = post_release_check(config, webserver)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def partition_gate(
    env: EnvironmentRoot, config: EnvironmentConfig, release: Release, webserver: Webserver, log: Log
) -> GateResult:
    """The gate's runs one after the other, within the gate's timeout; stop at the first failure."""
    result = GateResult(gate=PARTITION_GATES[env.name], partitions=list(config.gate_partitions))
    unknown = sorted(set(result.partitions) - set(MONTH_KEYS))
    if unknown or not result.partitions:
        result.fail(f"gate partitions {unknown or 'none'} are not among {MONTH_KEYS[0]} … {MONTH_KEYS[-1]}")
        return result
    land_if_empty(env, release, log)
    blocking = {job.name: _blocking_checks(webserver, config.location_name, job.name) for job in GATE_JOBS}
    result.details["blocking_checks"] = sorted(f"{a}/{c}" for checks in blocking.values() for a, c in checks)
    deadline = time.monotonic() + config.gate_timeout_s
    tags = {"dataops/gate": result.gate, "dataops/version": release.version}
    for job, partition in [(reference_tables.name, None), *((flights_pipeline.name, m) for m in result.partitions)]:
        label = partition or job
        run_tags = tags | ({PARTITION_TAG: partition} if partition else {})
        try:
            outcome = _gate_run(
                webserver, config.location_name, job, tags=run_tags, label=label, deadline=deadline, log=log
            )
        except GateTimeoutError as error:
            limit = f"{config.gate_timeout_s:g}s"
            raise GateTimeoutError(f"gate {result.gate} ran out of its {limit} at {label}: {error}") from None
        _judge_run(result, outcome, blocking[job])
        passed, total = sum(e.passed for e in outcome.evaluations), len(outcome.evaluations)
        run = {"job": job, "partition": partition, "run_id": outcome.run_id, "status": outcome.status}
        result.runs.append(run | {"checks_passed": passed, "checks_total": total})
        if not result.passed:
            break
    return result


def _gate_run(
    webserver: Webserver, location: str, job: str, *, tags: dict[str, str], label: str, deadline: float, log: Log
) -> RunOutcome:
    """Launch one run, wait for it until the deadline, and read its check evaluations."""
    run_id = webserver.launch(location, job, tags)
    log(f"  gate run {run_id} for {label} launched")
    status = webserver.wait_run(run_id, max(deadline - time.monotonic(), 0.0))
    outcome = webserver.run_outcome(run_id, status, label)
    failed = dict(Counter(e.severity for e in outcome.evaluations if not e.passed)) or "none"
    log(f"  gate run {run_id} for {label}: {status}; {len(outcome.evaluations)} checks, failed: {failed}")
    return outcome


def _blocking_checks(webserver: Webserver, location: str, job: str) -> set[tuple[str, str]]:
    return {(asset.key, check) for asset in webserver.job_assets(location, job) for check in asset.blocking_checks}


def _judge_run(result: GateResult, outcome: RunOutcome, blocking: set[tuple[str, str]]) -> None:
    where = outcome.label
    for evaluation in outcome.evaluations:
        if evaluation.passed:
            continue
        is_blocking = (evaluation.asset, evaluation.check) in blocking
        line = f"{where} {evaluation.asset} {evaluation.check} ({evaluation.severity}"
        line += f"{', blocking' if is_blocking else ''}): {evaluation.description or 'failed'}"
        # A WARN never blocks, even on a blocking check (the suites' referential findings on the real data).
        if evaluation.severity == "ERROR":
            result.fail(line)
        else:
            result.warnings.append(line)
    evaluated = {(evaluation.asset, evaluation.check) for evaluation in outcome.evaluations}
    for asset, check in sorted(blocking - evaluated):
        result.fail(f"{where} {asset} {check} (blocking): did not run in {outcome.run_id}")
    if outcome.status != "SUCCESS":
        result.fail(f"{where} run {outcome.run_id} ended {outcome.status}")
        for failure in outcome.step_failures:
            result.fail(f"{where} step {failure}")


def land_if_empty(env: EnvironmentRoot, release: Release, log: Log) -> None:
    """A new environment has no landing files yet: the release's own ``dataops land`` drops them (on a real
    platform the source system delivers them). A file missing later fails the raw layer's blocking check."""
    if env.landing_dir.is_dir() and any(env.landing_dir.iterdir()):
        return
    log(f"  landing the source files into {env.landing_dir} with the release's `dataops land`")
    run([str(release.python), "-m", "dataops_ops.cli", "land"], cwd=release.path, env=env.process_environment())


def post_release_check(config: EnvironmentConfig, webserver: Webserver) -> GateResult:
    """Read-only: nothing is launched or written."""
    result = GateResult(gate="prod-post-release")
    assets = webserver.job_assets(config.location_name, flights_pipeline.name)
    published = sorted(asset.key for asset in assets if asset.published)
    unchecked = [asset.key for asset in assets if asset.published and not asset.blocking_checks]
    blocking = sorted(f"{asset.key}/{check}" for asset in assets for check in asset.blocking_checks)
    result.details.update(assets=len(assets), published=published, blocking_checks=blocking)
    if not published:
        result.fail(f"{flights_pipeline.name} of {config.location_name} has no published assets, or is missing")
    if unchecked:
        result.fail(f"published assets without a blocking check: {', '.join(unchecked)}")
    return result
