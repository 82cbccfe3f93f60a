"""``dataops`` subcommands of the observability package: ``register(subparsers)`` adds them to the CLI's parser.

Kept light: the work is imported when a subcommand runs, so ``dataops --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from dataops_assets.environments import Settings


def register(subparsers: Any) -> None:
    """Add ``metrics`` to the ``dataops`` subcommands (``subparsers`` from ``parser.add_subparsers()``)."""
    metrics = subparsers.add_parser(
        "metrics",
        help="run metrics from the warehouse's ops schema, in the Prometheus text format",
        description="Print the run metrics recorded in the environment's warehouse (ops schema) in the Prometheus "
        "text exposition format, for a scraper or the node_exporter textfile collector.",
    )
    metrics.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write to FILE atomically instead of stdout (e.g. the textfile collector's directory/dataops.prom)",
    )
    metrics.set_defaults(handler=run_metrics)


def run_metrics(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.observability.metrics import exposition  # noqa: PLC0415
    from dataops_assets.warehouse import WarehouseBusyError  # noqa: PLC0415

    try:
        text = exposition(settings.warehouse_path)
    except WarehouseBusyError as error:
        print(f"dataops: {error}", file=sys.stderr)
        return 1
    output: Path | None = args.output
    if output is None:
        sys.stdout.write(text)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return 0
