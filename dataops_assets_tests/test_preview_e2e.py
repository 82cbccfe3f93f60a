"""``dataops preview`` end to end on a tiny prod published by ``dataops run``: a pull request's changed assets, and
nothing else, are rebuilt on prod's data read at pinned versions; the diff names what changed; prod does not change
by a byte; ``down`` leaves nothing of the preview."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dataops_assets_tests.fixtures.landing import MONTHS
from dataops_assets_tests.fixtures.previews import (
    Prod,
    build_prod,
    carriers_without_cancelled_flights,
    dataops,
    file_hashes,
    leftovers,
    materialized,
    on_time_over_flown_flights,
    pull_request,
    start_dataops,
    stricter_departure_delays,
)
from dataops_ops.processes import port_open

pytestmark = pytest.mark.e2e

MART_REBUILT = {"marts/carrier_monthly", "publish/months"}
STAGING_REBUILT = {
    "staging/flights",
    "quarantine/quarantined_flights",
    "core/flights",
    "marts/carrier_monthly",
    "marts/route_monthly",
    "publish/months",
}


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Prod:
    return build_prod(tmp_path_factory.mktemp("previews"))


def _listening(url: str) -> bool:
    return port_open(urlsplit(url).port or 0)


def test_a_mart_change_is_rebuilt_alone_diffed_against_prod_and_removed(prod: Prod, tmp_path: Path) -> None:
    change = pull_request(tmp_path / "pr-1", on_time_over_flown_flights)
    before = file_hashes(prod.lake)

    up = dataops(prod, change, "preview", "up", "--pr", "1")
    assert up.returncode == 0, up.stdout + up.stderr
    folder = prod.data_root / "pr-1"
    # only the changed mart and the publish record ran, each for every month prod published
    assert materialized(folder / "dagster_home") == dict.fromkeys(MART_REBUILT, len(MONTHS))
    assert {p.relative_to(folder / "lake").as_posix() for p in (folder / "lake").glob("*/*")} == MART_REBUILT

    diff = dataops(prod, change, "preview", "diff", "--pr", "1")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    report = json.loads((folder / "preview" / "diff.json").read_text())
    assert_on_time_share_changed(report)
    comment = (folder / "preview" / "comment.md").read_text()
    assert comment.startswith("<!-- dataops-preview -->")
    assert "marts.carrier_monthly" in comment and "on_time_share" in comment
    assert file_hashes(prod.lake) == before  # prod did not change by a byte

    url = (folder / "run" / "ui.url").read_text().strip()
    assert _listening(url)
    down = dataops(prod, None, "preview", "down", "--pr", "1")
    assert down.returncode == 0, down.stdout + down.stderr
    assert leftovers(prod.data_root, "pr-1") == []
    assert not _listening(url)
    again = dataops(prod, None, "preview", "down", "--pr", "1")
    assert (again.returncode, again.stdout.strip()) == (0, "pr-1: nothing to remove")


def assert_on_time_share_changed(report: dict) -> None:
    """Every month of the rebuilt mart is compared; where a carrier had cancellations, only its on-time share moved,
    up."""
    compared = {(table["table"], table["month"]) for table in report["tables"]}
    assert compared == {("marts.carrier_monthly", month) for month in MONTHS}
    carriers = [table for table in report["tables"] if table["table"] == "marts.carrier_monthly"]
    differing = [table for table in carriers if table["status"] == "differs"]
    assert differing, "no month of carrier_monthly differs"
    for table in differing:
        assert (table["added"], table["removed"]) == (0, 0) and table["changed"] > 0
        assert [column["column"] for column in table["columns"] if column["differ"]] == ["on_time_share"]
        deltas = [delta for delta in table["metric_deltas"] if delta["metric"] == "on_time_share"]
        assert deltas and all(delta["delta"] > 0 for delta in deltas)


def test_a_staging_rule_rebuilds_staging_to_marts_while_another_preview_runs(prod: Prod, tmp_path: Path) -> None:
    before = file_hashes(prod.lake)
    rule = pull_request(tmp_path / "pr-2", stricter_departure_delays)
    mart = pull_request(tmp_path / "pr-3", on_time_over_flown_flights)
    logs = {pr: tmp_path / f"up-{pr}.log" for pr in ("2", "3")}
    running = {
        pr: start_dataops(prod, change, "preview", "up", "--pr", pr, "--no-ui", log=logs[pr])
        for pr, change in (("2", rule), ("3", mart))
    }
    for pr, process in running.items():
        assert process.wait(timeout=900) == 0, logs[pr].read_text()

    manifests = {pr: json.loads((prod.data_root / f"pr-{pr}" / "preview.json").read_text()) for pr in "23"}
    rebuilt = {pr: set(manifest["rebuilt"]) for pr, manifest in manifests.items()}
    assert rebuilt == {"2": STAGING_REBUILT, "3": MART_REBUILT}
    for pr in "23":
        lake = prod.data_root / f"pr-{pr}" / "lake"
        assert {p.relative_to(lake).as_posix() for p in lake.glob("*/*")} == rebuilt[pr]
        assert materialized(prod.data_root / f"pr-{pr}" / "dagster_home") == dict.fromkeys(rebuilt[pr], len(MONTHS))
    assert file_hashes(prod.lake) == before

    listed = dataops(prod, None, "preview", "list")
    assert sorted(line.split()[0] for line in listed.stdout.splitlines()) == ["pr-2", "pr-3"]
    pruned = dataops(prod, None, "preview", "prune", "--older-than", "0m")
    assert pruned.returncode == 0, pruned.stderr
    assert leftovers(prod.data_root, "pr-2") == leftovers(prod.data_root, "pr-3") == []


def test_a_blocking_check_that_fails_fails_up_and_the_month_stays_unpublished_in_the_preview(
    prod: Prod, tmp_path: Path
) -> None:
    change = pull_request(tmp_path / "pr-4", carriers_without_cancelled_flights)
    up = dataops(prod, change, "preview", "up", "--pr", "4", "--months", "2013-01", "--no-ui")
    assert up.returncode == 1, up.stdout + up.stderr
    folder = prod.data_root / "pr-4"
    checks = (folder / "preview" / "checks.md").read_text()
    assert "1 run(s) **failed**" in checks and "ERROR `marts/carrier_monthly` reconciles_with_core" in checks
    assert "publish/months" not in materialized(folder / "dagster_home")  # the blocking check stopped it

    diff = dataops(prod, change, "preview", "diff", "--pr", "4")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    [table] = json.loads((folder / "preview" / "diff.json").read_text())["tables"]
    assert (table["table"], table["month"], table["head_published"], table["status"]) == (
        "marts.carrier_monthly",
        "2013-01",
        False,
        "differs",
    )
    assert dataops(prod, None, "preview", "down", "--pr", "4").returncode == 0
