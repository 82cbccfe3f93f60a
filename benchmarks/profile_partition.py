"""cProfile of one month of the pipeline in process, to see where the time goes beside the baselines.

Runs the monthly job for one month in this process, as a run worker does (``execute_in_process`` on an ephemeral
instance), on a landing made by ``benchmarks/bench.py`` (default ``var/bench/x10``; the reference tables must have
been written there by a ``dataops run``), then prints the functions with the most cumulative and own time, and own
time grouped by package (C methods of DuckDB, SQLite and pandas are grouped by the type they belong to).

    .venv/bin/python benchmarks/profile_partition.py [--root var/bench/x10] [--partition 2013-06] [--top 30]

``--no-profile`` runs the month without cProfile and prints wall time and peak RSS only. ``--no-output-capture``
is a diagnostic: ``JobDefinition.execute_in_process`` always keeps every step output of the run in memory (its
``output_capture``); this flag patches Dagster's private ``core_execute_in_process`` to run without it, to measure
what that costs. Nothing in the package is changed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import dagster._core.execution.execute_in_process as dagster_in_process

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings, settings_for
from dataops_assets.orchestration import flights_pipeline

REPO = Path(__file__).resolve().parents[1]
_PACKAGE = re.compile(r"site-packages/([A-Za-z0-9_]+)")
_C_OWNER = re.compile(r"of '([A-Za-z0-9_.]+)' objects|built-in method ([A-Za-z0-9_.]+)")

FunctionKey = tuple[str, int, str]


def bucket(key: FunctionKey) -> str:
    """The package (or C type) a profiled function belongs to."""
    filename, _, name = key
    if filename == "~":
        match = _C_OWNER.search(name)
        owner = (match.group(1) or match.group(2)) if match else name
        return f"C: {owner.split('.')[0] if owner.startswith('_') else owner}"
    if found := _PACKAGE.search(filename):
        return found.group(1)
    if "/dataops_assets/" in filename:
        return "dataops_assets"
    return "python stdlib/other"


def by_bucket(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for key, (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        name = bucket(key)
        totals[name] = totals.get(name, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def disable_output_capture() -> None:
    """Make ``execute_in_process`` stop holding every output of the run in memory (private Dagster API)."""
    original = dagster_in_process.core_execute_in_process

    def without_capture(*args: Any, **kwargs: Any) -> Any:
        kwargs["output_capturing_enabled"] = False
        return original(*args, **kwargs)

    dagster_in_process.core_execute_in_process = without_capture


def scaled_settings(root: Path, scale: int) -> Settings:
    """Stage under ``root``, the monthly row-count bands ``scale`` times wider (as ``make bench`` runs them)."""
    settings = settings_for("stage", data_root=root)
    limits = settings.thresholds
    wider = replace(
        limits,
        min_flights_per_month=limits.min_flights_per_month * scale,
        max_flights_per_month=limits.max_flights_per_month * scale,
    )
    return replace(settings, thresholds=wider)


def run_month(settings: Settings, partition: str) -> bool:
    job = build_definitions(settings).resolve_job_def(flights_pipeline.name)
    with dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False).success


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO / "var" / "bench" / "x10")
    parser.add_argument("--partition", default="2013-06")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--scale", type=int, default=10, help="scale of the landing (widens the row-count bands)")
    parser.add_argument("--out", type=Path, default=None, help="also dump the raw profile here (pstats format)")
    parser.add_argument("--no-profile", action="store_true", help="only wall time and peak RSS")
    parser.add_argument("--no-output-capture", action="store_true", help="diagnostic, see the module docstring")
    args = parser.parse_args(argv)
    settings = scaled_settings(args.root, args.scale)
    if args.no_output_capture:
        disable_output_capture()
    if args.no_profile:
        start = time.perf_counter()
        success = run_month(settings, args.partition)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        capture = "off" if args.no_output_capture else "on"
        print(
            f"partition {args.partition} on {args.root}: {time.perf_counter() - start:.1f} s, "
            f"peak RSS {peak:,.0f} MiB, output capture {capture}, success={success}"
        )
        return 0 if success else 1
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    success = run_month(settings, args.partition)
    profiler.disable()
    wall = time.perf_counter() - start
    print(f"partition {args.partition} on {args.root}: {wall:.1f} s under cProfile, success={success}")
    if args.out:
        profiler.dump_stats(args.out)
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(stream.getvalue())
    print("own time by package / C type:")
    for name, seconds in by_bucket(stats)[: args.top]:
        print(f"  {seconds:8.2f} s  {name}")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
