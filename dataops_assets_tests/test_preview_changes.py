"""The changed set of a pull request against prod's definitions state, on real edits of a copy of the pipeline.

Each variant copies ``dataops_assets`` into a folder of its own and edits it the way a pull request would; the state
command (``python -m dataops_ops.preview.state --env prod``) then writes its definitions state in a subprocess that
imports the copy, as a deploy does with a release's own interpreter. The subprocesses of all variants start together
on first use (about 8 s each, two at a time on two cores) and the tests share their states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import settings_for
from dataops_assets_tests.fixtures.previews import pull_request, replace_in
from dataops_ops.preview import STATE_FILE
from dataops_ops.preview.changes import (
    Reason,
    StatesNotComparableError,
    changed_set,
    changed_set_json,
    format_changed_set,
    load_state,
)
from dataops_ops.preview.changes import main as changes_main
from dataops_ops.preview.state import definitions_state

# Writes the state like `python -m dataops_ops.preview.state`, after printing where dataops_assets was imported from.
_STATE_COMMAND = (
    "import sys, dataops_assets; print(dataops_assets.__file__, flush=True); "
    "from dataops_ops.preview.state import main; sys.exit(main(sys.argv[1:]))"
)
DOWNSTREAM_OF_CORE = ["marts/carrier_monthly", "marts/route_monthly", "publish/months"]


def _edit_expectation(suite: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    content = json.loads(suite.read_text(encoding="utf-8"))
    [expectation] = [e for e in content["expectations"] if e["meta"]["name"] == name]
    edit(expectation)
    suite.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def reformat(package: Path) -> None:
    """Layout, comments and a docstring only: a transform reflowed, a suite re-indented with its keys in another
    order, a comment in the accepted exceptions."""
    replace_in(
        package / "transforms" / "marts.py",
        '''def carrier_monthly(core: pd.DataFrame, month_start: pd.Timestamp) -> pd.DataFrame:
    """One row per carrier: flights, cancellations, on-time share, mean and p90 delays (minutes)."""
    grouped = core.groupby(["carrier", "airline_name"], dropna=False, sort=True)
''',
        '''def carrier_monthly(
    core: pd.DataFrame,
    month_start: pd.Timestamp,
) -> pd.DataFrame:
    """Per carrier and month: the flights, cancellations, on-time share and the mean and p90 delays in minutes."""

    # one group per carrier; its name travels along


    grouped = core.groupby(
        ['carrier', 'airline_name'],  # same columns, other quotes
        dropna=False,
        sort=True,
    )
''',
    )
    suite = package / "expectations" / "staging.weather.json"
    suite.write_text(json.dumps(json.loads(suite.read_text(encoding="utf-8")), indent=4, sort_keys=True))
    accepted = package / "expectations" / "accepted_exceptions.yaml"
    accepted.write_text(
        accepted.read_text(encoding="utf-8").replace("exceptions:\n", "\n# reviewed again\nexceptions:\n")
    )


def edit_route_mart(package: Path) -> None:
    """The route mart's distance: the mean instead of the median."""
    replace_in(package / "transforms" / "marts.py", 'distance=("distance", "median")', 'distance=("distance", "mean")')


def edit_shared_mart_helper(package: Path) -> None:
    """What both marts call: their cancellation rate, over the flights that were not diverted."""
    replace_in(
        package / "transforms" / "marts.py",
        'out["cancellation_rate"] = out["cancelled"] / out["flights"]',
        'out["cancellation_rate"] = out["cancelled"] / out["flights"].clip(lower=1)',
    )


def edit_checked_expectation(package: Path) -> None:
    """An expectation the staging.flights check evaluates (not a quarantine rule): critical becomes warning."""
    _edit_expectation(package / "expectations" / "staging.flights.json", "flight_not_null", _to_warning)


def _to_warning(expectation: dict[str, Any]) -> None:
    assert not expectation["meta"].get("quarantine") and expectation["severity"] == "critical"
    expectation["severity"] = "warning"


def edit_quarantine_rule(package: Path) -> None:
    """A quarantine rule of staging.flights: a departure delay over 1,500 minutes is quarantined (was 1,800)."""
    _edit_expectation(package / "expectations" / "staging.flights.json", "dep_delay_plausible", _narrower)


