"""Staging layer: typed rows with a natural key; rows that break a row rule go to the quarantine schema."""

from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets.assets.measure import Stopwatch
from dataops_assets.partitions import MONTHLY, month_start
from dataops_assets.quality.quarantine import quarantine_check_result, quarantine_check_spec
from dataops_assets.resources import ThresholdsResource
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets.transforms.flights import stage_flights
from dataops_assets.transforms.reference import REFERENCE_SPECS, stage_reference
from dataops_assets.transforms.typing import Staged
from dataops_assets.transforms.weather import stage_weather

LAYER = "staging"
_OWNERS = ["team:flight-analytics"]
_KINDS = {"pandas", "deltalake"}
_TAGS = {"layer": LAYER}


def _staged_outs(subject: str, description: str) -> dict[str, dg.AssetOut]:
    staged = dg.AssetOut(
        key=[LAYER, subject],
        group_name=LAYER,
        owners=_OWNERS,
        kinds=_KINDS,
        tags=_TAGS,
        metadata={"partition_expr": PARTITION_COLUMN},
        description=description,
    )
    quarantine = dg.AssetOut(
        key=["quarantine", subject],
        group_name=LAYER,
        owners=_OWNERS,
        kinds=_KINDS,
        tags={"layer": "quarantine"},
        metadata={"partition_expr": PARTITION_COLUMN},
        description=f"Rows of raw {subject} that broke a row rule: the rule, a detail, the original values, "
        "the partition, source file and line, the run and the time. Never read by consumers.",
    )
    return {f"{LAYER}__{subject}": staged, f"quarantine__{subject}": quarantine}


def _staging_asset(
    subject: str, description: str, stage: Callable[[pd.DataFrame, pd.Timestamp], Staged]
) -> dg.AssetsDefinition:
    staged_key = dg.AssetKey([LAYER, subject])

    @dg.multi_asset(
        name=f"stage_{subject}",
        outs=_staged_outs(subject, description),
        ins={"raw": dg.AssetIn(key=["raw", subject])},
        partitions_def=MONTHLY,
        check_specs=[quarantine_check_spec(staged_key, MONTHLY)],
        can_subset=False,
    )
    def _stage(context: dg.AssetExecutionContext, raw: pd.DataFrame, thresholds: ThresholdsResource) -> Iterator[Any]:
        stopwatch = Stopwatch()
        staged = stage(raw, month_start(context))
        quarantined = staged.quarantined.assign(_run_id=context.run.run_id, _quarantined_at=pd.Timestamp.now("UTC"))
        quarantined["_quarantined_at"] = quarantined["_quarantined_at"].dt.tz_localize(None)
        counts = stopwatch.metadata(len(raw), len(staged.valid), rows_quarantined=len(quarantined))
        yield dg.Output(staged.valid, output_name=f"{LAYER}__{subject}", metadata=counts)
        yield dg.Output(quarantined, output_name=f"quarantine__{subject}", metadata=_rule_counts(quarantined))
        yield quarantine_check_result(
            staged_key,
            rows_in=len(raw),
            staged=len(staged.valid),
            quarantined=quarantined,
            max_share=thresholds.max_quarantine_share,
        )

    return _stage


def _rule_counts(quarantined: pd.DataFrame) -> dict[str, int]:
    by_rule = quarantined["rule"].value_counts()
    return {"rows_quarantined": len(quarantined), **{f"rule/{rule}": int(n) for rule, n in by_rule.items()}}


stage_flights_asset = _staging_asset(
    "flights",
    "Flights typed, keyed by flight_id (scheduled local departure, carrier and number, origin), with local and "
    "UTC departure times, the scheduled hour in UTC, cancelled and diverted flags and delay fields.",
    stage_flights,
)
stage_weather_asset = _staging_asset(
    "weather",
    "Hourly weather typed and keyed by observation_id (origin and UTC hour).",
    stage_weather,
)


def _reference_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=[LAYER, table],
        ins={"raw": dg.AssetIn(key=["raw", table])},
        group_name=LAYER,
        owners=_OWNERS,
        kinds=_KINDS,
        tags=_TAGS,
        description=f"The {table} reference table typed, one row per {REFERENCE_SPECS[table].key}.",
    )
    def _stage_reference(raw: pd.DataFrame) -> dg.Output[pd.DataFrame]:
        stopwatch = Stopwatch()
        staged = stage_reference(table, raw)
        return dg.Output(staged, metadata=stopwatch.metadata(len(raw), len(staged)))

    return _stage_reference


staging_assets = [stage_flights_asset, stage_weather_asset, *(_reference_asset(t) for t in REFERENCE_SPECS)]
