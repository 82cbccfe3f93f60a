"""``make bench``: the pipeline as a user runs it, beside a plain pandas script and the same flow as plain SQL.

For every scale (default 1 and 10), in stage, under ``var/bench/x<scale>``:
1. ``dataops land --scale N`` lands the data (timed, not compared; ``--reuse-landing`` keeps a landing of the
   same scale);
2. ``benchmarks/plain_pandas.py`` and ``benchmarks/plain_sql.py`` run the flow on that landing;
3. the lake and the Dagster instance are removed and ``dataops run`` runs the months (the path a user takes:
   reference tables, then the months through the run queue); then, again from nothing, ``dataops run <slowest
   month>`` runs that month alone, for the backfill-against-one-month ratio;
4. the instance is read for what happened inside: each run's duration, each asset's compute time (its
   ``duration_s`` metadata) and rows, the Great Expectations time of the checks, and every failed check.

Every command is measured from outside as a whole (``measure.py``): wall time, CPU time, peak RSS of any one
process and of the process tree; one still running after ``--timeout`` seconds is stopped and reported. At
scale N the stage row-count bands are multiplied by N through ``DATAOPS_THRESHOLDS``, so every check runs on
the bigger months and holds them to the same rules.
``import dataops_assets.definitions`` is timed in a fresh interpreter (best of 3).

The commands run with no alerting or OpenLineage destination in their environment, so nothing leaves the machine.
Results go to ``var/bench/results.json`` (``report.py`` describes them) and a table is printed. The exit code is
non-zero only on errors (a command that failed, a run that failed); missed goals are reported as such.

    .venv/bin/python benchmarks/bench.py [--scales 1 10] [--months 2013-01 2013-02] [--reuse-landing] [--repeat N]
                                         [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from measure import CommandFailedError, Measured, measure_import, require_success, run_measured
from report import (
    check_findings,
    check_seconds,
    compare_tables,
    format_report,
    format_scale,
    goals,
    layer_seconds,
    pipeline_tables,
    run_failures,
    step_seconds,
    write_results,
)

from dataops_assets.environments import THRESHOLDS_VAR, settings_for
from dataops_assets.observability.runlog import RunDigest, digest_run
from dataops_assets.partitions import MONTH_KEYS
from dataops_ops.instance import open_instance

REPO = Path(__file__).resolve().parents[1]
BENCH_ROOT = REPO / "var" / "bench"
BIN = Path(sys.executable).parent
ENVIRONMENT = "stage"
# Variables that would send alerts or lineage elsewhere, or point the commands at another instance or lake.
OUTBOUND_PREFIXES = ("OPENLINEAGE_", "DATAOPS_PAGERDUTY_", "DATAOPS_SLACK_")
DROPPED_VARIABLES = ("DAGSTER_WEBSERVER_URL", "DAGSTER_HOME", "DATAOPS_LAKE_URI")
DEFAULT_TIMEOUT_SECONDS = 3600.0


def _scaled_bands(scale: int) -> dict[str, int]:
    """The environment's flights-per-month band, N times wider for N copies of every flight."""
    thresholds = settings_for(ENVIRONMENT).thresholds
    return {
        "min_flights_per_month": thresholds.min_flights_per_month * scale,
        "max_flights_per_month": thresholds.max_flights_per_month * scale,
    }