def _narrower(expectation: dict[str, Any]) -> None:
    assert expectation["meta"]["quarantine"] and expectation["kwargs"]["max_value"] == 1800
    expectation["kwargs"]["max_value"] = 1500


NEW_ASSET = '''"""Flights per weekday of a month: an asset a pull request adds."""

import dagster as dg
import pandas as pd

from dataops_assets.partitions import MONTHLY


@dg.asset(key=["marts", "weekday_monthly"], ins={"core": dg.AssetIn(key=["core", "flights"])}, partitions_def=MONTHLY)
def weekday_monthly(core: pd.DataFrame) -> pd.DataFrame:
    return core.groupby(core["sched_dep_local"].dt.dayofweek).size().rename("flights").reset_index()
'''


def add_asset(package: Path) -> None:
    """A new mart in a module of its own, added to the definitions."""
    (package / "assets" / "weekday.py").write_text(NEW_ASSET, encoding="utf-8")
    definitions = package / "definitions.py"
    replace_in(
        definitions,
        "from dataops_assets.assets.raw import",
        "from dataops_assets.assets.weekday import weekday_monthly\nfrom dataops_assets.assets.raw import",
    )
    replace_in(definitions, "*mart_assets, *publish_assets]", "*mart_assets, weekday_monthly, *publish_assets]")


VARIANTS: dict[str, Callable[[Path], None] | None] = {
    "base": None,
    "reformatted": reformat,
    "route_mart": edit_route_mart,
    "shared_mart_helper": edit_shared_mart_helper,
    "checked_expectation": edit_checked_expectation,
    "quarantine_rule": edit_quarantine_rule,
    "added_asset": add_asset,
}


