"""The ``dataops`` command: thin, each subcommand calls into the package."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from dataops_assets.deploy.cli import register as register_deploy
from dataops_assets.environments import Settings, UnknownEnvironmentError, current_settings
from dataops_assets.landing import MONTH_KEYS
from dataops_assets.observability.cli import register as register_observability
from dataops_assets.observability.logging import configure_cli_logging


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
    run.add_argument("partitions", nargs="*", default=list(MONTH_KEYS), metavar="YYYY-MM")
    run.set_defaults(handler=_run)

    summary = commands.add_parser("summary", help="rows per warehouse table")
    summary.set_defaults(handler=_summary)

    docs = commands.add_parser("docs", help="render Great Expectations Data Docs of the latest validations")
    docs.set_defaults(handler=_docs)

    ui = commands.add_parser("ui", help="the Dagster UI on 127.0.0.1 over workspace.yaml")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(handler=_ui)

    register_deploy(commands)
    register_observability(commands)
    return parser


def _land(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.landing import land

    landed = land(settings, scale=args.scale)
    print(f"landed {len(landed)} files, {sum(f.rows for f in landed):,} rows in {settings.landing_dir}")
    return 0


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.definitions import build_definitions
    from dataops_assets.runner import format_summary, run_partitions, summarize_warehouse

    unknown = sorted(set(args.partitions) - set(MONTH_KEYS))
    if unknown:
        print(f"dataops: unknown partition(s) {', '.join(unknown)}; expected YYYY-MM in 2013", file=sys.stderr)
        return 2
    outcomes = run_partitions(build_definitions(settings), settings, args.partitions)
    for outcome in outcomes:
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
    print(format_summary(summarize_warehouse(settings)))
    return 0 if all(outcome.success for outcome in outcomes) else 1


def _summary(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.runner import format_summary, summarize_warehouse

    print(format_summary(summarize_warehouse(settings)))
    return 0


def _docs(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.quality.gx_docs import build_data_docs_report

    report = build_data_docs_report(settings)
    for skipped in report.skipped:
        print(f"dataops: skipped {skipped}", file=sys.stderr)
    print(f"{report.validations} validations rendered: {report.index.as_uri()}")
    return 0


def _ui(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.instance import prepare_dagster_home

    prepare_dagster_home(settings)
    dagster = str(Path(sys.executable).with_name("dagster"))  # the one installed beside this interpreter
    command = [dagster, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", "workspace.yaml"]
    os.execv(command[0], command)


if __name__ == "__main__":
    raise SystemExit(main())
