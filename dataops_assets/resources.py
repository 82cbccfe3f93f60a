"""Resources, chosen per environment from its ``Settings``."""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal

import dagster as dg

from dataops_assets import landing
from dataops_assets.environments import Settings, Thresholds
from dataops_assets.storage import lake_io_manager


class LandingZone(dg.ConfigurableResource):
    """The folder the source system drops its files into."""

    root: str

    def flights_file(self, month_key: str) -> Path:
        return landing.flights_file(Path(self.root), month_key)

    def weather_file(self, month_key: str) -> Path:
        return landing.weather_file(Path(self.root), month_key)

    def reference_file(self, table: str) -> Path:
        return landing.reference_file(Path(self.root), table)


class ThresholdsResource(dg.ConfigurableResource):
    """The environment's ``Thresholds``, which the checks and staging read when they run.

    The config system takes lists, not tuples: the bands are lists here and tuples again in ``thresholds``.
    """

    min_flights_per_month: int
    max_flights_per_month: int
    max_quarantine_share: float
    mean_dep_delay_band: list[float]
    cancellation_rate_band: list[float]
    on_time_share_band: list[float]
    min_weather_coverage: float
    max_missing_flight_days: int
    volume_mad_k: float
    volume_min_history: int
    volume_severity: Literal["ERROR", "WARN"]
    max_reference_shrink: float
    max_hours_landed_to_published: float

    @classmethod
    def of(cls, thresholds: Thresholds) -> ThresholdsResource:
        config: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(thresholds).items()}
        return cls(**config)

    @property
    def thresholds(self) -> Thresholds:
        values = {field.name: getattr(self, field.name) for field in fields(Thresholds)}
        config: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return Thresholds(**config)


_GX_DATA_SOURCE = "dataops"


class GreatExpectationsResource(dg.ConfigurableResource):
    """Great Expectations for the suite checks, and where their results and Data Docs are kept.

    The ephemeral GX context is created, and GX imported (it takes seconds), when a check first needs it, so that
    loading the code location stays fast. One context per resource instance: Dagster builds the resources once per
    run process and runs that process's steps one at a time, so the context needs no lock.
    """

    environment: str
    validations_dir: str
    data_docs_dir: str

    _context: Any = None
    _batch_definitions: dict[str, Any] = {}  # per suite name; pydantic gives each instance its own

    @classmethod
    def for_settings(cls, settings: Settings) -> GreatExpectationsResource:
        return cls(
            environment=settings.name,
            validations_dir=str(settings.env_dir / "validations"),
            data_docs_dir=str(settings.data_docs_dir),
        )

    @property
    def data_docs_index(self) -> Path:
        return Path(self.data_docs_dir) / "index.html"

    @staticmethod
    def new_context() -> Any:
        """A fresh ephemeral context, with analytics and progress bars off."""
        os.environ["GX_ANALYTICS_ENABLED"] = "False"
        import great_expectations as gx  # noqa: PLC0415 - lazy: importing GX takes seconds
        from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        return context

    @property
    def context(self) -> Any:
        """The context the checks validate with, created on first use."""
        if self._context is None:
            self._context = self.new_context()
            self._context.data_sources.add_pandas(_GX_DATA_SOURCE)
        return self._context

    def batch_definition(self, suite_name: str) -> Any:
        """A whole-DataFrame batch definition per suite, created on first use."""
        if suite_name not in self._batch_definitions:
            asset = self.context.data_sources.get(_GX_DATA_SOURCE).add_dataframe_asset(suite_name)
            self._batch_definitions[suite_name] = asset.add_batch_definition_whole_dataframe("whole")
        return self._batch_definitions[suite_name]


class PinnedTables(dg.ConfigurableResource):
    """The base tables a preview reads at pinned Delta versions (``layer/table`` → version); empty elsewhere."""

    versions: dict[str, int] = {}


def build_resources(settings: Settings) -> dict[str, Any]:
    preview = settings.preview
    return {
        "io_manager": lake_io_manager(
            settings.lake_uri, preview.base_lake_uri if preview else None, preview.pinned if preview else {}
        ),
        "pinned_tables": PinnedTables(versions=dict(preview.pinned) if preview else {}),
        "landing_zone": LandingZone(root=str(settings.landing_dir)),
        "thresholds": ThresholdsResource.of(settings.thresholds),
        "great_expectations": GreatExpectationsResource.for_settings(settings),
    }
