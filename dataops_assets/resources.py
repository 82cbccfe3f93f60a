"""Resources, chosen per environment from its ``Settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from dataops_assets import landing
from dataops_assets.environments import Settings
from dataops_assets.warehouse import WarehouseIOManager


class LandingZone(dg.ConfigurableResource):
    """The folder the source system drops its files into."""

    root: str

    def flights_file(self, month_key: str) -> Path:
        return landing.flights_file(Path(self.root), month_key)

    def weather_file(self, month_key: str) -> Path:
        return landing.weather_file(Path(self.root), month_key)

    def reference_file(self, table: str) -> Path:
        return landing.reference_file(Path(self.root), table)


class Environment(dg.ConfigurableResource):
    """The environment's name and the limits its data is held to, for the checks."""

    name: str
    max_quarantine_share: float


def build_resources(settings: Settings) -> dict[str, Any]:
    return {
        "io_manager": WarehouseIOManager(database=str(settings.warehouse_path)),
        "landing_zone": LandingZone(root=str(settings.landing_dir)),
        "environment": Environment(name=settings.name, max_quarantine_share=settings.thresholds.max_quarantine_share),
    }
