"""The Dagster UI in a real browser: headless Chromium (Debian's package) driven by Playwright.

``dataops ui`` (dg dev) serves a one-month materialization of the tiny landing on a free port of 127.0.0.1; the test
reads the lineage, an asset's columns and a check's result for the month, launches the partition from the UI and
waits for its run. The page walks are shared with the README's screenshots (``make screenshots``, which takes them
over the real year in stage); the pictures taken here go to pytest's temporary folder, never into the repository.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from playwright.sync_api import Page, expect

from dataops_assets import catalog, landing
from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, THRESHOLDS_VAR
from dataops_assets_tests.fixtures import ui_pages
from dataops_assets_tests.fixtures.landing import ship_as_is
from dataops_assets_tests.fixtures.observability import TINY_BOUNDS, TINY_MONTH, tiny_landed_settings
from dataops_assets_tests.fixtures.pipeline import materialize_partition
from dataops_assets_tests.fixtures.ui_server import graphql, served_ui, wait_for_run
from dataops_ops.instance import prepare_dagster_home

pytestmark = pytest.mark.browser

# JFK on 2013-01-02 at 07:00 local (12:00 UTC), an hour the tiny landing has no JFK weather for: core finds
# weather for 3 flights of 4, so its warning expectation (mostly 95 %) fails, and gx_suite (WARN) carries a
# failed-expectations table.
FLIGHT_WITHOUT_WEATHER = "2013,1,2,700,700,0,1010,1005,5,AA,1143,N619AA,JFK,MIA,160,1089,7,0,2013-01-02T12:00:00Z"
WARNED_EXPECTATION = "weather_found_for_most_flights"


@dataclass(frozen=True)
class Served:
    url: str
    settings: Any


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not ui_pages.CHROMIUM.exists():
        pytest.fail(f"{ui_pages.CHROMIUM} missing: make test installs it, or set DATAOPS_CHROMIUM")
    settings = tiny_landed_settings(tmp_path_factory.mktemp("ui"))
    _land_a_flight_without_weather(settings.landing_dir)
    env = {
        **os.environ,
        ENV_VAR: settings.name,
        DATA_ROOT_VAR: str(settings.data_root),
        THRESHOLDS_VAR: json.dumps(TINY_BOUNDS),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(settings.dagster_home))
        home = prepare_dagster_home(settings)
        with dg.DagsterInstance.from_config(home) as instance:
            assert materialize_partition(settings, TINY_MONTH, instance).success
    log = settings.data_root / "ui.log"
    with served_ui(env, log) as url:
        yield Served(url, settings)
    output = log.read_text()
    assert "Warning" not in output, output


def _land_a_flight_without_weather(landing_dir: Path) -> None:
    path = landing.flights_file(landing_dir, TINY_MONTH)
    with path.open("a", encoding="utf-8") as out:
        out.write(FLIGHT_WITHOUT_WEATHER + "\n")
    ship_as_is(path)


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[Page]:
    with ui_pages.browser_page(served.url) as page:
        yield page


def test_lineage_shows_every_group(served: Served, page: Page, tmp_path: Path) -> None:
    ui_pages.show_lineage(page, served.url, ui_pages.GROUPS)
    ui_pages.save(page, tmp_path / "ui-lineage.png")


def test_core_flights_shows_described_columns(served: Served, page: Page, tmp_path: Path) -> None:
    descriptions = catalog.column_descriptions("core", "flights")
    columns = ("flight_id", "dep_delay", "has_weather")
    ui_pages.show_columns(page, served.url, "core/flights", {column: descriptions[column] for column in columns})
    ui_pages.save(page, tmp_path / "ui-asset.png")


def test_core_flights_shows_its_gx_suite_result(served: Served, page: Page, tmp_path: Path) -> None:
    ui_pages.show_check_partition(page, served.url, "core/flights", "gx_suite", TINY_MONTH)
    expect(page.get_by_text("Latest execution")).to_be_visible()
    expect(page.get_by_text("expectations_evaluated", exact=True).first).to_be_visible()
    expect(page.get_by_text(TINY_MONTH, exact=True).first).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"WARN, 1 of \d+ expectations failed \(0 critical, 1 warning\)")).first
    ).to_be_visible()
    ui_pages.save(page, tmp_path / "ui-checks.png")
    failures = ui_pages.show_markdown(page, "failed_expectations")
    expect(failures.get_by_role("columnheader", name="Expectation")).to_be_visible()
    warned = failures.get_by_role("row").filter(has_text=WARNED_EXPECTATION)
    for cell in ("warning", "weather_observation_id", "25.00 %", "WARN"):
        expect(warned).to_contain_text(cell)
    ui_pages.save(page, tmp_path / "ui-check-failures.png")
    page.keyboard.press("Escape")


def test_partition_keys_reach_2013(served: Served) -> None:
    """The per-partition plots ask for the newest keys first: 2013's (dataops_ops.dagster_fixes), not today's."""
    query = """query ($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
        ... on AssetNode { partitionKeyConnection(limit: 3, ascending: false) { results } } } }"""
    node = graphql(served.url, query, {"path": ["core", "flights"]})["assetNodeOrError"]
    assert node["partitionKeyConnection"]["results"] == ["2013-12", "2013-11", "2013-10"]


def test_a_partition_launched_from_the_ui_succeeds(served: Served, page: Page, tmp_path: Path) -> None:
    run_id = ui_pages.launch_partition(page, served.url, "assets/core/flights", "Materialize…", TINY_MONTH)
    assert wait_for_run(served.url, run_id, timeout_s=90) == "SUCCESS"
    ui_pages.show_run(page, served.url, run_id)
    ui_pages.save(page, tmp_path / "ui-run.png")
