"""What each environment demands of a release before it becomes current.

- dev (smoke): one sampled partition end to end; every blocking check passes;
- stage (business validation): the configured partitions (the full year by default); every blocking check passes,
  and the carrier mart's flights and cancellations reconcile with core per carrier and month (DuckDB);
- prod (post-release): read-only: the location serves the release, the job and the published assets are there,
  and, when the warehouse has data, mart and core reconcile. Prod's precondition, that the very artifact passed
  stage, is checked before anything changes (``deploy.require_stage_pass``).

Gate runs go through the webserver's GraphQL API, so they run in the release's code server like any other run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from dataops_assets.deploy.environment_root import EnvironmentConfig, EnvironmentRoot, Release
from dataops_assets.deploy.webserver import GateTimeoutError, RunOutcome, WebserverClient, code_server_executable
from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR
from dataops_assets.landing import MONTH_KEYS, flights_file, reference_file, weather_file

JOB = "flights_pipeline"
PUBLISHED_ASSETS = ("core/flights", "marts/carrier_monthly", "marts/route_monthly")
# The job runs its steps in one process (orchestration.py): one interpreter start per run instead of one per step
# (a dev partition: 5 s instead of 80 s on two cores), so gate runs need no run config of their own.
GATE_RUN_CONFIG: dict[str, Any] = {}
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

    def as_record(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "partitions": self.partitions,
            "runs": self.runs,
            "failures": self.failures,
            "warnings": self.warnings,
            "details": self.details,
            "seconds": round(self.seconds, 1),
        }


class GateFailedError(RuntimeError):
    def __init__(self, result: GateResult) -> None:
        listed = "\n".join(f"  - {failure}" for failure in result.failures)
        super().__init__(f"gate {result.gate} failed:\n{listed}")
        self.result = result


def run_gate(
    env: EnvironmentRoot, config: EnvironmentConfig, release: Release, client: WebserverClient, log: Log
) -> GateResult:
    started = time.monotonic()
    if env.name == "prod":
        result = post_release_check(env, config, release, client)
    else:
        gate = "dev-smoke" if env.name == "dev" else "stage-business-validation"
        result = partition_gate(gate, env=env, config=config, release=release, client=client, log=log)
        if result.passed and env.name == "stage":
            reconcile_marts(env.warehouse_path, result, months=result.partitions)
    result.seconds = time.monotonic() - started
    return result


def partition_gate(
    gate: str, *, env: EnvironmentRoot, config: EnvironmentConfig, release: Release, client: WebserverClient, log: Log
) -> GateResult:
    """One run of the job per partition, one after the other (they share the DuckDB file); stop at the first
    failure. Every blocking check must have run and none may fail with ERROR; WARN results are recorded as warnings."""
    partitions = list(config.gate_partitions)
    result = GateResult(gate=gate, partitions=partitions)
    unknown = sorted(set(partitions) - set(MONTH_KEYS))
    if unknown or not partitions:
        result.fail(f"gate partitions {unknown or 'none'} are not months of {MONTH_KEYS[0][:4]}")
        return result
    ensure_landed(env, release, partitions, log)
    checks = client.asset_checks(config.location_name, JOB)
    blocking = sorted(key for key, is_blocking in checks.items() if is_blocking)
    result.details["blocking_checks"] = ["/".join(key) for key in blocking]
    deadline = time.monotonic() + config.gate_timeout_s
    for partition in partitions:
        tags = {"dagster/partition": partition, "dataops/gate": gate, "dataops/version": release.version}
        run_id = client.launch_run(config.location_name, JOB, tags, GATE_RUN_CONFIG)
        log(f"  gate run {run_id} for {partition} launched")
        try:
            status = client.wait_run(run_id, max(deadline - time.monotonic(), 0.0))
        except GateTimeoutError as error:
            raise GateTimeoutError(
                f"gate {gate} ran out of its {config.gate_timeout_s:g}s at {partition}: {error}"
            ) from None
        outcome = client.run_outcome(run_id, status, partition)
        _judge_run(result, outcome, checks, blocking)
        passed = sum(evaluation.passed for evaluation in outcome.evaluations)
        result.runs.append(
            {
                "partition": partition,
                "run_id": run_id,
                "status": status,
                "checks_passed": passed,
                "checks_total": len(outcome.evaluations),
            }
        )
        failed = Counter(evaluation.severity for evaluation in outcome.evaluations if not evaluation.passed)
        log(
            f"  gate run {run_id} for {partition}: {status}; {len(outcome.evaluations)} checks: {passed} passed, "
            f"{failed['WARN']} WARN, {failed['ERROR']} ERROR"
        )
        if not result.passed:
            break
    return result


def _judge_run(
    result: GateResult, outcome: RunOutcome, checks: dict[tuple[str, str], bool], blocking: list[tuple[str, str]]
) -> None:
    where = outcome.partition or "-"
    for evaluation in outcome.evaluations:
        if evaluation.passed:
            continue
        is_blocking = checks.get((evaluation.asset, evaluation.check), False)
        line = f"{where} {evaluation.asset} {evaluation.check} ({evaluation.severity}"
        line += f"{', blocking' if is_blocking else ''}): {evaluation.description or 'failed'}"
        # A WARN never blocks, even on a blocking check (the suites' referential findings on the real data).
        if evaluation.severity == "ERROR":
            result.fail(line)
        else:
            result.warnings.append(line)
    evaluated = {(evaluation.asset, evaluation.check) for evaluation in outcome.evaluations}
    for asset, check in blocking:
        if (asset, check) not in evaluated:
            result.fail(f"{where} {asset} {check} (blocking): did not run in {outcome.run_id}")
    if outcome.status != "SUCCESS":
        result.fail(f"{where} run {outcome.run_id} ended {outcome.status}")
        for failure in outcome.step_failures:
            result.fail(f"{where} step {failure}")


def ensure_landed(env: EnvironmentRoot, release: Release, partitions: list[str], log: Log) -> None:
    """The gate needs the environment's landing files; when some are missing, the release's own ``dataops land``
    drops them (on a real platform the source system delivers them)."""
    landing = env.landing_dir
    needed = [reference_file(landing, table) for table in ("airports", "airlines", "planes")]
    for key in partitions:
        needed += [flights_file(landing, key), weather_file(landing, key)]
    if all(path.is_file() for path in needed):
        return
    log(f"  landing the source files into {landing} with the release's `dataops land`")
    environment = {**os.environ, ENV_VAR: env.name, DATA_ROOT_VAR: str(env.root)}
    environment.pop("PYTHONPATH", None)
    completed = subprocess.run(
        [str(release.python), "-m", "dataops_assets.cli", "land"],
        cwd=release.path,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"landing the gate's source files failed: {completed.stderr.strip()[-500:]}")


_RECONCILE_SQL = """
with core as (
    select carrier, date_trunc('month', sched_dep_local) as month,
           count(*) as flights, count(*) filter (where cancelled) as cancelled
    from core.flights group by all
), mart as (
    select carrier, month, sum(flights) as flights, sum(cancelled) as cancelled
    from marts.carrier_monthly group by all
)
select strftime(coalesce(core.month, mart.month), '%Y-%m') as month, coalesce(core.carrier, mart.carrier),
       core.flights, mart.flights, core.cancelled, mart.cancelled
