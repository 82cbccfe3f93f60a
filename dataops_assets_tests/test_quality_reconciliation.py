"""The marts' reconciliation with core, run in Dagster on hand-made staged flights, in memory (no storage): it passes
on the marts the real mart assets build and fails with ERROR on a mart that disagrees with core."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pandas as pd
import pytest

from dataops_assets.assets.marts import mart_assets
from dataops_assets.partitions import MONTHLY
from dataops_assets.quality.reconciliation import CHECK_NAME, mismatches, reconciliation_checks
from dataops_assets.transforms import marts
from dataops_assets.transforms.flights import stage_flights
from dataops_assets_tests.fixtures.builders import flight, raw_flights

MONTH = "2013-01"
_CANCELLED = {"dep_time": "NA", "dep_delay": "NA", "arr_time": "NA", "arr_delay": "NA", "air_time": "NA"}


def _core() -> pd.DataFrame:
    """UA: 3 flights EWR-IAH, 1 cancelled; B6: 1 flight JFK-BQN, cancelled."""
    rows = (
        flight(),
        flight(flight="2"),
        flight(flight="3", **_CANCELLED),
        flight(carrier="B6", flight="725", origin="JFK", dest="BQN", **_CANCELLED),
    )
    staged = stage_flights(raw_flights(*rows, partition=MONTH), pd.Timestamp(f"{MONTH}-01"))
    assert len(staged.valid) == 4 and staged.valid["cancelled"].sum() == 2
    names = staged.valid["carrier"].map({"UA": "United Air Lines Inc.", "B6": "JetBlue Airways"})
    return staged.valid.assign(airline_name=names, dest_name=None)


@dg.asset(key=["core", "flights"], partitions_def=MONTHLY)
def core_flights() -> pd.DataFrame:
    return _core()


def _tampered_mart(name: str, build: Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame]) -> dg.AssetsDefinition:
    """The real mart of the month with one flight fewer in its first group."""

    @dg.asset(key=["marts", name], deps=[core_flights], partitions_def=MONTHLY)
    def _mart() -> pd.DataFrame:
        mart = build(_core(), pd.Timestamp(f"{MONTH}-01"))
        mart.loc[0, "flights"] = int(mart["flights"].iloc[0]) - 1
        return mart

    return _mart


def _evaluations(assets: list[dg.AssetsDefinition]) -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize_to_memory(
        [core_flights, *assets, *reconciliation_checks], partition_key=MONTH, raise_on_error=False
    )
    return {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME}


def test_the_real_marts_reconcile_with_core() -> None:
    evaluations = _evaluations(mart_assets)
    assert set(evaluations) == {"marts/carrier_monthly", "marts/route_monthly"}
    for evaluation in evaluations.values():
        assert evaluation.passed and evaluation.partition == MONTH, evaluation.description
        assert evaluation.metadata["core_flights"].value == evaluation.metadata["mart_flights"].value == 4
        assert evaluation.metadata["core_cancelled"].value == evaluation.metadata["mart_cancelled"].value == 2


@pytest.mark.parametrize(
    ("name", "build", "group"),
    [("carrier_monthly", marts.carrier_monthly, "B6:"), ("route_monthly", marts.route_monthly, "EWR IAH:")],
)
def test_a_mart_that_disagrees_with_core_fails_with_error(
    name: str, build: Callable[[pd.DataFrame, pd.Timestamp], pd.DataFrame], group: str
) -> None:
    evaluation = _evaluations([_tampered_mart(name, build)])[f"marts/{name}"]
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["mismatched_groups"].value == 1
    assert evaluation.description is not None and group in evaluation.description, evaluation.description


def test_a_group_missing_from_one_side_is_a_mismatch() -> None:
    core = _core()
    mart = marts.carrier_monthly(core, pd.Timestamp(f"{MONTH}-01"))
    assert mismatches(core, mart, ["carrier"]).empty
    missing = mismatches(core, mart[mart["carrier"] != "UA"], ["carrier"])
    assert missing[["carrier", "flights_core", "flights_mart", "cancelled_core", "cancelled_mart"]].values.tolist() == [
        ["UA", 3, 0, 1, 0]
    ]
    extra = mismatches(core[core["carrier"] != "B6"], mart, ["carrier"])
    assert extra["carrier"].tolist() == ["B6"] and extra["flights_mart"].tolist() == [1]
