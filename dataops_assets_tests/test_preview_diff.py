"""The data diff of a pull-request preview (``dataops_ops.preview.diff``) on small Arrow tables with the published
tables' real column names: prod's month (base) against the preview's (head)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from dataops_ops.preview.diff import (
    ColumnMatch,
    MetricDelta,
    Retyped,
    SampleRow,
    TableMonthDiff,
    ValueChange,
    diff_report,
    diff_table_month,
    report_json,
    report_markdown,
    write_diff,
)

UA, AA, B6, DL = (
    "2013-03-01T0515/UA1545/EWR",
    "2013-03-01T0529/AA1141/JFK",
    "2013-03-01T0540/B6725/JFK",
    "2013-03-01T0545/DL461/LGA",
)
NEW = "2013-03-01T0600/EV4401/EWR"
FLIGHTS: dict[str, list[Any]] = {
    "flight_id": [UA, AA, B6, DL],
    "carrier": ["UA", "AA", "B6", "DL"],
    "flight": [1545, 1141, 725, 461],
    "tailnum": ["N14228", "N619AA", None, "N668DN"],
    "sched_dep_local": [datetime(2013, 3, 1, 5, minute) for minute in (15, 29, 40, 45)],
    "dep_delay": [2.0, 4.0, 2.0, -1.0],
    "arr_delay": [11.0, 20.0, 33.0, -18.0],
    "on_time": [True, False, False, True],
    "partition_month": [date(2013, 3, 1)] * 4,
}
CARRIERS: dict[str, list[Any]] = {
    "month": [datetime(2013, 3, 1)] * 3,
    "carrier": ["AA", "DL", "UA"],
    "airline_name": ["American Airlines Inc.", "Delta Air Lines Inc.", "United Air Lines Inc."],
    "flights": [2800, 3900, 5000],
    "cancelled": [50, 40, 100],
    "on_time": [2240, 3120, 4000],
    "mean_dep_delay": [8.5, 10.0, 12.25],
    "cancellation_rate": [50 / 2800, 40 / 3900, 100 / 5000],
    "on_time_share": [0.8, 0.8, 0.8],
}
ROUTES: dict[str, list[Any]] = {
    "month": [datetime(2013, 3, 1)] * 2,
    "origin": ["EWR", "JFK"],
    "dest": ["ATL", "ATL"],
    "dest_name": ["Hartsfield Jackson Atlanta Intl"] * 2,
    "flights": [400, 300],
    "cancelled": [4, 3],
    "on_time": [300, 240],
    "cancellation_rate": [0.01, 0.01],
    "on_time_share": [0.75, 0.8],
}


def table(columns: dict[str, list[Any]], **changes: list[Any]) -> pa.Table:
    """The columns as an Arrow table, with some replaced (or added)."""
    return pa.table({**columns, **changes})


def without(columns: dict[str, list[Any]], *names: str) -> dict[str, list[Any]]:
    return {name: values for name, values in columns.items() if name not in names}


def rows(columns: dict[str, list[Any]], positions: list[int]) -> dict[str, list[Any]]:
    """The rows at ``positions``, in that order."""
    return {name: [values[n] for n in positions] for name, values in columns.items()}


def flights_diff(head: pa.Table | ds.Dataset | None, base: Any = None, **kwargs: Any) -> TableMonthDiff:
    base = table(FLIGHTS) if base is None else base
    return diff_table_month("core.flights", "2013-03", base, head, **kwargs)


def column(diff: TableMonthDiff, name: str) -> ColumnMatch:
    [found] = [match for match in diff.columns if match.column == name]
    return found


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrow table", "arrow dataset"])
def test_rows_added_removed_and_changed_are_counted_by_the_key(as_dataset: bool) -> None:
    # DL removed, a new flight added, AA's arrival delay changed; the order of the rows does not count
    moved = rows(FLIGHTS, [2, 1, 0])
    head = table(
        {name: [*values, FLIGHTS[name][0]] for name, values in moved.items()},
        flight_id=[B6, AA, UA, NEW],
        arr_delay=[33.0, 27.0, 11.0, 11.0],
    )
    found = flights_diff(ds.dataset(head) if as_dataset else head, ds.dataset(table(FLIGHTS)) if as_dataset else None)
    assert (found.base_rows, found.head_rows) == (4, 4)
    assert (found.added, found.removed, found.matched, found.changed) == (1, 1, 3, 1)
    assert (found.added_keys, found.removed_keys) == (((NEW,),), ((DL,),))
    assert found.status == "differs"


def test_columns_added_removed_and_retyped_are_found() -> None:
    head = table(
        without(FLIGHTS, "on_time"), flight=[1545.0, 1141.0, 725.0, 461.0], delay_gain=[-9.0, -16.0, -31.0, 17.0]
    )
    found = flights_diff(head)
    assert found.columns_added == ("delay_gain",)
    assert found.columns_removed == ("on_time",)
    assert found.columns_retyped == (Retyped("flight", "BIGINT", "DOUBLE"),)
    # a retyped column still compares by value: 1545 and 1545.0 are equal
    assert column(found, "flight") == ColumnMatch("flight", 0, 100.0)
    assert "Schema: added `delay_gain`; removed `on_time`; retyped `flight` BIGINT → DOUBLE." in _markdown(found)


def test_arrow_encodings_of_one_type_are_no_change() -> None:
    carriers = pa.array(FLIGHTS["carrier"], pa.large_string())
    head = table(FLIGHTS, carrier=carriers, tailnum=pa.array(FLIGHTS["tailnum"]).dictionary_encode())
    assert flights_diff(head).status == "identical"


def test_match_share_and_differing_rows_per_column() -> None:
    # arr_delay differs in 1 of 4 rows, dep_delay in 2 (one of them the same row): 2 rows changed
    head = table(FLIGHTS, arr_delay=[11.0, 27.0, 33.0, -18.0], dep_delay=[2.0, 9.0, 2.0, 0.0])
    found = flights_diff(head)
    assert column(found, "arr_delay") == ColumnMatch("arr_delay", 1, 75.0)
    assert column(found, "dep_delay") == ColumnMatch("dep_delay", 2, 50.0)
    assert column(found, "carrier") == ColumnMatch("carrier", 0, 100.0)
    assert found.changed == 2
    assert "| `arr_delay` | 1 | 75.00 % |" in _markdown(found)


def test_samples_show_the_key_and_each_differing_column_from_base_to_head() -> None:
    later = [datetime(2013, 3, 1, 5, 15), datetime(2013, 3, 1, 6, 0), *FLIGHTS["sched_dep_local"][2:]]
    head = table(FLIGHTS, arr_delay=[11.0, 27.0, 40.0, -10.0], sched_dep_local=later)
    found = flights_diff(head, samples=2)
    assert found.changed == 3
    assert found.samples == (  # the first two by key
        SampleRow(
            (AA,),
            (
                ValueChange("sched_dep_local", "2013-03-01T05:29:00", "2013-03-01T06:00:00"),
                ValueChange("arr_delay", 20.0, 27.0),
            ),
        ),
        SampleRow((B6,), (ValueChange("arr_delay", 33.0, 40.0),)),
    )
    assert f"| {AA} | 2013-03-01T05:29:00 → 2013-03-01T06:00:00 | 20 → 27 |" in _markdown(found)


def test_two_nulls_are_equal_and_a_null_against_a_value_differs() -> None:
    base = table(FLIGHTS, arr_delay=[None, None, 33.0, None])
    head = table(FLIGHTS, arr_delay=[None, 25.0, None, None], tailnum=["N14228", "N619AA", None, None])
    found = flights_diff(head, base)
    assert column(found, "arr_delay") == ColumnMatch("arr_delay", 2, 50.0)  # AA null → 25, B6 33 → null
    assert column(found, "tailnum") == ColumnMatch("tailnum", 1, 75.0)  # B6 null on both sides; DL N668DN → null
    assert found.changed == 3
    assert [sample.changes for sample in found.samples][:2] == [
        (ValueChange("arr_delay", None, 25.0),),
        (ValueChange("arr_delay", 33.0, None),),
    ]


def test_floats_are_equal_within_the_tolerance_only() -> None:
    head = table(FLIGHTS, dep_delay=[2.0 + 1e-12, 4.0, 2.0, -1.0 + 1e-6])
    found = flights_diff(head)
    assert column(found, "dep_delay") == ColumnMatch("dep_delay", 1, 75.0)
    assert [sample.key for sample in found.samples] == [(DL,)]


def test_mart_metric_changes_per_key_largest_first_with_the_flights_total() -> None:
    head = table(CARRIERS, on_time_share=[0.8, 0.7, 0.85], flights=[2810, 3900, 5000])
    found = diff_table_month("marts.carrier_monthly", "2013-03", table(CARRIERS), head)
    shares = [delta for delta in found.metric_deltas if delta.metric == "on_time_share"]
    assert [(delta.key, delta.base, delta.head) for delta in shares] == [(("DL",), 0.8, 0.7), (("UA",), 0.8, 0.85)]
    assert shares[0].delta == pytest.approx(-0.1)
    assert shares[1].delta == pytest.approx(0.05)
    assert MetricDelta("flights", ("AA",), 2800, 2810, 10) in found.metric_deltas
    assert found.totals == (MetricDelta("flights", (), 11700, 11710, 10),)
    markdown = _markdown(found)
    assert "| UA | `on_time_share` | 0.8 | 0.85 | +0.05 |" in markdown
    assert "Totals: `flights` 11,700 → 11,710 (+10)." in markdown


def test_route_metrics_are_keyed_by_origin_and_destination() -> None:
    head = table(ROUTES, cancellation_rate=[0.01, 0.02])
    found = diff_table_month("marts.route_monthly", "2013-03", table(ROUTES), head)
    [delta] = found.metric_deltas
    assert (delta.metric, delta.key, delta.delta) == ("cancellation_rate", ("JFK", "ATL"), pytest.approx(0.01))
    assert "| JFK | ATL | `cancellation_rate` | 0.01 | 0.02 | +0.01 |" in _markdown(found)


def test_above_max_rows_only_aggregates_are_reported_and_the_output_says_so() -> None:
    head = table(FLIGHTS, arr_delay=[11.0, 27.0, 33.0, -18.0])
    assert flights_diff(head, max_rows=8).fallback is None  # 4 + 4 rows: not above
    found = flights_diff(head, max_rows=7)
    assert found.fallback == "8 rows (base + head) are more than max_rows (7): no row-by-row join"
    assert (found.added, found.removed, found.changed, found.columns, found.samples) == (None, None, None, (), ())
    assert found.status == "aggregates only"
    aggregates = {column.column: column for column in found.aggregates}
    assert aggregates["arr_delay"].base is not None and aggregates["arr_delay"].head is not None
    assert (aggregates["arr_delay"].base.mean, aggregates["arr_delay"].head.mean) == (11.5, 13.25)
    assert (aggregates["arr_delay"].base.max, aggregates["arr_delay"].head.max) == (33.0, 33.0)
    assert aggregates["arr_delay"].differs
    assert not aggregates["carrier"].differs
    assert aggregates["carrier"].base is not None and aggregates["carrier"].base.mean is None
    assert (aggregates["carrier"].base.non_null, aggregates["carrier"].base.min) == (4, "AA")
    markdown = _markdown(found)
    assert f"**Aggregates only**: {found.fallback}." in markdown
    assert "| `arr_delay` | 4 | -18 | 33 | 11.5 → 13.25 |" in markdown
    assert "| 2013-03 | 4 | 4 | — | — | — |" in markdown


def test_identical_months_report_no_difference_and_collapse_to_one_line() -> None:
    same = flights_diff(table(rows(FLIGHTS, [3, 2, 1, 0])))
    assert same.status == "identical"
    assert (same.added, same.removed, same.changed, same.samples) == (0, 0, 0, ())
    assert all(match.pct_match == 100.0 and match.differ == 0 for match in same.columns)
    months = [replace(same, month=f"2013-{number:02}") for number in range(1, 13)]
    markdown = report_markdown(diff_report(months))
    assert "**No differences**: 12 table-months of 1 table compared" in markdown
    assert "All 12 months identical: 2013-01, 2013-02" in markdown
    assert "| Month |" not in markdown


def test_a_differing_month_gets_a_row_and_the_identical_ones_one_line() -> None:
    changed = flights_diff(table(FLIGHTS, arr_delay=[11.0, 27.0, 33.0, -18.0]))
    same = flights_diff(table(FLIGHTS))
    report = diff_report([changed, *(replace(same, month=f"2013-{number:02}") for number in (1, 2, 4))])
    markdown = report_markdown(report)
    assert "**1 differ**, 3 identical" in markdown
    assert "| 2013-03 | 4 | 4 | 0 | 0 | 1 |" in markdown
    assert "3 months identical: 2013-01, 2013-02, 2013-04." in markdown
    assert not report.identical


def test_a_month_published_on_one_side_only_is_all_added_or_all_removed() -> None:
    only_head = diff_table_month("core.flights", "2013-03", None, table(FLIGHTS))
    assert (only_head.base_published, only_head.added, only_head.removed, only_head.changed) == (False, 4, 0, 0)
    assert only_head.status == "differs"
    assert "| 2013-03 | not published | 4 | 4 | 0 | 0 |" in _markdown(only_head)
    only_base = flights_diff(None)
    assert (only_base.head_published, only_base.added, only_base.removed) == (False, 0, 4)


def test_the_partition_column_is_ignored() -> None:
    head = table(without(FLIGHTS, "partition_month"))
    assert flights_diff(head).status == "identical"
    assert "partition_month" not in {match.column for match in flights_diff(head).columns}


def test_repeated_keys_are_counted_and_reported() -> None:
    head = table(rows(FLIGHTS, [0, 1, 1, 2, 3]))
    found = flights_diff(head)
    assert (found.base_duplicate_keys, found.head_duplicate_keys) == (0, 1)
    assert (found.matched, found.changed, found.status) == (5, 0, "differs")  # AA's two copies, each paired
    assert "Keys that repeat (flight_id): 0 in prod, 1 in the preview" in _markdown(found)


def test_an_unknown_table_or_no_data_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no key known for table 'marts\.daily'"):
        diff_table_month("marts.daily", "2013-03", table(FLIGHTS), table(FLIGHTS))
    with pytest.raises(ValueError, match="neither side has data"):
        diff_table_month("core.flights", "2013-03", None, None)
    with pytest.raises(ValueError, match="the head side has no key column flight_id"):
        flights_diff(table(without(FLIGHTS, "flight_id")))


def test_write_diff_writes_the_markdown_and_the_json_that_reads_back(tmp_path: Path) -> None:
    changed = flights_diff(table(FLIGHTS, arr_delay=[11.0, 27.0, None, -18.0]))
    marts = diff_table_month("marts.carrier_monthly", "2013-03", table(CARRIERS), table(CARRIERS, flights=[1, 2, 3]))
    report = diff_report([marts, changed, flights_diff(table(FLIGHTS), max_rows=0)])
    markdown, data = write_diff(report, tmp_path / "preview")
    assert (markdown, data) == (tmp_path / "preview" / "diff.md", tmp_path / "preview" / "diff.json")
    assert markdown.read_text(encoding="utf-8") == report_markdown(report) + "\n"
    read_back = json.loads(data.read_text(encoding="utf-8"))
    assert read_back == report_json(report)
    assert [(t["table"], t["status"]) for t in read_back["tables"]] == [
        ("core.flights", "differs"),  # tables in TABLE_KEYS order
        ("core.flights", "aggregates only"),
        ("marts.carrier_monthly", "differs"),
    ]
    assert read_back["tables"][0]["samples"] == [
        {"key": [AA], "changes": [{"column": "arr_delay", "base": 20.0, "head": 27.0}]},
        {"key": [B6], "changes": [{"column": "arr_delay", "base": 33.0, "head": None}]},
    ]


def _markdown(diff: TableMonthDiff) -> str:
    return report_markdown(diff_report([diff]))