def command_environment(root: Path, scale: int) -> dict[str, str]:
    """Stage under ``root``, row-count bands widened ``scale`` times, nothing sent anywhere."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(OUTBOUND_PREFIXES) and name not in DROPPED_VARIABLES
    }
    return env | {
        "DATAOPS_ENV": ENVIRONMENT,
        "DATAOPS_DATA_ROOT": str(root),
        THRESHOLDS_VAR: json.dumps(_scaled_bands(scale)),
        "GX_ANALYTICS_ENABLED": "False",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }


@contextmanager
def say(what: str) -> Iterator[None]:
    print(f"... {what}", flush=True)
    start = time.perf_counter()
    yield
    print(f"    done in {time.perf_counter() - start:.1f} s", flush=True)


def land(root: Path, scale: int, env: dict[str, str], reuse: bool, timeout_s: float) -> dict[str, Any]:
    """``dataops land --scale N`` unless a landing of that scale is kept; the landing is never compared."""
    landing_dir = settings_for(ENVIRONMENT, data_root=root).landing_dir
    marker = landing_dir / ".bench-scale"
    if reuse and marker.is_file() and marker.read_text().strip() == str(scale):
        return {"landing_seconds": None, "reused": True}
    shutil.rmtree(landing_dir, ignore_errors=True)
    command = [str(BIN / "dataops"), "land", "--scale", str(scale)]
    with say(f"x{scale}: dataops land --scale {scale}"):
        landed = require_success(run_measured(command, root / "land.log", env, REPO, timeout_s), "dataops land")
    marker.write_text(str(scale))
    return {"landing_seconds": landed.wall_seconds, "reused": False}


def forget_pipeline_state(root: Path) -> None:
    """Remove the lake, the Dagster instance and any older warehouse file, so a run starts from nothing."""
    settings = settings_for(ENVIRONMENT, data_root=root)
    for folder in (Path(settings.lake_uri), settings.dagster_home):
        shutil.rmtree(folder, ignore_errors=True)
    settings.warehouse_path.unlink(missing_ok=True)


def run_baseline(script: str, root: Path, months: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """One baseline script on the landing, measured from outside, with the JSON it writes about itself."""
    name = Path(script).stem
    landing_dir = settings_for(ENVIRONMENT, data_root=root).landing_dir
    out = root / f"{name}.json"
    command = [sys.executable, str(REPO / "benchmarks" / script), "--landing-dir", str(landing_dir)]
    command += ["--database", str(root / f"{name}.duckdb"), "--json", str(out), "--months", *months]
    if name == "plain_pandas":
        command.append("--no-sampler")
    measured = require_success(run_measured(command, root / f"{name}.log", env, REPO, timeout_s), script)
    inner = json.loads(out.read_text())
    return measured.to_json() | {
        "inner_seconds": inner["wall_seconds"],
        "layers": {layer: stats["seconds"] for layer, stats in inner["layers"].items()},
        "tables": inner["tables"],
    }


def read_runs(root: Path) -> list[RunDigest]:
    """Every run of the instance, oldest first."""
    with open_instance(settings_for(ENVIRONMENT, data_root=root)) as instance:
        records = instance.get_run_records()
        digests = [digest_run(instance, record.dagster_run.run_id) for record in records]
    return sorted(digests, key=lambda digest: digest.started or 0.0)


def command_errors(measured: Measured) -> list[str]:
    if measured.timed_out:
        return [f"{' '.join(measured.command[-3:])} was stopped after its timeout (see {measured.log})"]
    if measured.exit_code:
        return [f"{' '.join(measured.command[-3:])} exited with {measured.exit_code} (see {measured.log})"]
    return []


def run_pipeline(root: Path, months: list[str], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """``dataops run`` from nothing, measured; then what the instance recorded about its runs."""
    forget_pipeline_state(root)
    command = [str(BIN / "dataops"), "run", *months]
    measured = run_measured(command, root / "pipeline.log", env, REPO, timeout_s)
    runs = read_runs(root)
    errors = command_errors(measured) + run_failures(runs)
    monthly = {run.partition: run.duration_seconds for run in runs if run.partition and run.duration_seconds}
    tables = pipeline_tables(runs)
    return measured.to_json() | {
        "runs": len(runs),
        "run_seconds_by_month": dict(sorted(monthly.items())),
        "layers": layer_seconds(runs),
        "checks": check_seconds(runs),
        "step_seconds": step_seconds(runs),
        "tables": tables,
        "complete": not errors and all(tables.get(t, 0) > 0 for t in ("core.flights", "marts.carrier_monthly")),
        "errors": errors,
        "findings": check_findings(runs),
    }


def run_single_month(root: Path, month: str, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """``dataops run <month>`` from nothing, like the backfill: what one month costs on its own."""
    forget_pipeline_state(root)
    command = [str(BIN / "dataops"), "run", month]
    measured = run_measured(command, root / "single_month.log", env, REPO, timeout_s)
    return measured.to_json() | {"month": month, "errors": command_errors(measured)}


def bench_scale(scale: int, months: list[str], reuse: bool, repeat: int, timeout_s: float) -> dict[str, Any]:
    """Plain pandas, plain SQL and the pipeline ``repeat`` times on one landing; the fastest attempt of each."""
    root = BENCH_ROOT / f"x{scale}"
    root.mkdir(parents=True, exist_ok=True)
    env = command_environment(root, scale)
    result: dict[str, Any] = {"scale": scale, "months": months, "data_root": str(root)}
    result |= land(root, scale, env, reuse, timeout_s)
    attempts: dict[str, list[dict[str, Any]]] = {"plain": [], "sql": [], "pipeline": []}
    for attempt in range(1, repeat + 1):
        label = f"x{scale}" + (f" attempt {attempt}/{repeat}" if repeat > 1 else "")
        with say(f"{label}: plain pandas"):
            attempts["plain"].append(run_baseline("plain_pandas.py", root, months, env, timeout_s))
        with say(f"{label}: plain SQL"):
            attempts["sql"].append(run_baseline("plain_sql.py", root, months, env, timeout_s))
        with say(f"{label}: dataops run, {len(months)} months"):
            attempts["pipeline"].append(run_pipeline(root, months, env, timeout_s))
    for name, measured in attempts.items():
        result[name] = min(measured, key=lambda m: m["wall_seconds"])
        result[f"{name}_attempts_wall_seconds"] = [m["wall_seconds"] for m in measured]
    pipeline = result["pipeline"]
    by_month = pipeline["run_seconds_by_month"]
    if len(months) > 1 and by_month:
        slowest = max(by_month, key=by_month.__getitem__)
        with say(f"x{scale}: dataops run {slowest} alone"):
            result["single_month"] = run_single_month(root, slowest, env, timeout_s)
    result["same_rows"] = {
        name: compare_tables(pipeline["tables"], result[name]["tables"]) for name in ("plain", "sql")
    }
    return result


def code_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": len(git("status", "--porcelain").splitlines())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--months", nargs="+", default=list(MONTH_KEYS), metavar="YYYY-MM", help="default: all 12")
    parser.add_argument("--reuse-landing", action="store_true", help="keep a landing of the same scale")
    parser.add_argument("--repeat", type=int, default=1, help="measure each flow N times, report the fastest")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, help="stop a command running longer (seconds)"
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "memory_gib": psutil.virtual_memory().total / 1024**3},
        "code": code_state(),
        "scales": {},
        "errors": [],
    }
    with say("import time of dataops_assets.definitions, best of 3"):
        results["import"] = measure_import("dataops_assets.definitions", command_environment(BENCH_ROOT, 1), REPO)
    for scale in args.scales:
        try:
            scale_result = bench_scale(scale, args.months, args.reuse_landing, args.repeat, args.timeout)
        except CommandFailedError as error:
            results["errors"].append(f"x{scale}: {error}")
            continue
        results["scales"][f"x{scale}"] = scale_result
        errors = scale_result["pipeline"]["errors"] + scale_result.get("single_month", {}).get("errors", [])
        results["errors"] += [f"x{scale}: {error}" for error in errors]
        write_results(results, BENCH_ROOT / "results.json")
        print(format_scale(scale_result), flush=True)
    results["goals"] = goals(results)
    write_results(results, BENCH_ROOT / "results.json")
    print(format_report(results, BENCH_ROOT / "results.json"))
    for message in results["errors"]:
        print(f"ERROR {message}", file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
