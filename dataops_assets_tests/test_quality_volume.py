"""Volume against history: a month's staged flights per day within median ± k · scaled MAD of the other months.

Real numbers (flights per month; dev lands a 10 % sample with the same spread): the other eleven months put every
real month inside the band with k = 4 (the farthest, January at 871 flights a day against a median of 930 and a
scaled MAD of 21.1, is 2.8 scaled MADs away). A doubled file, a month missing its last four days and a halved
February fall outside, as ERROR in stage and WARN in dev.
"""

from dataclasses import replace

import dagster as dg
import pytest

from dataops_assets import landing
from dataops_assets.environments import Thresholds, settings_for
from dataops_assets.partitions import MONTH_KEYS, MONTHLY
from dataops_assets.quality.volume import CHECK_NAME, band_for, days_in, flights_volume_check, volume_result
from dataops_assets.resources import ThresholdsResource

STAGE = settings_for("stage").thresholds
DEV = settings_for("dev").thresholds
# The real months' flights as landed in stage (the full source) and in dev (its 10 % sample).
STAGE_ROWS = dict(
    zip(MONTH_KEYS, (27004, 24951, 28834, 28330, 28796, 28243, 29425, 29327, 27574, 28889, 27268, 28135), strict=True)
)
DEV_ROWS = dict(zip(MONTH_KEYS, (2700, 2495, 2883, 2833, 2880, 2824, 2942, 2933, 2757, 2889, 2727, 2814), strict=True))


def _others(history: dict[str, int], month: str) -> dict[str, int]:
    return {key: rows for key, rows in history.items() if key != month}


@pytest.mark.real_data
@pytest.mark.parametrize(("environment", "history"), [("stage", STAGE_ROWS), ("dev", DEV_ROWS)])
def test_the_real_counts_are_those_landed(environment: str, history: dict[str, int]) -> None:
    """The figures above are the source's, as ``dataops land`` samples them per environment."""
    fraction = settings_for(environment).sample_fraction
    source = landing.read_source("flights")
    for key, rows in history.items():
        month = str(int(key[-2:]))
        assert len(landing.sample_month(source[source["month"] == month], fraction, int(month))) == rows


@pytest.mark.parametrize(("thresholds", "history"), [(STAGE, STAGE_ROWS), (DEV, DEV_ROWS)])
def test_every_real_month_lies_inside_the_band_of_the_other_eleven(
    thresholds: Thresholds, history: dict[str, int]
) -> None:
    for month, rows in history.items():
        result = volume_result(month, rows, _others(history, month), thresholds)
        assert result.passed, result.description
    january = band_for("2013-01", _others(history, "2013-01"), thresholds.volume_mad_k)
    farthest = abs(history["2013-01"] / 31 - january.median_per_day) / january.spread_per_day
    assert farthest == pytest.approx(2.8, abs=0.05)  # the real month farthest from its history


@pytest.mark.parametrize(
    ("month", "rows", "lower", "upper"),
    [
        ("2013-01", 2 * 27004, 26222, 31446),  # the file landed twice
        ("2013-03", 25212, 25646, 31946),  # the last four days missing (3,622 of March's 28,834 flights)
        ("2013-02", 24951 // 2, 23684, 28403),  # half of February
    ],
)
def test_what_the_band_catches_is_an_error_in_stage_and_a_warning_in_dev(
    month: str, rows: int, lower: int, upper: int
) -> None:
    stage = volume_result(month, rows, _others(STAGE_ROWS, month), STAGE)
    assert (stage.passed, stage.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert (stage.metadata["band_lower"], stage.metadata["band_upper"]) == (
        dg.MetadataValue.int(lower),
        dg.MetadataValue.int(upper),
    )
    assert stage.description is not None
    assert stage.description.startswith(f"staging.flights {month}: volume outside the band of its history: {rows} rows")
    assert f"{lower}..{upper}" in stage.description
    dev = volume_result(month, rows // 10, _others(DEV_ROWS, month), DEV)
    assert (dev.passed, dev.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_too_little_history_passes_saying_so() -> None:
    history = {key: STAGE_ROWS[key] for key in MONTH_KEYS[:5]}
    result = volume_result("2013-12", 1, history, STAGE)
    assert result.passed
    assert result.description == (
        "staging.flights 2013-12: 1 rows; not enough history to judge the volume (5 other months recorded, 6 needed)"
    )
    assert "band_lower" not in result.metadata
    assert volume_result("2013-12", 1, {**history, "2013-06": 28243}, STAGE).passed is False


def _staged_flights(rows_by_month: dict[str, int]) -> dg.AssetsDefinition:
    """A stand-in for staging/flights that records a month's rows as the lake I/O manager does."""

    @dg.asset(key=["staging", "flights"], partitions_def=MONTHLY)
    def flights(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/partition_row_count": rows_by_month[context.partition_key]})

    return flights


def _run(instance: dg.DagsterInstance, month: str, rows: int, thresholds: Thresholds) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [_staged_flights({month: rows}), flights_volume_check],
        instance=instance,
        partition_key=month,
        resources={"thresholds": ThresholdsResource.of(thresholds)},
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK_NAME
    return evaluation


def test_the_history_is_the_latest_materialization_of_every_other_month() -> None:
    instance = dg.DagsterInstance.ephemeral()
    first = [_run(instance, month, STAGE_ROWS[month], STAGE) for month in MONTH_KEYS[:11]]
    assert [e.passed for e in first] == [True] * 11
    assert [e.metadata["history_count"].value for e in first[:7]] == [0, 1, 2, 3, 4, 5, 6]
    _run(instance, "2013-01", 1, replace(STAGE, volume_min_history=99))  # superseded just below
    _run(instance, "2013-01", STAGE_ROWS["2013-01"], STAGE)

    cut = _run(instance, "2013-12", 14_000, STAGE)
    assert (cut.passed, cut.severity) == (False, dg.AssetCheckSeverity.ERROR)
    history = [
        {"partition": month, "rows": rows, "rows_per_day": round(rows / days_in(month), 2)}
        for month, rows in _others(STAGE_ROWS, "2013-12").items()
    ]
    assert cut.metadata["history"] == dg.MetadataValue.json(history)  # January's latest only, December's own never
    assert cut.metadata["history_count"] == dg.MetadataValue.int(11)
    assert cut.metadata["k"] == dg.MetadataValue.float(4.0)
    assert cut.metadata["median_rows_per_day"] == dg.MetadataValue.float(930.13)

    reloaded = _run(instance, "2013-12", STAGE_ROWS["2013-12"], STAGE)
    assert reloaded.passed, reloaded.description  # the cut run of December is not part of December's history
    assert reloaded.metadata["history_count"] == dg.MetadataValue.int(11)

    warned = _run(instance, "2013-12", 14_000, replace(STAGE, volume_severity="WARN"))
    assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN)
