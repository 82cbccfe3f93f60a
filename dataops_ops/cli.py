"""The ``dataops`` command: every subcommand's arguments, and the handlers of the pipeline's own subcommands.

A subcommand names its handler as ``module:function``, imported when the command runs: building the parser loads
neither Dagster nor pandas. A handler takes the settings of DATAOPS_ENV and the arguments, and returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataops_assets.environments import ENVIRONMENT_NAMES, Settings, current_settings
from dataops_ops.deploy import errors
from dataops_ops.preview import DEFAULT_MAX_PREVIEWS
from dataops_ops.processes import Interrupted

if TYPE_CHECKING:
    from dataops_ops.console import Console
    from dataops_ops.runner import PartitionOutcome, StopRequest

_PIPELINE, _LAKE, _DEPLOY = "dataops_ops.cli", "dataops_ops.lake_cli", "dataops_ops.deploy.cli"
_PREVIEW = "dataops_ops.preview.cli"
_TABLE_HELP = "LAYER.TABLE, e.g. core.flights"
_ROOT_HELP = "environments root (default: $DATAOPS_DEPLOY_ROOT, else var/environments)"
_GATE_TIMEOUT_HELP = "seconds the gate may take this time (default: the environment's, set by `env init`)"
_BASE_HELP = "the environment previewed against (default: DATAOPS_ENV's)"
LOG_FORMATS = ("human", "json")
_LOG = logging.getLogger("dataops_ops.run")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 2 for an unknown or unready environment, 3 for a refused deploy, 1 for a failed run or deploy."""
    args = _parser().parse_args(argv)
    module, function = args.handler
    try:
        settings = current_settings()
        # these load Dagster: not for --help; the named warnings are silenced before any handler uses a feature
        import dataops_assets.warning_filters  # noqa: F401
        from dataops_assets.observability.logging import configure_cli_logging

        configure_cli_logging(settings)
        result: int | None = getattr(importlib.import_module(module), function)(settings, args)
    except errors.NOT_READY as error:
        return _fail(error, 2)
    except errors.REFUSED as error:
        return _fail(error, 3)
    except errors.DeployFailedError as error:
        return _fail(error, 1)
    except Interrupted as interrupt:  # a deploy stopped by SIGINT/SIGTERM, after it cleaned up
        return _fail(interrupt, interrupt.exit_code)
    return result or 0


def _fail(error: BaseException, code: int) -> int:
    print(f"dataops: {error}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dataops", description="Run the flights DataOps pipeline (DATAOPS_ENV).")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _pipeline_commands(commands)
    _lake_commands(commands)
    _deploy_commands(commands)
    _preview_commands(commands)
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
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="human",
        help="log lines on stderr: human text (default), or the JSON records of the log file, one object per line",
    )
    _command(commands, "summary", _LAKE, "rows and partitions per lake table")
    _command(commands, "docs", _PIPELINE, "render Great Expectations Data Docs of the latest validations")
    ui = _command(commands, "ui", _PIPELINE, "the Dagster UI on 127.0.0.1 (dg dev)")
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
    init.add_argument(
        "--postgres-url", help="instance storage for stage/prod, without password: postgresql://user@127.0.0.1/db"
    )
    init.add_argument(
        "--postgres-password-env", metavar="VARIABLE", help="environment variable holding the password (not stored)"
    )
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


def _preview_commands(commands: Any) -> None:
    preview = commands.add_parser(
        "preview",
        help="a pull request's preview: its changed assets rebuilt on the base's data, and a diff against it",
        description="The base is the environment named by DATAOPS_ENV (or --base), usually prod.",
    )
    actions = preview.add_subparsers(required=True, metavar="ACTION")
    up = _preview_action(actions, "up", "rebuild the changed assets for the base's published months, every check")
    up.add_argument("--months", nargs="+", metavar="YYYY-MM", help="default: every month the base has published")
    up.add_argument(
        "--max-previews",
        type=int,
        default=DEFAULT_MAX_PREVIEWS,
        help=f"previews open at once (default {DEFAULT_MAX_PREVIEWS})",
    )
    up.add_argument("--no-ui", action="store_true", help="do not start the preview's Dagster UI")
    diff = _preview_action(actions, "diff", "compare the preview's published tables with the base's: diff.md")
    diff.add_argument("--max-rows", type=int, help="above this many rows of a table's month: aggregates only")
    _preview_action(actions, "down", "remove the preview: processes, instance, lake, files")
    _command(actions, "list", _PREVIEW, "the open previews", "list_").add_argument("--base", help=_BASE_HELP)
    prune = _command(actions, "prune", _PREVIEW, "remove the idle previews older than a duration", "prune_")
    prune.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 7d, 12h, 30m")
    prune.add_argument("--base", help=_BASE_HELP)


