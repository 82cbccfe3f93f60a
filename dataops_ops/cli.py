"""The ``dataops`` command: every subcommand's arguments, and the handlers of the pipeline's own subcommands.

A subcommand names its handler as ``module:function``, imported when the command runs: building the parser loads
neither Dagster nor pandas. A handler takes the settings of DATAOPS_ENV and the arguments, and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataops_assets.environments import ENVIRONMENT_NAMES, Settings, current_settings
from dataops_ops.deploy import errors

if TYPE_CHECKING:
    from dataops_ops.runner import PartitionOutcome

_PIPELINE, _LAKE, _DEPLOY = "dataops_ops.cli", "dataops_ops.lake_cli", "dataops_ops.deploy.cli"
_TABLE_HELP = "LAYER.TABLE, e.g. core.flights"
_ROOT_HELP = "environments root (default: $DATAOPS_DEPLOY_ROOT, else var/environments)"
_GATE_TIMEOUT_HELP = "seconds the gate may take this time (default: the environment's, set by `env init`)"


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 2 for an unknown or unready environment, 3 for a refused deploy, 1 for a failed run or deploy."""
    # Beta/preview notices of the Dagster APIs used are for developers reading code, not for operators.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*(beta|preview|superseded).*", category=Warning)
    args = _parser().parse_args(argv)
    module, function = args.handler
    try:
        settings = current_settings()
        from dataops_assets.observability.logging import configure_cli_logging  # loads Dagster: not for --help

        configure_cli_logging(settings)
        result: int | None = getattr(importlib.import_module(module), function)(settings, args)
    except errors.NOT_READY as error:
        return _fail(error, 2)
    except errors.REFUSED as error:
        return _fail(error, 3)
    except errors.DeployFailedError as error:
        return _fail(error, 1)
    return result or 0


def _fail(error: Exception, code: int) -> int:
    print(f"dataops: {error}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataops", description="Run the flights DataOps pipeline (DATAOPS_ENV).")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _pipeline_commands(commands)
    _lake_commands(commands)
    _deploy_commands(commands)
    return parser


