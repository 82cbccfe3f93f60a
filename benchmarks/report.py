"""What ``make bench`` reports: figures read from the pipeline's runs, the goals, and the printed table.

``var/bench/results.json`` holds, per scale (``scales.x10``), one entry per flow in the same shape (``pipeline``,
``plain``, ``sql``): ``wall_seconds``, ``cpu_seconds``, ``peak_process_mib``, ``peak_tree_mib``,
``other_cpu_share`` (see ``measure.py``), ``layers`` (seconds per layer) and ``tables`` (rows per ``layer.table``).
The baselines add ``inner_seconds`` (their own work, without interpreter start and imports); the pipeline adds
``run_seconds_by_month``, ``checks`` (Great Expectations seconds: validation, setup), ``step_seconds`` (the
runs' step time, ``all`` and ``checks``: the steps that only evaluate checks), ``complete``, ``errors`` and
``findings`` (checks that failed without blocking, e.g. the source's known gaps); ``single_month`` is the slowest
month run alone, also from nothing.
``layers`` of the pipeline are the assets' own compute times (``duration_s``) summed over months: with months in
parallel they add up to more than the wall time, and they leave out storage and orchestration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dataops_assets.observability.runlog import RunDigest, plain

GOAL_SCALE = 10
GOAL_VS_PLAIN = 1.5
GOAL_VS_SQL = 3.0
GOAL_BACKFILL_VS_MONTH = 7.0
GOAL_PEAK_PROCESS_MIB = 1.5 * 1024
GOAL_IMPORT_SECONDS = 1.5
GOAL_CHECK_SHARE = 0.30
_GX_SECONDS = {"validation_seconds": "validation", "gx_setup_seconds": "setup"}
_LAYER_ORDER = ("raw", "staging", "quarantine", "core", "marts", "finish")


def _table(asset: str) -> str:
    """``core/flights`` -> ``core.flights``, as the baselines name their tables."""
    parts = asset.split("/")
    return f"{parts[0]}.{parts[-1]}"


def pipeline_tables(runs: Iterable[RunDigest]) -> dict[str, int]:
    """Rows per table as the runs left them: per asset and month, the rows of its last materialization."""
    latest: dict[tuple[str, str | None], tuple[float, int]] = {}
    for run in runs:
        for asset in run.assets:
            if asset.materialized is None or asset.rows_written is None:
                continue
            key = (_table(asset.asset), asset.partition)
            if key not in latest or latest[key][0] <= asset.materialized:
                latest[key] = (asset.materialized, asset.rows_written)
    tables: dict[str, int] = {}
    for (table, _), (_, rows) in latest.items():
        tables[table] = tables.get(table, 0) + rows
    return dict(sorted(tables.items()))


def layer_seconds(runs: Iterable[RunDigest]) -> dict[str, float]:
    """Compute seconds per layer (the first part of the asset key), from each materialization's ``duration_s``."""
    seconds: dict[str, float] = {}
    for run in runs:
        for asset in run.assets:
            duration = plain(asset.metadata.get("duration_s"))
            if isinstance(duration, int | float):
                layer = asset.key.path[0]
                seconds[layer] = seconds.get(layer, 0.0) + float(duration)
    return seconds


def check_seconds(runs: Iterable[RunDigest]) -> dict[str, float]:
    """Seconds the Great Expectations checks spent, from their results' metadata: ``validation`` itself, and
    ``setup`` (importing GX and creating its context, once per run process)."""
    totals = dict.fromkeys(_GX_SECONDS.values(), 0.0)
    for run in runs:
        for check in run.checks:
            for key, name in _GX_SECONDS.items():
                text = check.metadata.get(key)
                totals[name] += float(text) if text not in (None, "None") else 0.0
    return totals


def step_seconds(runs: Iterable[RunDigest]) -> dict[str, float]:
    """Seconds of the runs' steps (Dagster's step start to step end), all of them and the check steps alone (the
    steps that evaluated checks and materialized nothing: GX suites, completeness, volume, reconciliation...)."""
    runs = list(runs)
    every = sum(seconds for run in runs for seconds in run.step_seconds.values())
    checks = sum(seconds for run in runs for key, seconds in run.step_seconds.items() if key in run.check_steps)
    return {"all": every, "checks": checks}


def run_failures(runs: Iterable[RunDigest]) -> list[str]:
    return [
        f"run {run.run_id} ({run.partition or run.job_name}): {run.failure_message or run.status}"
        for run in runs
        if run.status != "SUCCESS"
    ]


