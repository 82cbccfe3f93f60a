"""``make bench``: the full year in stage at 1x and 10x through Dagster, beside the plain pandas script.

For every scale (default 1 and 10) it
1. lands the stage data under ``var/bench/x<scale>`` (``land(settings, scale=N)``; not part of any measurement);
2. runs ``benchmarks/plain_pandas.py`` on that landing in a fresh subprocess;
3. removes the warehouse and the Dagster home and runs the Dagster pipeline for all 12 partitions
   (``run_partitions(build_definitions(settings), settings, MONTH_KEYS)``) in a fresh subprocess, then reads the
   instance's event log: STEP_START/STEP_SUCCESS per step, grouped by the first element of the asset keys the step
   materialized (raw, staging, core, marts; a check step materializes nothing and counts as ``checks``; the
   quarantine tables are written by the staging steps); rows out from the materialization metadata
   ``dagster/partition_row_count`` (else ``dagster/row_count``), rows in from the assets' ``rows_in``.
   At 10x the row-count bands of the stage thresholds are scaled by 10 (see ``bench_settings``), else the blocking
   quality gate stops every month at staging;
4. with ``--repeat N`` does 2-3 N times and reports the fastest complete attempt of each (all attempts in JSON).

Wall time of the pipeline is ``run_partitions`` alone (not interpreter start or imports); of the plain script,
``run_plain`` alone. ``orchestration`` is pipeline time outside any step (run creation, planning, event log, the
runner's own records); ``finish`` is the plain script's final DuckDB checkpoint and close.

Memory, for both: this process samples the worker's RSS every 20 ms with psutil (from outside, so the sampler
never competes for the worker's GIL) and attributes every sample to the step (pipeline) or layer (plain) running
at that instant. ``peak MiB`` is the largest sample attributed to a layer (the whole process's RSS at that moment);
``grow MiB`` is the largest rise of RSS within one step of the layer over the sample just before that step, i.e.
the layer's own working memory. The worker's ``ru_maxrss`` is reported as the exact process peak. Load is
recorded as the load average and as the CPU time the rest of the machine used during each measurement.

Then it measures ``import dataops_assets.definitions`` in a fresh interpreter (best of 3), and proves partition
isolation by re-running one partition of the 1x warehouse (which holds all 12 months) with every DuckDB statement,
every file opened under the landing folder and every frame loaded by the I/O manager recorded; see
``_isolation_worker`` and ``_judge_isolation``.

The workers run with no alerting or OpenLineage destination in their environment, so nothing leaves the machine.
The table is printed and written as JSON to ``var/bench/results.json``. The exit code is non-zero only on errors
(a worker that crashed, a failed run); goals that are missed are reported as such.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import psutil

from dataops_assets import warehouse
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings, settings_for
from dataops_assets.instance import open_instance
from dataops_assets.landing import MONTH_KEYS, land
from dataops_assets.runner import run_partitions

REPO = Path(__file__).resolve().parents[1]
BENCH_ROOT = REPO / "var" / "bench"
RESULTS = BENCH_ROOT / "results.json"
PLAIN_SCRIPT = REPO / "benchmarks" / "plain_pandas.py"
LAYERS = ("raw", "staging", "quarantine", "checks", "core", "marts", "orchestration", "finish")
STEP_LAYERS = ("raw", "staging", "core", "marts")  # preferred over quarantine for a step that writes both
GOAL_RATIO = 2.0
GOAL_IMPORT_SECONDS = 1.5
GOAL_RATIO_SCALE = 10
ISOLATION_PARTITION = "2013-06"
SAMPLE_INTERVAL = 0.02
_MIB = 1024 * 1024


OUTBOUND_PREFIXES = ("OPENLINEAGE_", "DATAOPS_PAGERDUTY_", "DATAOPS_SLACK_")
OUTBOUND_VARIABLES = ("DAGSTER_WEBSERVER_URL",)


class BenchError(RuntimeError):
    """Something failed that makes a number meaningless: a worker crashed or a pipeline step failed."""


# --------------------------------------------------------------------------------------------- measurement helpers


@dataclass
class Sampled:
    """A worker's JSON result with the RSS samples taken from outside, and the CPU spent around it."""

    result: dict[str, Any]
    samples: list[tuple[float, int]]
    wall_seconds: float
    worker_cpu_seconds: float
    machine_busy_seconds: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def other_cpu_seconds(self) -> float:
        """CPU time the rest of the machine used during the measurement (other sessions, this sampler)."""
        return max(0.0, self.machine_busy_seconds - self.worker_cpu_seconds)


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_sampled(command: list[str], out: Path, log: Path, env: dict[str, str] | None = None) -> Sampled:
    """Run a worker that writes JSON to ``out``; sample its RSS until it exits."""
    out.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    busy_before, children_before = _busy_seconds(), _children_cpu()
    start = time.perf_counter()
    samples: list[tuple[float, int]] = []
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                samples.append((time.time(), watched.memory_info().rss))
            except psutil.Error:
                break
            time.sleep(SAMPLE_INTERVAL)
        code = process.wait()
    wall = time.perf_counter() - start
    if code != 0 or not out.is_file():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BenchError(f"{' '.join(command[1:3])} exited with {code}; last lines of {log}:\n{tail}")
    return Sampled(
        result=json.loads(out.read_text()),
        samples=samples,
        wall_seconds=wall,
        worker_cpu_seconds=_children_cpu() - children_before,
        machine_busy_seconds=_busy_seconds() - busy_before,
        load_before=load_before,
        load_after=os.getloadavg(),
    )


