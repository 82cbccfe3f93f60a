"""Marts on a hand-made core frame; every expected number is worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dataops_assets.transforms.marts import carrier_monthly, route_monthly

JAN = pd.Timestamp("2013-01-01")
NAN = np.nan
UA = "United Air Lines Inc."
IAH = "George Bush Intercontinental"
ORD = "Chicago Ohare Intl"

_CORE_COLUMNS = [
    "flight_id", "carrier", "airline_name", "origin", "dest", "dest_name", "distance",
    "cancelled", "on_time", "dep_delay", "arr_delay",
]  # fmt: skip
_CORE_ROWS = [
    # UA: 5 flights, 1 cancelled, 3 on time.
    ("f1", "UA", UA, "EWR", "IAH", IAH, 1400.0, False, True, 2.0, 11.0),
    ("f2", "UA", UA, "EWR", "IAH", IAH, 1400.0, False, True, 30.0, 14.0),
    ("f3", "UA", UA, "EWR", "IAH", IAH, 1400.0, True, False, NAN, NAN),
    ("f4", "UA", UA, "LGA", "IAH", IAH, 1416.0, False, True, -5.0, -20.0),
    ("f5", "UA", UA, "EWR", "ORD", ORD, 719.0, False, False, 10.0, 40.0),
    # AA: 2 flights, none cancelled, 1 on time.
    ("f6", "AA", "American Airlines Inc.", "JFK", "MIA", "Miami Intl", 1089.0, False, True, 0.0, -3.0),
    ("f7", "AA", "American Airlines Inc.", "JFK", "MIA", "Miami Intl", 1089.0, False, False, 60.0, 75.0),
    # B6 to BQN (not in airports, so no dest_name); one flight, diverted: departed, no arrival delay.
    ("f8", "B6", "JetBlue Airways", "JFK", "BQN", NAN, 1576.0, False, False, 9.0, NAN),
    # ZZ: not in airlines; its only flight cancelled.
    ("f9", "ZZ", NAN, "LGA", "ORD", ORD, 733.0, True, False, NAN, NAN),
]


@pytest.fixture
def core() -> pd.DataFrame:
    return pd.DataFrame(_CORE_ROWS, columns=_CORE_COLUMNS).astype({"cancelled": bool, "on_time": bool})


def _route(mart: pd.DataFrame, origin: str, dest: str) -> pd.Series:
    rows = mart[(mart["origin"] == origin) & (mart["dest"] == dest)]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.fixture
def by_carrier(core: pd.DataFrame) -> pd.DataFrame:
    return carrier_monthly(core, JAN).set_index("carrier")


def test_carrier_rows_sorted_with_month_first(core: pd.DataFrame) -> None:
    mart = carrier_monthly(core, JAN)
    assert mart["carrier"].tolist() == ["AA", "B6", "UA", "ZZ"]
    assert mart.columns[0] == "month"
    assert mart["month"].dtype == "datetime64[ns]"
    assert (mart["month"] == JAN).all()
    assert mart[["flights", "cancelled", "on_time"]].dtypes.astype(str).tolist() == ["int64"] * 3


def test_carrier_counts_and_shares(by_carrier: pd.DataFrame) -> None:
    ua = by_carrier.loc["UA"]
    assert ua["airline_name"] == "United Air Lines Inc."
    assert ua["flights"] == 5
    assert ua["cancelled"] == 1
    assert ua["on_time"] == 3
    assert ua["cancellation_rate"] == pytest.approx(1 / 5)
    # A cancelled flight counts as not on time: 3 of 5 scheduled, not 3 of 4 flown.
    assert ua["on_time_share"] == pytest.approx(3 / 5)

    aa = by_carrier.loc["AA"]
    assert (aa["flights"], aa["cancelled"], aa["on_time"]) == (2, 0, 1)
    assert aa["cancellation_rate"] == 0.0
    assert aa["on_time_share"] == pytest.approx(0.5)

    b6 = by_carrier.loc["B6"]  # diverted: neither cancelled nor on time
    assert (b6["flights"], b6["cancelled"], b6["on_time"]) == (1, 0, 0)


def test_carrier_delays_ignore_cancelled_flights(by_carrier: pd.DataFrame) -> None:
    ua = by_carrier.loc["UA"]
    # Departure delays flown: -5, 2, 10, 30 -> mean 37 / 4 = 9.25.
    assert ua["mean_dep_delay"] == pytest.approx(9.25)
    # p90 by linear interpolation: position 0.9 * (4 - 1) = 2.7 between 10 and 30 -> 10 + 0.7 * 20 = 24.
    assert ua["p90_dep_delay"] == pytest.approx(24.0)
    # Arrival delays: -20, 11, 14, 40 -> mean 45 / 4 = 11.25; p90 = 14 + 0.7 * 26 = 32.2.
    assert ua["mean_arr_delay"] == pytest.approx(11.25)
    assert ua["p90_arr_delay"] == pytest.approx(32.2)

    aa = by_carrier.loc["AA"]
    # 0 and 60: mean 30; p90 at position 0.9 -> 0 + 0.9 * 60 = 54.
    assert aa["mean_dep_delay"] == pytest.approx(30.0)
    assert aa["p90_dep_delay"] == pytest.approx(54.0)
    # -3 and 75: p90 = -3 + 0.9 * 78 = 67.2.
    assert aa["p90_arr_delay"] == pytest.approx(67.2)

    b6 = by_carrier.loc["B6"]  # one value: every statistic is that value; no arrival delay at all.
    assert b6["mean_dep_delay"] == 9.0
    assert b6["p90_dep_delay"] == 9.0
    assert math.isnan(b6["mean_arr_delay"])
    assert math.isnan(b6["p90_arr_delay"])


def test_carrier_without_airline_name_is_kept(by_carrier: pd.DataFrame) -> None:
    zz = by_carrier.loc["ZZ"]
    assert pd.isna(zz["airline_name"])
    assert zz["flights"] == 1
    assert zz["cancellation_rate"] == 1.0
    assert zz["on_time_share"] == 0.0
    assert math.isnan(zz["mean_dep_delay"])
    assert math.isnan(zz["p90_dep_delay"])


def test_carrier_flights_add_up_to_the_core_rows(core: pd.DataFrame) -> None:
    mart = carrier_monthly(core, JAN)
    assert mart["flights"].sum() == len(core)
    assert mart["cancelled"].sum() == int(core["cancelled"].sum())


def test_route_rows_group_by_origin_and_destination(core: pd.DataFrame) -> None:
    mart = route_monthly(core, JAN)
    assert list(zip(mart["origin"], mart["dest"], strict=True)) == [
        ("EWR", "IAH"),
        ("EWR", "ORD"),
        ("JFK", "BQN"),
        ("JFK", "MIA"),
        ("LGA", "IAH"),
        ("LGA", "ORD"),
    ]
    assert mart["flights"].tolist() == [3, 1, 1, 2, 1, 1]
    assert mart["flights"].sum() == len(core)
    assert (mart["month"] == JAN).all()


def test_route_values(core: pd.DataFrame) -> None:
    mart = route_monthly(core, JAN)
    ewr_iah = _route(mart, "EWR", "IAH")
    assert ewr_iah["dest_name"] == "George Bush Intercontinental"
    assert (ewr_iah["flights"], ewr_iah["cancelled"], ewr_iah["on_time"]) == (3, 1, 2)
    assert ewr_iah["cancellation_rate"] == pytest.approx(1 / 3)
    assert ewr_iah["on_time_share"] == pytest.approx(2 / 3)
    assert ewr_iah["mean_dep_delay"] == pytest.approx(16.0)  # (2 + 30) / 2
    assert ewr_iah["p90_dep_delay"] == pytest.approx(27.2)  # 2 + 0.9 * 28
    assert ewr_iah["distance"] == 1400.0
    # LGA-ORD is flown only by ZZ, cancelled: a separate route from EWR-ORD.
    lga_ord = _route(mart, "LGA", "ORD")
    assert lga_ord["cancellation_rate"] == 1.0
    assert lga_ord["distance"] == 733.0


def test_route_with_unknown_destination_keeps_nan_name(core: pd.DataFrame) -> None:
    mart = route_monthly(core, JAN)
    bqn = _route(mart, "JFK", "BQN")
    assert pd.isna(bqn["dest_name"])
    assert bqn["flights"] == 1
    assert bqn["distance"] == 1576.0


def test_route_distance_is_the_median(core: pd.DataFrame) -> None:
    varied = core.copy()
    varied.loc[varied["flight_id"] == "f2", "distance"] = 1500.0
    varied.loc[varied["flight_id"] == "f3", "distance"] = 1000.0
    mart = route_monthly(varied, JAN)
    assert _route(mart, "EWR", "IAH")["distance"] == 1400.0  # median of 1400, 1500, 1000


def test_month_is_the_given_partition_start(core: pd.DataFrame) -> None:
    july = pd.Timestamp("2013-07-01")
    assert (carrier_monthly(core, july)["month"] == july).all()
    assert (route_monthly(core, july)["month"] == july).all()
