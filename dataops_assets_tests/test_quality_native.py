"""Dagster's own checks: schema change on the assets tagged published, row-count bounds from the thresholds."""

import warnings

import dagster as dg
import pytest

from dataops_assets.assets.core import core_assets
from dataops_assets.assets.marts import mart_assets
from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import staging_assets
from dataops_assets.environments import settings_for
from dataops_assets.partitions import MONTHLY
from dataops_assets.quality.native import native_checks

ASSETS = [*raw_assets, *staging_assets, *core_assets, *mart_assets]
DEV = settings_for("dev").thresholds


def schema_change_targets(checks: list[dg.AssetChecksDefinition]) -> set[str]:
    return {
        key.asset_key.to_user_string()
        for check in checks
        for key in check.check_keys
        if key.name == "column_schema_change"
    }


def test_schema_changes_are_watched_on_the_assets_tagged_published() -> None:
    assert schema_change_targets(list(native_checks(ASSETS, DEV))) == {
        "core/flights", "marts/carrier_monthly", "marts/route_monthly",
    }  # fmt: skip


def test_the_tag_decides_which_assets_are_watched() -> None:
    @dg.asset(key=["marts", "new_mart"], tags={"published": "true"})
    def new_mart() -> None: ...

    @dg.asset(key=["marts", "draft_mart"], tags={"published": "false"})
    def draft_mart() -> None: ...

    watched = schema_change_targets(list(native_checks([*ASSETS, new_mart, draft_mart], DEV)))
    assert "marts/new_mart" in watched
    assert "marts/draft_mart" not in watched


def core_flights_of(rows: int) -> dg.AssetsDefinition:
    @dg.asset(key=["core", "flights"], partitions_def=MONTHLY)
    def core_flights() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/partition_row_count": rows})

    return core_flights


@pytest.mark.parametrize(("rows", "passed"), [(2_500, True), (8, False), (3_500, False)])
def test_core_row_count_is_held_to_the_environment_bounds(rows: int, passed: bool) -> None:
    """dev holds a month of core to 2,277 (2,300 less the quarantine allowance) to 3,100 flights, as a WARN."""
    asset = core_flights_of(rows)
    checks = [
        check
        for check in native_checks([asset], DEV)
        if any(key.name == "dagster_partition_row_count_bounds_check" for key in check.check_keys)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = dg.materialize([asset, *checks], partition_key="2013-01")
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is passed, evaluation.description
    assert evaluation.severity == dg.AssetCheckSeverity.WARN


def test_the_builtin_checks_have_readable_op_names_and_descriptions() -> None:
    """Dagster's builders name ops like ``asset_check_f8bb3d34`` and describe checks in generic words."""
    checks = list(native_checks(ASSETS, DEV))
    by_op = {check.op.name: check for check in checks}
    assert set(by_op) == {"published_tables_column_schema_change", "core_flights_row_count_bounds"}
    descriptions = {
        f"{key.asset_key.to_user_string()}:{key.name}": check.get_spec_for_check_key(key).description or ""
        for check in checks
        for key in check.check_keys
    }
    assert "columns or column types of marts/route_monthly" in descriptions["marts/route_monthly:column_schema_change"]
    bounds = descriptions["core/flights:dagster_partition_row_count_bounds_check"]
    assert "fewer than 2,277 or more than 3,100 rows" in bounds
    assert not [text for text in descriptions.values() if "targeted asset" in text or "Checks that" in text]