def check_findings(runs: Iterable[RunDigest]) -> list[str]:
    """Every check that failed, one line each (the WARN ones are the data's known gaps, not errors)."""
    return [
        f"{check.partition} {check.asset} {check.check} ({check.severity}): {check.description.partition(chr(10))[0]}"
        for run in runs
        for check in run.failed_checks
    ]


def compare_tables(pipeline: dict[str, int], baseline: dict[str, int]) -> dict[str, Any]:
    """Whether the baseline's layer tables hold as many rows as the pipeline's, and where they differ."""
    differences = {
        table: {"pipeline": pipeline.get(table), "baseline": rows}
        for table, rows in baseline.items()
        if pipeline.get(table) != rows
    }
    return {"equal": not differences, "differences": differences}


def _largest(results: dict[str, Any]) -> dict[str, Any] | None:
    scales = results["scales"]
    if f"x{GOAL_SCALE}" in scales:
        return dict(scales[f"x{GOAL_SCALE}"])
    return dict(max(scales.values(), key=lambda scale: scale["scale"])) if scales else None


def _goal(goal: str, measured: float | None, limit: float, text: str, scale: dict[str, Any] | None) -> dict[str, Any]:
    """A goal's verdict: met or missed at the goal's scale; at a smaller scale the figure is only indicative."""
    at_goal_scale = scale is not None and scale["scale"] == GOAL_SCALE and scale["pipeline"]["complete"]
    return {
        "goal": goal,
        "measured": text if measured is not None else "-",
        "value": measured,
        "limit": limit,
        "scale": None if scale is None else scale["scale"],
        "met": (measured <= limit) if measured is not None and at_goal_scale else None,
    }


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    scale = _largest(results)
    pipeline = scale["pipeline"] if scale else None
    vs_plain = vs_sql = backfill = peak = check_share = None
    texts = {"plain": "", "sql": "", "backfill": "", "peak": "", "checks": ""}
    if scale and pipeline:
        vs_plain = pipeline["wall_seconds"] / scale["plain"]["wall_seconds"]
        vs_sql = pipeline["wall_seconds"] / scale["sql"]["wall_seconds"]
        texts["plain"] = f"{pipeline['wall_seconds']:.1f} s vs {scale['plain']['wall_seconds']:.1f} s = {vs_plain:.2f}x"
        texts["sql"] = f"{pipeline['wall_seconds']:.1f} s vs {scale['sql']['wall_seconds']:.1f} s = {vs_sql:.2f}x"
        peak = pipeline["peak_process_mib"]
        texts["peak"] = f"{peak:,.0f} MiB ({pipeline['peak_process'][:80]})"
        steps = pipeline.get("step_seconds")
        if steps and steps["all"]:
            check_share = steps["checks"] / steps["all"]
            texts["checks"] = f"{steps['checks']:.1f} s of {steps['all']:.1f} s = {check_share:.1%}"
        single = scale.get("single_month")
        if single:
            backfill = pipeline["wall_seconds"] / single["wall_seconds"]
            texts["backfill"] = (
                f"{len(scale['months'])} months {pipeline['wall_seconds']:.1f} s vs {single['month']} alone "
                f"{single['wall_seconds']:.1f} s = {backfill:.2f}x"
            )
    imported = results.get("import", {}).get("seconds")
    return [
        _goal(
            f"pipeline at most {GOAL_VS_PLAIN:g}x the plain pandas script",
            vs_plain,
            GOAL_VS_PLAIN,
            texts["plain"],
            scale,
        ),
        _goal(f"pipeline at most {GOAL_VS_SQL:g}x the plain SQL flow", vs_sql, GOAL_VS_SQL, texts["sql"], scale),
        _goal(
            f"the backfill at most {GOAL_BACKFILL_VS_MONTH:g}x the slowest month alone",
            backfill,
            GOAL_BACKFILL_VS_MONTH,
            texts["backfill"],
            scale,
        ),
        _goal("peak memory of any one process at most 1.5 GiB", peak, GOAL_PEAK_PROCESS_MIB, texts["peak"], scale),
        _goal(
            f"check steps at most {GOAL_CHECK_SHARE:.0%} of the pipeline's step time",
            check_share,
            GOAL_CHECK_SHARE,
            texts["checks"],
            scale,
        ),
        {
            "goal": f"importing the definitions under {GOAL_IMPORT_SECONDS:g} s",
            "measured": "-" if imported is None else f"{imported:.2f} s",
            "value": imported,
            "limit": GOAL_IMPORT_SECONDS,
            "scale": None,
            "met": None if imported is None else imported < GOAL_IMPORT_SECONDS,
        },
    ]