def _command(
    commands: Any, name: str, module: str, help: str, function: str | None = None, **options: Any
) -> argparse.ArgumentParser:
    """A subcommand run by ``module.function`` (by default the function named like the command)."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, **options)
    parser.set_defaults(handler=(module, function or name))
    return parser


def _pipeline_commands(commands: Any) -> None:
    land = _command(commands, "land", _PIPELINE, "drop the source files into the environment's landing folder")
    land.add_argument("--scale", type=int, default=1, help="land N deterministic copies of every flight")
    run = _command(commands, "run", _PIPELINE, "materialize every asset for the given partitions (default: all 12)")
    run.add_argument("partitions", nargs="*", metavar="YYYY-MM", help="months to run (default: all 12)")
    _command(commands, "summary", _LAKE, "rows and partitions per lake table")
    _command(commands, "docs", _PIPELINE, "render Great Expectations Data Docs of the latest validations")
    ui = _command(commands, "ui", _PIPELINE, "the Dagster UI on 127.0.0.1 over workspace.yaml")
    ui.add_argument("--port", type=int, default=3000)
    metrics = _command(
        commands,
        "metrics",
        "dataops_ops.metrics",
        "Prometheus metrics of the runs, assets and checks in the environment's Dagster instance",
        "run_metrics",
        description="Read the environment's Dagster instance and print its metrics in the Prometheus text "
        "exposition format, write them for node_exporter's textfile collector, or serve them for a scraper.",
    )
    target = metrics.add_mutually_exclusive_group()
    target.add_argument("--output", type=Path, metavar="FILE", help="write to FILE atomically (e.g. dataops.prom)")
    target.add_argument("--serve", type=int, metavar="PORT", help="serve /metrics on 127.0.0.1:PORT until Ctrl-C")


def _lake_commands(commands: Any) -> None:
    sql = _command(commands, "sql", _LAKE, "a read-only query over the lake's tables (layer.table)")
    sql.add_argument("query", help='e.g. "select carrier, count(*) from core.flights group by carrier"')
    sql.add_argument("--max-rows", type=int, default=100, help="rows printed (default 100)")
    history = _command(commands, "history", _LAKE, "versions of a lake table: time, operation, run, rows")
    history.add_argument("table", help=_TABLE_HELP)
    history.add_argument("--limit", type=int, default=None, help="newest N versions only")
    restore = _command(commands, "restore", _LAKE, "restore a lake table to an earlier version, as a new commit")
    restore.add_argument("table", help=_TABLE_HELP)
    target = restore.add_mutually_exclusive_group(required=True)
    target.add_argument("--version", type=int, help="the version to restore (see `dataops history`)")
    target.add_argument(
        "--before", type=datetime.fromisoformat, metavar="TIMESTAMP", help="the last version before this (ISO, UTC)"
    )
    _command(commands, "verify", _LAKE, "read every file of core and marts, check rows against Dagster")


def _deploy_commands(commands: Any) -> None:
    build = _command(commands, "build", _DEPLOY, "build the wheel and sdist once and write manifest.json")
    build.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    build.add_argument("--source", type=Path, default=Path(), help="project folder (default: .)")

    env = commands.add_parser("env", help="set up, start and stop an environment's instance on 127.0.0.1")
    actions = env.add_subparsers(required=True, metavar="ACTION")
    init = _on_environment(actions, "init", "write environment.json, dagster.yaml and workspace.yaml", "env_init")
    init.add_argument("--webserver-port", type=int)
    init.add_argument("--code-server-port", type=int)
    init.add_argument("--postgres-url", help="instance storage for stage/prod, e.g. postgresql://user@127.0.0.1/db")
    init.add_argument("--gate-partitions", nargs="+", metavar="YYYY-MM", help="partitions the gate runs")
    init.add_argument("--gate-timeout", type=float, default=900.0, help="seconds the whole gate may take")
    init.add_argument("--dependency-base", help="Python whose site-packages provide the locked dependencies")
    up = _on_environment(actions, "up", "start the webserver (and daemon) detached; pids under run/", "env_up")
    up.add_argument("--no-daemon", action="store_true", help="do not start dagster-daemon")
    _on_environment(actions, "down", "stop daemon, webserver and code server by their pids", "env_down")

    deploy = _on_environment(commands, "deploy", "verify, install, switch, reload, gate; roll back on failure")
    deploy.add_argument("--artifact", type=Path, required=True, help="the wheel")
    deploy.add_argument("--manifest", type=Path, help="default: manifest.json beside the wheel")
    deploy.add_argument("--gate-timeout", type=float, help=_GATE_TIMEOUT_HELP)
    promote = _command(commands, "promote", _DEPLOY, "deploy one environment's current artifact to the next")
    promote.add_argument("--from", dest="source", required=True, choices=ENVIRONMENT_NAMES)
    promote.add_argument("--to", dest="target", required=True, choices=ENVIRONMENT_NAMES)
    promote.add_argument("--root", type=Path, help=_ROOT_HELP)
    promote.add_argument("--gate-timeout", type=float, help=_GATE_TIMEOUT_HELP)
    _on_environment(commands, "rollback", "put an environment back on its previous release")
    status = _command(commands, "status", _DEPLOY, "which version runs where, since when, with which gate")
    status.add_argument("--root", type=Path, help=_ROOT_HELP)
    status.add_argument("--json", action="store_true")


def _on_environment(commands: Any, name: str, help: str, function: str | None = None) -> argparse.ArgumentParser:
    """A deploy command on the environment named by ``--env`` (DATAOPS_ENV names the one ``dataops`` runs in)."""
    parser = _command(commands, name, _DEPLOY, help, function)
    # not `choices`: an unknown environment gets the same message from every entry point
    parser.add_argument("--env", required=True, help=f"one of {', '.join(ENVIRONMENT_NAMES)}")
    parser.add_argument("--root", type=Path, help=_ROOT_HELP)
    return parser


def land(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.landing import land

    landed = land(settings, scale=args.scale)
    print(f"landed {len(landed)} files, {sum(f.rows for f in landed):,} rows in {settings.landing_dir}")
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.definitions import build_definitions
    from dataops_assets.partitions import MONTH_KEYS
    from dataops_ops.lake import summarize_lake
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
    print(summarize_lake(settings))
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


def docs(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.docs import build_data_docs_report

    report = build_data_docs_report(settings)
    for skipped in report.skipped:
        print(f"dataops: skipped {skipped}", file=sys.stderr)
    print(f"{report.validations} validations rendered: {report.index.as_uri()}")
    return 0


def ui(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.instance import prepare_dagster_home

    prepare_dagster_home(settings)
    dagster = str(Path(sys.executable).with_name("dagster"))  # the one installed beside this interpreter
    command = [dagster, "dev", "-h", "127.0.0.1", "-p", str(args.port), "-w", "workspace.yaml"]
    os.execv(command[0], command)


if __name__ == "__main__":
    raise SystemExit(main())
