"""``dataops preview up / diff / down / list / prune``: a pull request's preview of its base environment (prod).

``up`` compares the checkout's definitions with the base's recorded state, pins the base's table versions, and
runs the changed assets (and every check of theirs) for the months the base has published, in the preview's own
Dagster instance and lake, through the run queue as ``dataops run`` does. ``diff`` compares the preview's
published tables with the base's at the pinned versions. Each writes its part of the pull request's comment under
``<data root>/pr-N/preview/``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import dagster as dg
from filelock import Timeout

from dataops_assets.environments import (
    DATA_ROOT_VAR,
    ENV_VAR,
    LAKE_URI_VAR,
    THRESHOLDS_VAR,
    Settings,
    current_settings,
    settings_for,
)
from dataops_assets.files import write_atomic
from dataops_assets.partitions import MONTH_KEYS
from dataops_ops.preview import STATE_FILE
from dataops_ops.preview.changes import ChangedSet, changed_set, format_changed_set, load_state
from dataops_ops.preview.environment import (
    PreviewError,
    PreviewRefusedError,
    Removal,
    create,
    list_previews,
    make_room,
    pin_base,
    preview_lock,
    preview_name,
    prune,
    remove,
    report_dir,
)
from dataops_ops.preview.report import write_checks, write_comment
from dataops_ops.preview.state import definitions_state
from dataops_ops.preview.ui import start_ui, ui_url

_DURATION = re.compile(r"^(\d+)([dhm])$")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60}


def base_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """The environment previewed against: ``--base``, else DATAOPS_ENV's."""
    base = current_settings(args.base) if args.base else settings
    if base.preview is not None:
        raise PreviewError(f"{base.name} is a preview: a preview's base is dev, stage or prod")
    return base


def recorded_state(base: Settings) -> Path:
    """The definitions state of the code that built the base's data: its deployed release's, else the one
    ``dataops run`` recorded."""
    for path in (base.env_dir / "current" / STATE_FILE, base.env_dir / STATE_FILE):
        if path.is_file():
            return path
    raise PreviewError(
        f"{base.name} has no recorded definitions state ({base.env_dir / STATE_FILE}): deploy a release to it, or "
        f"run `DATAOPS_ENV={base.name} dataops run` on the base's code"
    )


def changes_against(base: Settings) -> ChangedSet:
    """The checkout's definitions (built with the base's settings) against the base's recorded state."""
    from dataops_assets.definitions import build_definitions

    head = definitions_state(build_definitions(base), base)
    return changed_set(load_state(recorded_state(base)), head)


def up(settings: Settings, args: argparse.Namespace) -> int:
    """Exit codes: 0 the preview ran and every blocking check passed, 1 a run or check failed, 2 it cannot start
    (no recorded state, nothing published, an unknown month), 3 refused (too many previews)."""
    base = base_settings(settings, args)
    lock = preview_lock(base.data_root, args.pr)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"dataops: {preview_name(args.pr)}: another `preview up` is working on it", file=sys.stderr)
        return 3
    try:
        return _up(base, args)
    except PreviewRefusedError as error:
        print(f"dataops: {error}", file=sys.stderr)
        return 3
    except PreviewError as error:  # nothing to compare with yet, or a month that does not exist
        print(f"dataops: {error}", file=sys.stderr)
        return 2
    finally:
        lock.release()


def _up(base: Settings, args: argparse.Namespace) -> int:
    for removal in make_room(base.data_root, args.pr, args.max_previews):
        print(f"pruned {removal.name}, the oldest idle preview, to stay within {args.max_previews} previews")
        _report_problems(removal)
    unknown = sorted(set(args.months or []) - set(MONTH_KEYS))
    if unknown:
        raise PreviewError(f"unknown month(s) {', '.join(unknown)}; expected YYYY-MM in 2013")
    changed = changes_against(base)
    # assets whose checks alone changed are rebuilt too: a check runs in the run that materializes its asset
    rebuilt = [*changed.data_changed, *changed.checks_only]
    preview = create(base.data_root, pin_base(base, args.pr, rebuilt, args.months))
    reports = report_dir(base.data_root, args.pr)
    write_atomic(reports / "changes.md", format_changed_set(changed) + "\n")
    assert preview.preview is not None
    months = list(preview.preview.months)
    print(f"{preview.name}: {len(rebuilt)} asset(s) to rebuild against {base.name}, {len(months)} month(s)")
    _enter(preview)
    started = start_ui(preview) if rebuilt and not args.no_ui else None
    outcomes = _run(preview, months, rebuilt) if rebuilt else []
    write_checks(reports / "checks.md", outcomes, rebuilt)
    ui = started.wait(f"{preview.name}'s webserver") if started else None
    write_comment(preview, ui)
    print(f"{preview.name}: report in {reports}" + (f"; UI on {ui}" if ui else ""))
    return 0 if all(outcome.success for outcome in outcomes) else 1