from core full outer join mart on core.carrier is not distinct from mart.carrier and core.month = mart.month
where (core.flights is distinct from mart.flights or core.cancelled is distinct from mart.cancelled)
  and strftime(coalesce(core.month, mart.month), '%Y-%m') in (select unnest(?::varchar[]))
order by 1, 2
"""
_RECONCILE_COUNT_SQL = """
select count(*), coalesce(sum(flights), 0), coalesce(sum(cancelled), 0) from marts.carrier_monthly
where strftime(month, '%Y-%m') in (select unnest(?::varchar[]))
"""


def reconcile_marts(warehouse: Path, result: GateResult, months: list[str], required: bool = True) -> None:
    """Flights and cancellations per carrier and month: the carrier mart must equal core, read-only."""
    if not warehouse.is_file():
        if required:
            result.fail(f"reconciliation: the warehouse {warehouse} does not exist")
        return
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = {
            f"{schema}.{name}"
            for schema, name in connection.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }
        if not {"core.flights", "marts.carrier_monthly"} <= tables:
            if required:
                result.fail("reconciliation: core.flights or marts.carrier_monthly is missing from the warehouse")
            return
        mismatches = connection.execute(_RECONCILE_SQL, [months]).fetchall()
        rows, flights, cancelled = connection.execute(_RECONCILE_COUNT_SQL, [months]).fetchone() or (0, 0, 0)
    result.details["reconciliation"] = {
        "months": months,
        "carrier_months": int(rows),
        "flights": int(flights),
        "cancelled": int(cancelled),
        "mismatches": len(mismatches),
    }
    if required and rows == 0:
        result.fail(f"reconciliation: marts.carrier_monthly has no rows for {', '.join(months)}")
    for month, carrier, core_flights, mart_flights, core_cancelled, mart_cancelled in mismatches[:20]:
        result.fail(
            f"reconciliation {month} {carrier}: core {core_flights} flights / {core_cancelled} cancelled, "
            f"mart {mart_flights} flights / {mart_cancelled} cancelled"
        )


def post_release_check(
    env: EnvironmentRoot, config: EnvironmentConfig, release: Release, client: WebserverClient
) -> GateResult:
    """Read-only: nothing is launched or written."""
    result = GateResult(gate="prod-post-release")
    state = client.location(config.location_name)
    if state.status != "LOADED" or state.error:
        result.fail(f"location {config.location_name} is {state.status}: {state.error or 'not loaded'}")
        return result
    served = code_server_executable(config.code_server_port)
    result.details["code_server_python"] = served
    if served is None or not Path(served).is_relative_to(release.path):
        result.fail(f"location {config.location_name} is served by {served}, not by {release.python}")
    jobs = client.job_names(config.location_name)
    if JOB not in jobs:
        result.fail(f"job {JOB} is missing from {config.location_name} (jobs: {', '.join(jobs) or 'none'})")
        return result
    assets = client.asset_keys(config.location_name, JOB)
    missing = [asset for asset in PUBLISHED_ASSETS if asset not in assets]
    if missing:
        result.fail(f"published assets missing: {', '.join(missing)}")
    checks = client.asset_checks(config.location_name, JOB)
    result.details["assets"] = len(assets)
    result.details["blocking_checks"] = sorted("/".join(key) for key, blocking in checks.items() if blocking)
    if not result.details["blocking_checks"]:
        result.fail("no blocking checks are declared: staging would publish unchecked data")
    reconcile_marts(env.warehouse_path, result, months=list(MONTH_KEYS), required=False)
    return result