def _fmt(value: float | None, spec: str = ",.1f") -> str:
    return "-" if value is None else format(value, spec)


_FLOWS = (("pipeline", "dataops run"), ("plain", "plain pandas"), ("sql", "plain SQL"))


def format_scale(scale: dict[str, Any]) -> str:
    pipeline = scale["pipeline"]
    flights = pipeline["tables"].get("raw.flights") or scale["plain"]["tables"].get("raw.flights", 0)
    lines = [
        f"x{scale['scale']}: {flights:,} flights, {len(scale['months'])} months"
        + (" (landing reused)" if scale["reused"] else f" (landing {scale['landing_seconds']:.1f} s, not compared)"),
        f"  {'':<14}{'wall s':>9}{'cpu s':>9}{'inner s':>9}{'peak proc MiB':>15}{'peak tree MiB':>15}"
        f"{'others cpu':>12}",
    ]
    for name, label in _FLOWS:
        flow = scale[name]
        lines.append(
            f"  {label:<14}{flow['wall_seconds']:>9.1f}{flow['cpu_seconds']:>9.1f}{_fmt(flow.get('inner_seconds')):>9}"
            f"{flow['peak_process_mib']:>15,.0f}{flow['peak_tree_mib']:>15,.0f}{flow['other_cpu_share']:>12.0%}"
        )
    single = scale.get("single_month")
    if single:
        lines.append(
            f"  {single['month'] + ' alone':<14}{single['wall_seconds']:>9.1f}{single['cpu_seconds']:>9.1f}{'-':>9}"
            f"{single['peak_process_mib']:>15,.0f}{single['peak_tree_mib']:>15,.0f}{single['other_cpu_share']:>12.0%}"
        )
    found = {layer for name, _ in _FLOWS for layer in scale[name]["layers"]}
    layers = [layer for layer in _LAYER_ORDER if layer in found] + sorted(found - set(_LAYER_ORDER))
    lines.append(f"  seconds by layer ({', '.join(label for _, label in _FLOWS)}; the pipeline's are compute only):")
    for layer in layers:
        figures = "  ".join(f"{_fmt(scale[name]['layers'].get(layer)):>8}" for name, _ in _FLOWS)
        lines.append(f"    {layer:<12}{figures}")
    for part, seconds in pipeline["checks"].items():
        lines.append(f"    {'GX ' + part:<13}{seconds:>7.1f}")
    steps = pipeline.get("step_seconds")
    if steps:
        lines.append(f"    {'check steps':<13}{steps['checks']:>7.1f} of {steps['all']:.1f} s of steps")
    months = pipeline["run_seconds_by_month"]
    if months:
        slowest = max(months, key=months.__getitem__)
        lines.append(
            f"  runs: {pipeline['runs']}, month runs {min(months.values()):.1f}-{months[slowest]:.1f} s "
            f"(slowest {slowest}); complete: {'yes' if pipeline['complete'] else 'NO'}"
        )
    for name in ("plain", "sql"):
        same = scale["same_rows"][name]
        verdict = "yes" if same["equal"] else f"NO: {json.dumps(same['differences'])[:300]}"
        lines.append(f"  rows per table equal to the pipeline's ({name}): {verdict}")
    if pipeline["findings"]:
        lines.append(
            f"  check findings (not errors): {len(pipeline['findings'])}, e.g. {pipeline['findings'][0][:200]}"
        )
    return "\n".join(lines)


def format_report(results: dict[str, Any], path: Path) -> str:
    lines = ["", "=" * 100, "make bench: dataops run vs plain pandas vs plain SQL, stage", "=" * 100]
    lines += [format_scale(scale) + "\n" for scale in results["scales"].values()]
    imported = results.get("import")
    if imported:
        top = ", ".join(f"{name} {seconds:.2f}" for name, seconds in imported["seconds_by_package"].items())
        lines.append(f"import dataops_assets.definitions: {imported['seconds']:.2f} s best of 3; by package: {top}")
    lines.append("goals:")
    for goal in results["goals"]:
        verdict = {True: "met", False: "MISSED", None: "not judged"}[goal["met"]]
        where = "" if goal["scale"] in (None, GOAL_SCALE) else f" (at x{goal['scale']}; the goal is for x{GOAL_SCALE})"
        lines.append(f"  [{verdict:>10}] {goal['goal']}: {goal['measured']}{where}")
    lines.append(f"results: {path}")
    return "\n".join(lines)


def write_results(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