class VariantStates:
    """The state command running for every variant at once; ``state(name)`` waits for one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[str, subprocess.Popen[str]] = {}
        for name, edit in VARIANTS.items():
            checkout = pull_request(root / name, edit)
            command = [sys.executable, "-c", _STATE_COMMAND, "--env", "prod", "--out", str(self.path(name))]
            environment = {**os.environ, "PYTHONPATH": str(checkout)}
            self.running[name] = subprocess.Popen(
                command, cwd=checkout, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

    def path(self, name: str) -> Path:
        return self.root / name / STATE_FILE

    def state(self, name: str) -> dict[str, Any]:
        process = self.running[name]
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        imported = Path(stdout.splitlines()[0])
        assert imported.is_relative_to(self.root / name), f"{name} imported dataops_assets from {imported}"
        return load_state(self.path(name))

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VariantStates]:
    states = VariantStates(tmp_path_factory.mktemp("preview"))
    try:
        yield states
    finally:
        states.stop()


def _against_base(variants: VariantStates, name: str) -> Any:
    return changed_set(variants.state("base"), variants.state(name))


def test_a_formatting_only_edit_changes_nothing(variants: VariantStates) -> None:
    base, head = variants.state("base"), variants.state("reformatted")
    changed = changed_set(base, head)
    assert changed.assets == {}, format_changed_set(changed)
    assert head["assets"] == base["assets"]
    assert "No asset changes: the definitions match prod's." in format_changed_set(changed)


def test_a_mart_body_edit_changes_that_mart_and_publish_and_nothing_upstream(
    variants: VariantStates, capsys: pytest.CaptureFixture[str]
) -> None:
    changed = _against_base(variants, "route_mart")
    # the carrier mart's code is in the same module, but its function does not reach the route mart's
    assert changed.data_changed == ["marts/route_monthly", "publish/months"], format_changed_set(changed)
    assert changed.checks_only == [] and changed.removed == []
    assert list(changed.assets["marts/route_monthly"].reasons) == [Reason.CODE_VERSION]
    publish = changed.assets["publish/months"]
    assert publish.reasons == {} and publish.upstream == ("marts/route_monthly",)

    # the command a pull request's job runs: the same set as JSON
    assert changes_main([str(variants.path("base")), str(variants.path("route_mart")), "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["data_changed"] == ["marts/route_monthly", "publish/months"] and printed["environment"] == "prod"


def test_an_edit_of_a_function_both_marts_call_changes_both(variants: VariantStates) -> None:
    changed = _against_base(variants, "shared_mart_helper")
    assert changed.data_changed == DOWNSTREAM_OF_CORE, format_changed_set(changed)
    for mart in ("marts/carrier_monthly", "marts/route_monthly"):
        assert list(changed.assets[mart].reasons) == [Reason.CODE_VERSION], changed.assets[mart]


def test_an_edit_of_a_checked_expectation_changes_only_that_assets_checks(variants: VariantStates) -> None:
    changed = _against_base(variants, "checked_expectation")
    assert changed.data_changed == [] and changed.checks_only == ["staging/flights"], format_changed_set(changed)
    assert changed.assets["staging/flights"].reasons == {
        Reason.CHECKS: ("gx_suite: expectation flight_not_null changed",)
    }
    assert "| `staging/flights` | checks only |" in format_changed_set(changed)


def test_an_edit_of_a_quarantine_rule_changes_staging_data_and_everything_downstream(variants: VariantStates) -> None:
    changed = _against_base(variants, "quarantine_rule")
    rule = ("staging.flights: quarantine rule dep_delay_plausible changed",)
    # the step that stages flights writes the quarantined rows too: both change
    for key in ("staging/flights", "quarantine/quarantined_flights"):
        assert changed.assets[key].reasons == {Reason.DATA_RULES: rule}, changed.assets[key]
    assert changed.data_changed == sorted(
        ["core/flights", *DOWNSTREAM_OF_CORE, "quarantine/quarantined_flights", "staging/flights"]
    )
    assert changed.checks_only == [], "the check no longer evaluates the rule: its content is unchanged"
    assert changed.assets["core/flights"].upstream == ("staging/flights",)

    comment = format_changed_set(changed)
    assert "Data changes: **6 assets** (2 directly, 4 only downstream of those)" in comment
    assert f"| `staging/flights` | data | **DATA_RULES**: {rule[0]} |" in comment
    assert "| `publish/months` | data | downstream of `staging/flights` |" in comment
    assert changed_set_json(changed)["assets"]["core/flights"] == {
        "changes": "data",
        "reasons": {},
        "upstream": ["staging/flights"],
    }


def test_an_added_asset_is_new_and_a_dropped_one_removed(variants: VariantStates) -> None:
    base, head = variants.state("base"), variants.state("added_asset")
    added = changed_set(base, head)
    assert list(added.assets) == ["marts/weekday_monthly"], format_changed_set(added)
    assert list(added.assets["marts/weekday_monthly"].reasons) == [Reason.NEW]
    assert added.data_changed == ["marts/weekday_monthly"]

    dropped = changed_set(head, base)
    assert list(dropped.assets) == ["marts/weekday_monthly"] and dropped.removed == ["marts/weekday_monthly"]
    assert dropped.data_changed == []


def test_per_environment_values_change_nothing(variants: VariantStates, tmp_path: Path) -> None:
    """This checkout's package, with another data root and lake, against the copy's state (its files elsewhere)."""
    settings = settings_for("prod", data_root=tmp_path / "elsewhere", lake_uri="s3://preview-bucket/lake")
    defs = build_definitions(settings)
    resources = defs.resources or {}
    assert resources["io_manager"].root_uri == "s3://preview-bucket/lake"  # the definitions do differ
    base, head = variants.state("base"), definitions_state(defs, settings)
    changed = changed_set(base, head)
    assert changed.assets == {}, format_changed_set(changed)
    assert head["assets"] == base["assets"]


def test_thresholds_change_checks_only_and_states_of_other_environments_do_not_compare() -> None:
    prod = settings_for("prod")
    base = definitions_state(build_definitions(prod), prod)
    stricter = replace(prod, thresholds=replace(prod.thresholds, volume_mad_k=3.0))
    changed = changed_set(base, definitions_state(build_definitions(stricter), stricter))
    checked = sorted(key for key, asset in base["assets"].items() if asset["checks"])
    assert changed.data_changed == [] and changed.checks_only == checked
    assert changed.assets["staging/flights"].reasons == {Reason.CHECKS: ("thresholds of prod changed: volume_mad_k",)}

    dev = settings_for("dev")
    with pytest.raises(StatesNotComparableError, match="thresholds differ between environments"):
        changed_set(definitions_state(build_definitions(dev), dev), base)