@dataclass
class Peaks:
    peak_mib: float
    growth_mib: float | None  # largest rise of RSS within one interval over the sample just before it


def peaks_by_layer(
    samples: list[tuple[float, int]], intervals: Sequence[tuple[float, float, str]], window: tuple[float, float]
) -> dict[str, Peaks]:
    """Per layer: the largest RSS sample taken inside one of its intervals, and the largest growth within one
    interval. Samples inside ``window`` but in no interval go to ``orchestration`` (peak only)."""
    samples = sorted(samples)
    times = [at for at, _ in samples]
    peaks: dict[str, Peaks] = {}
    covered = [False] * len(samples)
    for start, end, layer in intervals:
        lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
        if lo >= hi:
            continue
        for index in range(lo, hi):
            covered[index] = True
        top = max(rss for _, rss in samples[lo:hi]) / _MIB
        growth = top - samples[max(lo - 1, 0)][1] / _MIB
        known = peaks.get(layer)
        if known is None:
            peaks[layer] = Peaks(top, growth)
        else:
            known.peak_mib = max(known.peak_mib, top)
            known.growth_mib = max(known.growth_mib or 0.0, growth)
    outside = [
        rss for (at, rss), done in zip(samples, covered, strict=True) if not done and window[0] <= at <= window[1]
    ]
    if outside:
        peaks["orchestration"] = Peaks(max(outside) / _MIB, None)
    return peaks


@dataclass
class LayerRow:
    seconds: float | None = None
    rows_in: int = 0
    rows_out: int = 0
    steps: int = 0
    peak_rss_mib: float | None = None
    growth_mib: float | None = None
    note: str = ""

    @property
    def rows_in_per_second(self) -> float | None:
        return self.rows_in / self.seconds if self.seconds else None

    @property
    def rows_out_per_second(self) -> float | None:
        return self.rows_out / self.seconds if self.seconds else None

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "steps": self.steps,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_in_per_second": self.rows_in_per_second,
            "rows_out_per_second": self.rows_out_per_second,
            "peak_rss_mib": self.peak_rss_mib,
            "peak_growth_within_one_step_mib": self.growth_mib,
            "note": self.note,
        }


# ------------------------------------------------------------------------------------------------ pipeline worker


def _metadata_number(metadata: dict[str, Any], key: str) -> int | None:
    value = metadata.get(key)
    value = getattr(value, "value", value)
    return int(value) if isinstance(value, int | float) else None


def _run_events(instance: Any, run_id: str) -> dict[str, Any]:
    """Steps (start, end, status, materializations, checks) of one run, from the instance's event log."""
    steps: dict[str, dict[str, Any]] = {}
    run_start = run_end = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "RUN_START":
            run_start = entry.timestamp
        elif kind in ("RUN_SUCCESS", "RUN_FAILURE"):
            run_end = entry.timestamp
        if not entry.step_key:
            continue
        step = steps.setdefault(
            entry.step_key, {"step_key": entry.step_key, "materializations": [], "checks": [], "loaded_inputs": 0}
        )
        if kind == "STEP_START":
            step["start"] = entry.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"] = entry.timestamp
            step["status"] = kind
            if kind == "STEP_FAILURE":
                error = event.step_failure_data.error
                message = error.cause.message if error and error.cause else error.message if error else ""
                step["error"] = message[-800:]
        elif kind == "LOADED_INPUT":
            step["loaded_inputs"] += 1
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.step_materialization_data.materialization
            metadata = dict(materialization.metadata)
            rows = _metadata_number(metadata, "dagster/partition_row_count")
            if rows is None:
                rows = _metadata_number(metadata, "dagster/row_count")
            step["materializations"].append(
                {
                    "asset": list(materialization.asset_key.path),
                    "partition": materialization.partition,
                    "rows_out": rows,
                    "rows_in": _metadata_number(metadata, "rows_in"),
                }
            )
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            step["checks"].append(
                {
                    "asset": evaluation.asset_key.to_user_string(),
                    "check": evaluation.check_name,
                    "passed": bool(evaluation.passed),
                    "severity": str(getattr(evaluation.severity, "value", evaluation.severity)),
                    "description": (evaluation.description or "").strip().splitlines()[0][:300]
                    if evaluation.description
                    else "",
                }
            )
    return {"run_id": run_id, "start": run_start, "end": run_end, "steps": list(steps.values())}