def _preview_action(actions: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser = _command(actions, name, _PREVIEW, help)
    parser.add_argument("--pr", type=int, required=True, help="the pull request's number: the preview is pr-N")
    parser.add_argument("--base", help=_BASE_HELP)
    return parser


def _on_environment(commands: Any, name: str, help: str, function: str | None = None) -> argparse.ArgumentParser:
    """A deploy command on the environment named by ``--env`` (DATAOPS_ENV names the one ``dataops`` runs in)."""
    parser = _command(commands, name, _DEPLOY, help, function)
    # not `choices`: an unknown environment gets the same message from every entry point
    parser.add_argument("--env", required=True, help=f"one of {', '.join(ENVIRONMENT_NAMES)}")
    parser.add_argument("--root", type=Path, help=_ROOT_HELP)
    return parser


def land(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_assets.landing import land

    landing = land(settings, scale=args.scale)
    for stale in landing.stale_temp_files_removed:
        print(f"removed {stale}, a temporary file left by an interrupted landing")
    landed = landing.files
    print(
        f"landed {len(landed)} files, {sum(f.rows for f in landed):,} rows in {settings.landing_dir}, "
        "each with its control record (<file>.control.json)"
    )
    return 0


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Exit codes: 0 all published, 1 a month failed (or the storage did), 130/143 stopped by SIGINT/SIGTERM."""
    from dataops_assets.observability.logging import configure_cli_logging
    from dataops_assets.partitions import MONTH_KEYS
    from dataops_ops.console import Console, Progress
    from dataops_ops.runner import stop_on_signals

    partitions = args.partitions or list(MONTH_KEYS)
    unknown = sorted(set(partitions) - set(MONTH_KEYS))
    if unknown:
        print(f"dataops: unknown partition(s) {', '.join(unknown)}; expected YYYY-MM in 2013", file=sys.stderr)
        return 2
    json_stream = args.log_format == "json"
    console = Console(sys.stdout, sys.stderr, Progress(len(partitions)), live=sys.stdout.isatty())
    # every line on stderr (notes, logs, warnings) goes through the console, which clears the progress line first
    with stop_on_signals() as stop, console.running(), redirect_stderr(console.stderr):
        configure_cli_logging(settings, json_stream=json_stream)
        outcomes: list[PartitionOutcome] = []
        failure: Exception | None = None
        try:
            _run_months(settings, partitions, stop, outcomes, console, json_stream=json_stream)
        except Exception as error:
            failure = error
    if failure is not None:  # reported once the progress line is done
        return _storage_failure(settings, failure, partitions, outcomes)
    if stop.requested:
        _report_published(partitions, outcomes, f"stopped by {stop.name}")
        return 128 + (stop.signum or 0)
    from dataops_ops.lake import summarize_lake

    print(summarize_lake(settings))
    return 0 if all(outcome.success for outcome in outcomes) else 1


def _run_months(
    settings: Settings,
    partitions: list[str],
    stop: StopRequest,
    outcomes: list[PartitionOutcome],
    console: Console,
    *,
    json_stream: bool,
) -> None:
    """Month lines and notes are printed as text and logged as records (the log file; stderr too with
    ``json_stream``, where a note is then only the record)."""
    from dataops_assets.definitions import build_definitions
    from dataops_assets.observability.logging import PRINTED
    from dataops_assets.orchestration import REFERENCE_CURSOR_KEY
    from dataops_ops.runner import run_partitions

    console.line(
        f"{settings.name}: reference tables, then {len(partitions)} month(s), up to "
        f"{settings.max_concurrent_runs} at once"
    )

    def heard(outcome: PartitionOutcome) -> None:
        outcomes.append(outcome)
        report_outcome(settings, outcome, console)
        if outcome.partition == REFERENCE_CURSOR_KEY:
            console.months_started()
        elif outcome.partition in partitions:
            console.month_done()

    def note(line: str) -> None:
        if json_stream:  # a JSON stream stays JSON: the record only
            _LOG.warning(line)
        else:
            console.line(f"dataops: {line}", error=True)
            _LOG.warning(line, extra=PRINTED)  # for the log file

    defs = build_definitions(settings)
    run_partitions(defs, settings, partitions, heard, stop=stop, on_note=note)
    if settings.preview is None:  # what a pull request's preview compares with: the code that wrote this data
        from dataops_ops.preview import STATE_FILE
        from dataops_ops.preview.state import definitions_state, write_state

        write_state(definitions_state(defs, settings), settings.env_dir / STATE_FILE)


def _storage_failure(
    settings: Settings, error: Exception, partitions: list[str], outcomes: list[PartitionOutcome]
) -> int:
    """A failure of the instance's or the lake's storage: one line naming the file and what to do; the traceback
    goes to a log file. Anything else is a bug, and keeps its traceback."""
    from dataops_ops.instance import log_traceback, storage_error

    problem = storage_error(error, settings)
    if problem is None:
        raise error
    log = log_traceback(error, settings)
    _report_published(partitions, outcomes, "stopped by a storage failure")
    where = f" (traceback in {log})" if log else ""
    print(f"dataops: {problem}{where}", file=sys.stderr)
    return 1


def _report_published(partitions: list[str], outcomes: list[PartitionOutcome], why: str) -> None:
    published = [o.partition for o in outcomes if o.success and o.partition in partitions]
    missing = [month for month in partitions if month not in published]
    print(f"{why}: published {', '.join(published) or 'no month'}; not published {', '.join(missing) or '-'}")
    sys.stdout.flush()


def report_outcome(settings: Settings, outcome: PartitionOutcome, console: Console) -> None:
    """One line per month (status, checks, run), then its errors and failed checks; also one log record."""
    from dataops_assets.observability.logging import PRINTED

    status = "ok" if outcome.success else "canceled" if outcome.status == "CANCELED" else "FAILED"
    passed = sum(check.passed for check in outcome.checks)
    checks = f"{passed}/{len(outcome.checks)} checks passed"
    lines = [f"{settings.name} {outcome.partition} {status}: {checks}, run {outcome.run_id}"]
    lines += [f"    error {error}" for error in outcome.errors]
    for finding in outcome.findings:
        headline, *details = finding.description.splitlines() or [""]
        lines.append(f"    {finding.severity} {finding.asset} {finding.check}: {headline}")
        lines += [f"        {detail.strip()}" for detail in details]
    console.line("\n".join(lines))
    # the same, as one record a log pipeline can index
    level = logging.INFO if outcome.success else logging.ERROR
    message = "; ".join([lines[0], *(line.strip() for line in lines[1:])])
    _LOG.log(level, message, extra={"run_id": outcome.run_id, "partition": outcome.partition, **PRINTED})


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
    command, env = ui_command(args.port)
    os.execve(command[0], command, env)


def ui_command(port: int) -> tuple[list[str], dict[str, str]]:
    """``dg dev`` (the project of ``[tool.dg]`` in pyproject.toml) on 127.0.0.1, and the environment it needs."""
    from dataops_ops.run_processes import with_dagster_site

    dg = str(Path(sys.executable).with_name("dg"))  # the one installed beside this interpreter
    # dg compares the active venv with the project's: it is this interpreter's
    env = with_dagster_site({**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)})
    return [dg, "dev", "-h", "127.0.0.1", "-p", str(port)], env


if __name__ == "__main__":
    raise SystemExit(main())
