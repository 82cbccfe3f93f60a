"""The ``dataops`` command: thin, each subcommand calls into the packages.

Building the parser imports argparse and the subcommands' registrations only; each handler imports its work when it
runs, so ``dataops --help`` loads neither Dagster nor pandas.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dataops_assets.environments import Settings, UnknownEnvironmentError, current_settings
from dataops_ops.deploy.cli import register as register_deploy
from dataops_ops.lake_cli import register as register_lake

if TYPE_CHECKING:
    from dataops_ops.runner import PartitionOutcome


def main(argv: Sequence[str] | None = None) -> int:
    # Beta/preview notices of the Dagster APIs used are for developers reading code, not for operators.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*(beta|preview|superseded).*", category=Warning)
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = current_settings()
    except UnknownEnvironmentError as error:
        print(f"dataops: {error}", file=sys.stderr)
        return 2
    from dataops_assets.observability.logging import configure_cli_logging  # loads Dagster: not for --help

    configure_cli_logging(settings)
    result: int = args.handler(settings, args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataops", description="Run the flights DataOps pipeline (DATAOPS_ENV).")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    land = commands.add_parser("land", help="drop the source files into the environment's landing folder")
    land.add_argument("--scale", type=int, default=1, help="land N deterministic copies of every flight")
    land.set_defaults(handler=_land)

    run = commands.add_parser("run", help="materialize every asset for the given partitions (default: all 12)")
    run.add_argument("partitions", nargs="*", metavar="YYYY-MM", help="months to run (default: all 12)")
    run.set_defaults(handler=_run)

    summary = commands.add_parser("summary", help="rows and partitions per lake table")
    summary.set_defaults(handler=_summary)

    docs = commands.add_parser("docs", help="render Great Expectations Data Docs of the latest validations")
    docs.set_defaults(handler=_docs)

    ui = commands.add_parser("ui", help="the Dagster UI on 127.0.0.1 over workspace.yaml")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)

    metrics = commands.add_parser(
        "metrics",
        help="Prometheus metrics of the runs, assets and checks in the environment's Dagster instance",
        description="Read the environment's Dagster instance and print its metrics in the Prometheus text "
        "exposition format, write them for node_exporter's textfile collector, or serve them for a scraper.",
    )
    target = metrics.add_mutually_exclusive_group()
    target.add_argument("--output", type=Path, metavar="FILE", help="write to FILE atomically (e.g. dataops.prom)")
    target.add_argument("--serve", type=int, metavar="PORT", help="serve /metrics on 127.0.0.1:PORT until Ctrl-C")
    metrics.set_defaults(handler=_metrics)

    register_lake(commands)
    register_deploy(commands)
    return parser


def _land(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.landing import land

    landed = land(settings, scale=args.scale)
    print(f"landed {len(landed)} files, {sum(f.rows for f in landed):,} rows in {settings.landing_dir}")
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.definitions import build_definitions
    from dataops_assets.partitions import MONTH_KEYS
    from dataops_ops.lake import format_summary, summarize_lake
    from dataops_ops.runner import run_partitions

    partitions = args.partitions or list(MONTH_KEYS)
    unknown = sorted(set(partitions) - set(MONTH_KEYS))
    if unknown:
        print(f"dataops: unknown partition(s) {', '.join(unknown)}; expected YYYY-MM in 2013", file=sys.stderr)
        return 2
    print(
        f"{settings.name}: reference tables, then {len(partitions)} month(s), up to "
        f"{settings.max_concurrent_runs} at once",
        flush=True,
    )
    outcomes = run_partitions(build_definitions(settings), settings, partitions, lambda o: _report(settings, o))
    print(format_summary(summarize_lake(settings)))
    return 0 if all(outcome.success for outcome in outcomes) else 1


def _report(settings: Settings, outcome: PartitionOutcome) -> None:
    status = "ok" if outcome.success else "FAILED"
    passed = sum(check.passed for check in outcome.checks)
    checks = f"{passed}/{len(outcome.checks)} checks passed"
    print(f"{settings.name} {outcome.partition} {status}: {checks}, run {outcome.run_id}")
    for error in outcome.errors:
        print(f"    error {error}")
    for finding in outcome.findings:
        headline, *details = finding.description.splitlines() or [""]
        print(f"    {finding.severity} {finding.asset} {finding.check}: {headline}")
        for detail in details:
            print(f"        {detail.strip()}")
    sys.stdout.flush()


def _summary(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.lake import format_summary, summarize_lake

    print(format_summary(summarize_lake(settings)))
    return 0


def _docs(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.docs import build_data_docs_report

    report = build_data_docs_report(settings)
    for skipped in report.skipped:
        print(f"dataops: skipped {skipped}", file=sys.stderr)
    print(f"{report.validations} validations rendered: {report.index.as_uri()}")
    return 0


def _metrics(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.metrics import run_metrics

    return run_metrics(settings, args)


def _ui(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.instance import prepare_dagster_home

    prepare_dagster_home(settings)
    dagster = str(Path(sys.executable).with_name("dagster"))  # the one installed beside this interpreter
    command = [dagster, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", "workspace.yaml"]
    os.execv(command[0], command)


if __name__ == "__main__":
    raise SystemExit(main())