def bench_settings(root: Path, scale: int) -> Settings:
    """Stage settings under ``root``; at scale N the monthly row-count bands of the thresholds are N times wider.

    The stage thresholds describe the real data (24,000-30,000 flights a month), so the quality gate (the blocking
    Great Expectations ``row_count_in_band`` expectation and the row-count bounds check) rejects every month of a
    10x landing and core and marts are never built. Scaling the bands keeps every check running on the same data.
    """
    settings = settings_for("stage", data_root=root)
    if scale <= 1:
        return settings
    limits = settings.thresholds
    scaled = replace(
        limits,
        min_flights_per_month=limits.min_flights_per_month * scale,
        max_flights_per_month=limits.max_flights_per_month * scale,
    )
    return replace(settings, thresholds=scaled)


def _pipeline_worker(root: Path, scale: int, out: Path) -> None:
    settings = bench_settings(root, scale)
    cpu_start = sum(psutil.Process().cpu_times()[:2])
    started_at, start = time.time(), time.perf_counter()
    outcomes = run_partitions(build_definitions(settings), settings, MONTH_KEYS)
    wall = time.perf_counter() - start
    finished_at = time.time()
    cpu = sum(psutil.Process().cpu_times()[:2]) - cpu_start
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open_instance(settings) as instance:
        runs = [
            {"partition": outcome.partition, "success": outcome.success, "errors": list(outcome.errors)}
            | _run_events(instance, outcome.run_id)
            for outcome in outcomes
        ]
    out.write_text(
        json.dumps(
            {
                "wall_seconds": wall,
                "started_at": started_at,
                "finished_at": finished_at,
                "cpu_seconds": cpu,
                "ru_maxrss_mib": ru_maxrss,
                "runs": runs,
            },
            indent=1,
        )
    )


def _step_layer(step: dict[str, Any]) -> str:
    heads = [materialization["asset"][0] for materialization in step["materializations"]]
    for layer in STEP_LAYERS:
        if layer in heads:
            return layer
    return heads[0] if heads else "checks"


def summarize_pipeline(sampled: Sampled) -> dict[str, Any]:
    result = sampled.result
    rows = {layer: LayerRow() for layer in LAYERS}
    rows["quarantine"].note = "written by the staging steps; time and memory are inside staging"
    rows["orchestration"].note = "wall time outside any step: run start/end, planning, event log, resources"
    intervals: list[tuple[float, float, str]] = []
    errors: list[str] = []
    findings: list[str] = []
    step_seconds = 0.0
    for run in result["runs"]:
        if not run["success"]:
            errors.append(f"{run['partition']}: run failed: {'; '.join(run['errors']) or 'see the event log'}")
        for step in run["steps"]:
            if "start" not in step or "end" not in step:
                continue
            layer = _step_layer(step)
            row = rows.setdefault(layer, LayerRow())
            duration = step["end"] - step["start"]
            step_seconds += duration
            row.seconds = (row.seconds or 0.0) + duration
            row.steps += 1
            intervals.append((step["start"], step["end"], layer))
            if step.get("status") == "STEP_FAILURE":
                errors.append(f"{run['partition']} {step['step_key']}: {step.get('error', '').strip()}")
            row.rows_in += max((m["rows_in"] or 0 for m in step["materializations"]), default=0)
            for materialization in step["materializations"]:
                rows.setdefault(materialization["asset"][0], LayerRow()).rows_out += materialization["rows_out"] or 0
            for check in step["checks"]:
                if not check["passed"]:
                    findings.append(
                        f"{run['partition']} {check['asset']} {check['check']} ({check['severity']}): "
                        f"{check['description']}"
                    )
    window = (result["started_at"], result["finished_at"])
    peaks = peaks_by_layer(sampled.samples, intervals, window)
    for layer, row in rows.items():
        if layer in peaks:
            row.peak_rss_mib, row.growth_mib = peaks[layer].peak_mib, peaks[layer].growth_mib
    rows["orchestration"].seconds = result["wall_seconds"] - step_seconds
    return {
        "wall_seconds": result["wall_seconds"],
        "cpu_seconds": result["cpu_seconds"],
        "ru_maxrss_mib": result["ru_maxrss_mib"],
        "peak_rss_sampled_mib": max((rss for _, rss in sampled.samples), default=0) / _MIB,
        "layers": {layer: row.to_json() for layer, row in rows.items()},
        "runs": len(result["runs"]),
        "complete": not errors and all(rows[layer].rows_out > 0 for layer in ("core", "marts")),
        "steps_per_run": len(result["runs"][0]["steps"]) if result["runs"] else 0,
        "errors": errors,
        "check_findings": findings,
        **_load_json(sampled),
    }


def summarize_plain(sampled: Sampled) -> dict[str, Any]:
    result = sampled.result
    intervals = [(start, end, layer) for layer, stats in result["layers"].items() for start, end in stats["intervals"]]
    peaks = peaks_by_layer(sampled.samples, intervals, (result["started_at"], result["finished_at"]))
    layers = {}
    for layer, stats in result["layers"].items():
        row = LayerRow(
            seconds=stats["seconds"],
            rows_in=stats["rows_in"],
            rows_out=stats["rows_out"],
            steps=len(stats["intervals"]),
        )
        if layer in peaks:
            row.peak_rss_mib, row.growth_mib = peaks[layer].peak_mib, peaks[layer].growth_mib
        layers[layer] = row.to_json()
    quarantine = LayerRow(rows_out=result["quarantined_rows"], note="written in staging")
    layers["quarantine"] = quarantine.to_json()
    return {
        "wall_seconds": result["wall_seconds"],
        "cpu_seconds": result["cpu_seconds"],
        "ru_maxrss_mib": result["ru_maxrss_mib"],
        "peak_rss_sampled_mib": max((rss for _, rss in sampled.samples), default=0) / _MIB,
        "layers": layers,
        **_load_json(sampled),
    }