def _enter(preview: Settings) -> None:
    """The variables of the processes the preview starts (daemon, runs, UI): they load its definitions, which
    take the thresholds and pins from its manifest, and its lake is its own."""
    for variable in (LAKE_URI_VAR, THRESHOLDS_VAR):
        os.environ.pop(variable, None)
    os.environ.update({ENV_VAR: preview.name, DATA_ROOT_VAR: str(preview.data_root)})


def _run(preview: Settings, months: list[str], rebuilt: list[str]) -> list:
    """The rebuilt assets for ``months`` on the preview's instance, through its run queue."""
    from dataops_assets.definitions import build_definitions
    from dataops_ops.cli import report_outcome
    from dataops_ops.console import Console, Progress
    from dataops_ops.runner import run_partitions, stop_on_signals

    console = Console(sys.stdout, sys.stderr, Progress(len(months)), live=False)
    only = {dg.AssetKey.from_user_string(key) for key in rebuilt}
    with stop_on_signals() as stop:
        return run_partitions(
            build_definitions(preview),
            preview,
            months,
            lambda outcome: report_outcome(preview, outcome, console),
            stop=stop,
            on_note=lambda line: print(f"dataops: {line}", file=sys.stderr),
            only=only,
            leave_daemon=True,  # it finalizes the backfill, and serves the preview's UI; `preview down` stops it
        )


def diff(settings: Settings, args: argparse.Namespace) -> int:
    from dataops_ops.preview.compare import compare_preview

    preview = settings_for(preview_name(args.pr), base_settings(settings, args).data_root)
    report = compare_preview(preview, max_rows=args.max_rows)
    write_comment(preview, ui_url(preview))
    differ = sum(diff.status != "identical" for diff in report.tables)
    where = report_dir(preview.data_root, args.pr) / "diff.md"
    print(
        f"{preview.name}: {len(report.tables)} table-month(s) compared, {differ} differ, "
        f"in {report.seconds:.1f} s: {where}"
    )
    return 0


def down(settings: Settings, args: argparse.Namespace) -> int:
    removal = remove(base_settings(settings, args).data_root, args.pr)
    print(f"{removal.name}: removed" if removal.removed else f"{removal.name}: nothing to remove")
    return _report_problems(removal)


def list_(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    for found in list_previews(base_settings(settings, args).data_root):
        since = datetime.fromtimestamp(found.last_active, UTC).isoformat(timespec="seconds")
        state = "idle" if found.idle else "busy"
        preview = found.preview
        print(f"{found.name}  base {preview.base}  {state}  last active {since}  rebuilds {len(preview.rebuilt)}")
    return 0


def prune_(settings: Settings, args: argparse.Namespace) -> int:
    match = _DURATION.match(args.older_than)
    if match is None:
        print(f"dataops: --older-than {args.older_than!r}: expected e.g. 7d, 12h or 30m", file=sys.stderr)
        return 2
    removals = prune(base_settings(settings, args).data_root, int(match[1]) * _SECONDS[match[2]])
    for removal in removals:
        print(f"{removal.name}: removed (idle for more than {args.older_than})")
    return max((_report_problems(removal) for removal in removals), default=0)


def _report_problems(removal: Removal) -> int:
    for problem in removal.problems:
        print(f"dataops: {problem}", file=sys.stderr)
    return 1 if removal.problems else 0