def _load_json(sampled: Sampled) -> dict[str, Any]:
    return {
        "process_wall_seconds": sampled.wall_seconds,
        "loadavg_before": list(sampled.load_before),
        "loadavg_after": list(sampled.load_after),
        "worker_cpu_seconds_incl_imports": sampled.worker_cpu_seconds,
        "other_cpu_seconds": sampled.other_cpu_seconds,
        "other_cpu_share_of_machine": sampled.other_cpu_seconds / (sampled.wall_seconds * (os.cpu_count() or 1)),
    }


# ------------------------------------------------------------------------------------------- isolation worker


class _LoggingConnection:
    """A DuckDB connection that records every statement it executes."""

    def __init__(self, connection: Any, log: list[str]) -> None:
        self._connection = connection
        self._log = log

    def execute(self, query: str, parameters: Any = None) -> Any:
        self._log.append(" ".join(str(query).split()))
        if parameters is None:
            return self._connection.execute(query)
        return self._connection.execute(query, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


_TABLE_REF = re.compile(r"\b(?:from|into|table(?: if not exists)?)\s+([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)", re.I)
_WINDOW = "{expr} >= '{start}' AND {expr} < '{end}'"


def _isolation_worker(root: Path, partition: str, out: Path) -> None:
    settings = settings_for("stage", data_root=root)
    landing = str(settings.landing_dir.resolve())
    statements: list[str] = []
    opened: list[str] = []
    loads: list[dict[str, Any]] = []

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and isinstance(args[0], str | os.PathLike):
            path = str(Path(os.fspath(args[0])).absolute())
            if path.startswith(landing):
                opened.append(path)

    sys.addaudithook(audit)
    real_connect = duckdb.connect

    def logging_connect(*args: Any, **kwargs: Any) -> _LoggingConnection:
        return _LoggingConnection(real_connect(*args, **kwargs), statements)

    duckdb.connect = logging_connect  # type: ignore[assignment]
    handler_types = {type(handler) for handler in warehouse.WarehouseIOManager.type_handlers()}
    for handler_type in handler_types:
        _wrap_load_input(handler_type, loads)

    defs = build_definitions(settings)
    outcomes = run_partitions(defs, settings, [partition])
    with open_instance(settings) as instance:
        run = _run_events(instance, outcomes[0].run_id)
    partitioned = {
        f"{node.key.path[0]}.{node.key.path[-1]}"
        for node in defs.resolve_asset_graph().asset_nodes
        if node.partitions_def is not None
    }
    observed = _Observed(partition, landing, statements, opened, loads, partitioned, run, outcomes[0].success)
    out.write_text(json.dumps(_judge_isolation(observed), indent=1))


def _wrap_load_input(handler_type: type, loads: list[dict[str, Any]]) -> None:
    original: Callable[..., Any] = handler_type.load_input  # type: ignore[attr-defined]

    def load_input(self: Any, context: Any, table_slice: Any, connection: Any) -> Any:
        frame = original(self, context, table_slice, connection)
        record: dict[str, Any] = {
            "asset": list(context.asset_key.path),
            "table": f"{table_slice.schema}.{table_slice.table}",
            "rows": len(frame),
            "windows": [],
        }
        for dimension in table_slice.partition_dimensions or []:
            start, end = dimension.partitions
            expr = dimension.partition_expr
            window: dict[str, Any] = {"expr": expr, "start": str(start), "end": str(end)}
            if expr in frame.columns:
                values = frame[expr]
                lo = _naive(start)
                hi = _naive(end)
                window["min"] = str(values.min())
                window["max"] = str(values.max())
                window["rows_outside"] = int(((values < lo) | (values >= hi)).sum())
            record["windows"].append(window)
        loads.append(record)
        return frame

    handler_type.load_input = load_input  # type: ignore[attr-defined]


def _naive(instant: Any) -> Any:
    stamp = pd.Timestamp(instant)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


@dataclass
class _Observed:
    """What one isolated partition run did: statements, files opened, frames loaded, and its event log."""

    partition: str
    landing: str
    statements: list[str]
    opened: list[str]
    loads: list[dict[str, Any]]
    partitioned_tables: set[str]
    run: dict[str, Any]
    success: bool

    @property
    def window(self) -> tuple[str, str]:
        year, month = (int(part) for part in self.partition.split("-"))
        return f"{year}-{month:02d}-01 00:00:00", f"{year + month // 12}-{month % 12 + 1:02d}-01 00:00:00"


def _judge_isolation(observed: _Observed) -> dict[str, Any]:
    """Violations: a landing file of another month opened, a row query or delete on a partitioned table without
    this partition's window, a loaded frame with rows outside the window or other than the rows the run wrote."""
    violations = _file_violations(observed) + _load_violations(observed)
    kinds, statement_violations, notes = _classify_statements(observed)
    violations += statement_violations
    return {
        "partition": observed.partition,
        "run_success": observed.success,
        "landing_files_opened": sorted({str(Path(p).relative_to(observed.landing)) for p in observed.opened}),
        "statements": len(observed.statements),
        "statements_by_kind": kinds,
        "loads": observed.loads,
        "violations": violations,
        "notes": sorted(set(notes)),
        "met": observed.success and not violations,
    }


def _file_violations(observed: _Observed) -> list[str]:
    month_files = {path for path in observed.opened if "/flights/" in path or "/weather/" in path}
    return [
        f"opened another partition's landing file {path}"
        for path in sorted(month_files)
        if Path(path).stem != observed.partition
    ]


def _classify_statements(observed: _Observed) -> tuple[dict[str, int], list[str], list[str]]:
    start, end = observed.window
    kinds: dict[str, int] = {}
    violations: list[str] = []
    notes: list[str] = []
    for statement in observed.statements:
        lowered = statement.lower()
        targets = [f"{s}.{t}" for s, t in _TABLE_REF.findall(statement) if f"{s}.{t}" in observed.partitioned_tables]
        if not targets:
            kind = "other (no partitioned table)"
        elif lowered.startswith("insert"):
            kind = "insert of this run's frame"
        elif lowered.startswith("create"):
            kind = "create if not exists (schema only)"
        elif lowered.startswith("delete") or (lowered.startswith("select") and "count(*)" not in lowered):
            kind = "delete of this partition" if lowered.startswith("delete") else "row select (load)"
            expected = [_WINDOW.format(expr=e, start=start, end=end) for e in re.findall(r"(\w+) >= '", statement)]
            if not expected or not all(clause in statement for clause in expected):
                violations.append(
                    f"{kind} on {', '.join(targets)} without the {observed.partition} window: {statement}"
                )
        else:
            kind = "whole-table count(*) (one number, no rows)"
            notes.append(f"aggregate over all partitions: {statement[:200]}")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds, violations, notes


def _load_violations(observed: _Observed) -> list[str]:
    written = {
        f"{m['asset'][0]}.{m['asset'][-1]}": m["rows_out"]
        for step in observed.run["steps"]
        for m in step["materializations"]
    }
    violations = []
    for load in observed.loads:
        if not load["windows"]:
            continue
        for window in load["windows"]:
            if window.get("rows_outside"):
                violations.append(f"{load['table']}: {window['rows_outside']} loaded rows outside {observed.partition}")
            if window["start"][:7] != observed.partition:
                violations.append(f"{load['table']}: loaded window {window['start']}..{window['end']}")
        expected = written.get(load["table"])
        if expected is not None and load["rows"] != expected:
            violations.append(f"{load['table']}: loaded {load['rows']} rows, the run wrote {expected}")
    return violations


# ------------------------------------------------------------------------------------------------ orchestration


def measure_import(env: dict[str, str], attempts: int = 3) -> dict[str, Any]:
    code = "import time; t = time.perf_counter(); import dataops_assets.definitions; print(time.perf_counter() - t)"
    times = []
    for _ in range(attempts):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"import dataops_assets.definitions failed:\n{done.stderr[-2000:]}")
        times.append(float(done.stdout.strip().splitlines()[-1]))
    profile = subprocess.run(
        [sys.executable, "-W", "ignore", "-X", "importtime", "-c", "import dataops_assets.definitions"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        check=False,
    )
    top = _top_imports(profile.stderr)
    return {"seconds": min(times), "attempts": times, "import_seconds_by_package": top, "loadavg": os.getloadavg()}


def _top_imports(importtime: str, count: int = 8) -> dict[str, float]:
    """Seconds spent importing each top-level package (sum of the self times in ``-X importtime`` output)."""
    totals: dict[str, float] = {}
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if match:
            name = match.group(2).split(".")[0]
            totals[name] = totals.get(name, 0.0) + int(match.group(1)) / 1e6
    return dict(sorted(totals.items(), key=lambda item: -item[1])[:count])


@contextmanager
def _say(what: str) -> Iterator[None]:
    print(f"... {what}", flush=True)
    start = time.perf_counter()
    yield
    print(f"    done in {time.perf_counter() - start:.1f} s", flush=True)


def prepare(scale: int, reuse_landing: bool) -> tuple[Path, dict[str, Any]]:
    root = BENCH_ROOT / f"x{scale}"
    settings = settings_for("stage", data_root=root)
    marker = settings.landing_dir / ".bench-scale"
    info: dict[str, Any] = {"data_root": str(root)}
    if reuse_landing and marker.is_file() and marker.read_text().strip() == str(scale):
        info["landing_seconds"] = None
        info["landed_rows"] = json.loads((settings.landing_dir / ".bench-rows").read_text())
    else:
        shutil.rmtree(settings.landing_dir, ignore_errors=True)
        start = time.perf_counter()
        landed = land(settings, scale=scale)
        info["landing_seconds"] = time.perf_counter() - start
        rows = {"flights": 0, "weather": 0, "reference": 0}
        for item in landed:
            rows[item.path.parent.name] += item.rows
        info["landed_rows"] = rows
        (settings.landing_dir / ".bench-rows").write_text(json.dumps(rows))
        marker.write_text(str(scale))
    _clean(root)
    return root, info


def _clean(root: Path) -> None:
    """Remove the warehouse and the Dagster home, so every pipeline measurement starts from nothing."""
    settings = settings_for("stage", data_root=root)
    for path in (settings.warehouse_path, settings.warehouse_path.with_name(settings.warehouse_path.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(settings.dagster_home, ignore_errors=True)


def table_counts(database: Path) -> dict[str, int]:
    with duckdb.connect(str(database), read_only=True) as connection:
        tables = connection.execute("select table_schema, table_name from information_schema.tables").fetchall()
        counts = {}
        for schema, table in tables:
            row = connection.execute(f"select count(*) from {schema}.{table}").fetchone()
            counts[f"{schema}.{table}"] = int(row[0]) if row else 0
        return dict(sorted(counts.items()))


def bench_scale(scale: int, reuse_landing: bool, env: dict[str, str], repeat: int = 1) -> dict[str, Any]:
    """Plain, then pipeline, ``repeat`` times on one landing; the tables show the fastest attempt of each."""
    with _say(f"x{scale}: landing stage data"):
        root, info = prepare(scale, reuse_landing)
    landing_dir = root / "stage" / "landing"
    plain_db = root / "stage" / "plain.duckdb"
    plains: list[dict[str, Any]] = []
    pipelines: list[dict[str, Any]] = []
    for attempt in range(1, repeat + 1):
        label = f"x{scale}" + (f" attempt {attempt}/{repeat}" if repeat > 1 else "")
        with _say(f"{label}: plain pandas"):
            plain = run_sampled(
                [
                    sys.executable,
                    str(PLAIN_SCRIPT),
                    "--landing-dir",
                    str(landing_dir),
                    "--database",
                    str(plain_db),
                    "--json",
                    str(root / "plain.json"),
                    "--no-sampler",
                ],
                root / "plain.json",
                root / "plain.log",
                env,
            )
        plains.append(summarize_plain(plain))
        _clean(root)
        with _say(f"{label}: Dagster pipeline, 12 partitions"):
            pipeline = run_sampled(
                [*_worker_command("pipeline", root), "--scale", str(scale), "--out", str(root / "pipeline.json")],
                root / "pipeline.json",
                root / "pipeline.log",
                env,
            )
        pipelines.append(summarize_pipeline(pipeline))
    complete = [summary for summary in pipelines if summary["complete"]]
    pipeline_summary = min(complete or pipelines, key=lambda summary: summary["wall_seconds"])
    plain_summary = min(plains, key=lambda summary: summary["wall_seconds"])
    warehouse_counts = table_counts(root / "stage" / "warehouse.duckdb")
    plain_counts = table_counts(plain_db)
    return {
        "scale": scale,
        **info,
        "pipeline": pipeline_summary,
        "plain": plain_summary,
        "pipeline_complete": pipeline_summary["complete"],
        "thresholds": {
            "min_flights_per_month": bench_settings(root, scale).thresholds.min_flights_per_month,
            "max_flights_per_month": bench_settings(root, scale).thresholds.max_flights_per_month,
        },
        "ratio": pipeline_summary["wall_seconds"] / plain_summary["wall_seconds"],
        "cpu_ratio": pipeline_summary["cpu_seconds"] / plain_summary["cpu_seconds"],
        "attempts": [
            {
                "pipeline_complete": p["complete"],
                "pipeline_wall_seconds": p["wall_seconds"],
                "pipeline_cpu_seconds": p["cpu_seconds"],
                "pipeline_other_cpu_share": p["other_cpu_share_of_machine"],
                "plain_wall_seconds": q["wall_seconds"],
                "plain_cpu_seconds": q["cpu_seconds"],
                "plain_other_cpu_share": q["other_cpu_share_of_machine"],
            }
            for p, q in zip(pipelines, plains, strict=True)
        ],
        "errors": [error for summary in pipelines for error in summary["errors"]],
        # The pipeline also keeps its own records (e.g. an ``ops`` schema); the layers' tables must match.
        "same_tables_and_rows": all(warehouse_counts.get(table) == rows for table, rows in plain_counts.items()),
        "pipeline_only_tables": sorted(set(warehouse_counts) - set(plain_counts)),
        "warehouse_rows": warehouse_counts,
        "plain_rows": plain_counts,
    }


def _worker_command(worker: str, root: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", worker, "--root", str(root)]


def bench_isolation(env: dict[str, str]) -> dict[str, Any]:
    root = BENCH_ROOT / "x1"
    out = root / "isolation.json"
    with _say(f"partition isolation: re-running {ISOLATION_PARTITION} on the 1x warehouse with all 12 months"):
        sampled = run_sampled(
            [*_worker_command("isolation", root), "--partition", ISOLATION_PARTITION, "--out", str(out)],
            out,
            root / "isolation.log",
            env,
        )
    return sampled.result


def _code_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_files": git("status", "--porcelain").splitlines()}


# --------------------------------------------------------------------------------------------------- reporting


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def format_scale(result: dict[str, Any]) -> str:
    pipeline, plain = result["pipeline"], result["plain"]
    rows = result["landed_rows"]
    lines = [
        f"x{result['scale']}: {rows['flights']:,} flights, {rows['weather']:,} weather rows, 12 partitions "
        f"(landing took {_fmt(result['landing_seconds'], '.1f')} s, not measured); stage thresholds "
        f"{result['thresholds']['min_flights_per_month']:,}-{result['thresholds']['max_flights_per_month']:,} "
        f"flights/month" + (f" (x{result['scale']} the stage band)" if result["scale"] > 1 else ""),
        f"  {'':<14}{'--- Dagster pipeline ':-<70}   {'--- plain pandas ':-<51}",
        f"  {'layer':<14}{'s':>8}{'rows in':>12}{'rows out':>12}{'rows in/s':>11}{'peak MiB':>10}{'grow MiB':>10}"
        f"{'steps':>7}   {'s':>8}{'rows in':>12}{'rows in/s':>11}{'peak MiB':>10}{'grow MiB':>10}",
    ]
    for layer in LAYERS:
        p = pipeline["layers"].get(layer)
        q = plain["layers"].get(layer)
        if p is None and q is None:
            continue
        p = p or {}
        q = q or {}
        lines.append(
            f"  {layer:<14}{_fmt(p.get('seconds'), '.1f'):>8}{_fmt(p.get('rows_in')):>12}{_fmt(p.get('rows_out')):>12}"
            f"{_fmt(p.get('rows_in_per_second')):>11}{_fmt(p.get('peak_rss_mib')):>10}"
            f"{_fmt(p.get('peak_growth_within_one_step_mib')):>10}{_fmt(p.get('steps')):>7}"
            f"   {_fmt(q.get('seconds'), '.1f'):>8}{_fmt(q.get('rows_in')):>12}{_fmt(q.get('rows_in_per_second')):>11}"
            f"{_fmt(q.get('peak_rss_mib')):>10}{_fmt(q.get('peak_growth_within_one_step_mib')):>10}"
        )
    lines += [
        f"  {'wall time':<14}{pipeline['wall_seconds']:>8.1f}{'':>62}   {plain['wall_seconds']:>8.1f}"
        f"   ratio {result['ratio']:.2f}x",
        f"  {'cpu time':<14}{pipeline['cpu_seconds']:>8.1f}{'':>62}   {plain['cpu_seconds']:>8.1f}"
        f"   ratio {result['cpu_ratio']:.2f}x",
        f"  {'process peak':<14}{pipeline['ru_maxrss_mib']:>8,.0f} MiB (ru_maxrss){'':>44}   "
        f"{plain['ru_maxrss_mib']:>8,.0f} MiB",
        f"  load: pipeline loadavg {pipeline['loadavg_before'][0]:.2f}->{pipeline['loadavg_after'][0]:.2f}, "
        f"other processes used {pipeline['other_cpu_share_of_machine']:.0%} of the machine; plain loadavg "
        f"{plain['loadavg_before'][0]:.2f}->{plain['loadavg_after'][0]:.2f}, others "
        f"{plain['other_cpu_share_of_machine']:.0%}",
        f"  layer tables and row counts equal in both DuckDB files: "
        f"{'yes' if result['same_tables_and_rows'] else 'NO'}; "
        f"pipeline complete (every run succeeded, core and marts written): "
        f"{'yes' if result['pipeline_complete'] else 'NO'}",
    ]
    if len(result["attempts"]) > 1:
        walls = "; ".join(
            f"{a['pipeline_wall_seconds']:.1f} vs {a['plain_wall_seconds']:.1f} s "
            f"(others {a['pipeline_other_cpu_share']:.0%}/{a['plain_other_cpu_share']:.0%})"
            for a in result["attempts"]
        )
        lines.append(f"  attempts (pipeline vs plain wall; the table shows the fastest of each): {walls}")
    findings = pipeline["check_findings"]
    if findings:
        lines.append(f"  check findings (not errors): {len(findings)}, e.g. {findings[0]}")
    return "\n".join(lines)


def format_report(results: dict[str, Any]) -> str:
    lines = ["", "=" * 118, "make bench: Dagster pipeline vs plain pandas, stage, full year", "=" * 118]
    for scale in results["scales"].values():
        lines += [format_scale(scale), ""]
    imports = results["import"]
    if imports:
        top = ", ".join(f"{name} {seconds:.2f}" for name, seconds in imports["import_seconds_by_package"].items())
        lines.append(
            f"import dataops_assets.definitions: {imports['seconds']:.2f} s best of "
            f"{len(imports['attempts'])} ({', '.join(f'{t:.2f}' for t in imports['attempts'])}; loadavg "
            f"{imports['loadavg'][0]:.2f}); by package: {top}"
        )
    isolation = results["isolation"]
    if isolation:
        kinds = ", ".join(f"{kind}: {count}" for kind, count in isolation["statements_by_kind"].items())
        lines.append(
            f"isolation, {isolation['partition']}: {isolation['statements']} DuckDB statements ({kinds}); "
            f"{len(isolation['loads'])} input loads; landing files opened: "
            f"{', '.join(isolation['landing_files_opened'])}"
        )
        for violation in isolation["violations"]:
            lines.append(f"  VIOLATION {violation}")
        for note in isolation["notes"]:
            lines.append(f"  note: {note}")
    lines += ["", "goals:"]
    for goal in results["goals"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[goal["met"]]
        lines.append(f"  [{verdict:>12}] {goal['goal']}: {goal['measured']}")
    lines.append(f"results: {RESULTS}")
    return "\n".join(lines)


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    scale = results["scales"].get(f"x{GOAL_RATIO_SCALE}")
    imports = results["import"]
    isolation = results["isolation"]
    return [
        {
            "goal": f"at {GOAL_RATIO_SCALE}x the pipeline takes at most {GOAL_RATIO:g}x the plain script",
            "met": None if scale is None or not scale["pipeline_complete"] else scale["ratio"] <= GOAL_RATIO,
            "measured": "-"
            if scale is None
            else f"{scale['pipeline']['wall_seconds']:.1f} s vs {scale['plain']['wall_seconds']:.1f} s = "
            f"{scale['ratio']:.2f}x" + ("" if scale["pipeline_complete"] else " (pipeline did NOT complete)"),
        },
        {
            "goal": "processing one partition never loads another partition's data",
            "met": None if not isolation else isolation["met"],
            "measured": "-"
            if not isolation
            else f"{len(isolation['violations'])} violation(s) in a re-run of {isolation['partition']}",
        },
        {
            "goal": f"importing the definitions takes under {GOAL_IMPORT_SECONDS:g} s",
            "met": None if not imports else imports["seconds"] < GOAL_IMPORT_SECONDS,
            "measured": "-" if not imports else f"{imports['seconds']:.2f} s",
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--reuse-landing", action="store_true", help="keep a landing of the same scale")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure plain and pipeline N times each, report the fastest of each"
    )
    parser.add_argument("--skip-isolation", action="store_true")
    parser.add_argument("--worker", choices=["pipeline", "isolation"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--partition", default=ISOLATION_PARTITION, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "pipeline":
        _pipeline_worker(args.root, args.scale, args.out)
        return 0
    if args.worker == "isolation":
        _isolation_worker(args.root, args.partition, args.out)
        return 0

    env = worker_environment()
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": psutil.virtual_memory().total / 1024**3,
            "python": platform.python_version(),
            "loadavg_at_start": list(os.getloadavg()),
        },
        "code": _code_state(),
        "memory_method": "RSS of the worker sampled every 20 ms with psutil from the parent process; each sample is "
        "attributed to the step (pipeline, by STEP_START/STEP_SUCCESS timestamps) or layer (plain) running at "
        "that instant; peak = largest sample. ru_maxrss is the exact process peak.",
        "scales": {},
        "import": {},
        "isolation": {},
        "errors": [],
    }
    BENCH_ROOT.mkdir(parents=True, exist_ok=True)
    with _say("import time of dataops_assets.definitions, best of 3"):
        results["import"] = measure_import(env)
    for scale in args.scales:
        try:
            results["scales"][f"x{scale}"] = bench_scale(scale, args.reuse_landing, env, args.repeat)
            results["errors"] += [f"x{scale}: {e}" for e in results["scales"][f"x{scale}"]["errors"]]
        except BenchError as error:
            results["errors"].append(f"x{scale}: {error}")
        _write(results)
        if f"x{scale}" in results["scales"]:
            print(format_scale(results["scales"][f"x{scale}"]), flush=True)
    if not args.skip_isolation and "x1" in results["scales"]:
        try:
            results["isolation"] = bench_isolation(env)
            if not results["isolation"]["run_success"]:
                results["errors"].append("isolation run failed")
        except BenchError as error:
            results["errors"].append(f"isolation: {error}")
    results["goals"] = goals(results)
    _write(results)
    print(format_report(results))
    for message in results["errors"]:
        print(f"ERROR {message}", file=sys.stderr)
    return 1 if results["errors"] else 0


def worker_environment() -> dict[str, str]:
    """The workers' environment: stage, and no alerting or lineage destination, so nothing leaves the machine
    (alerts and HTTP lineage are only configured when their variables are set; GX analytics off)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(OUTBOUND_PREFIXES) and name not in OUTBOUND_VARIABLES
    }
    return env | {
        "DATAOPS_ENV": "stage",
        "DATAOPS_DATA_ROOT": str(BENCH_ROOT / "import"),
        "GX_ANALYTICS_ENABLED": "False",
        "DAGSTER_DISABLE_TELEMETRY": "1",
        "PYTHONHASHSEED": "0",
    }


def _write(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
