"""The one place that reads ``DATAOPS_ENV``: a frozen settings object per environment.

Everything that differs between dev, stage and prod lives here: where files land, which warehouse is written,
how much of the source is landed, and the thresholds the checks hold the data to. Other modules receive a
``Settings`` object; none of them reads the environment variables themselves.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ENV_VAR = "DATAOPS_ENV"
DATA_ROOT_VAR = "DATAOPS_DATA_ROOT"
# Any URI delta-rs supports (s3://, gs://, az://); credentials come from the object store's own variables.
LAKE_URI_VAR = "DATAOPS_LAKE_URI"
# Monthly runs at once on the environment's instance (default: the number of CPUs).
MAX_RUNS_VAR = "DATAOPS_MAX_CONCURRENT_RUNS"
# A JSON object of Thresholds fields that replace the environment's own, e.g. for a smaller landed sample.
THRESHOLDS_VAR = "DATAOPS_THRESHOLDS"
# The JSON-lines log file every process of the environment appends to (default: <env_dir>/logs/dataops.jsonl).
JSON_LOGS_VAR = "DATAOPS_JSON_LOGS"
DEFAULT_ENV = "dev"
# A pull request's preview environment (``dataops preview up --pr N``); its manifest lies in its folder.
PREVIEW_NAME = re.compile(r"^pr-([1-9][0-9]{0,8})$")
PREVIEW_MANIFEST = "preview.json"


class UnknownEnvironmentError(ValueError):
    """Raised when ``DATAOPS_ENV`` names no known environment."""


@dataclass(frozen=True)
class Thresholds:
    """Bounds the data of one environment is held to; the checks read them from here."""

    min_flights_per_month: int
    max_flights_per_month: int
    max_quarantine_share: float
    mean_dep_delay_band: tuple[float, float] = (0.0, 30.0)
    cancellation_rate_band: tuple[float, float] = (0.0, 0.08)
    on_time_share_band: tuple[float, float] = (0.55, 0.95)
    # weather rows of a month must cover this share of its hours at the three airports, and at each of them
    # (the real data's worst airport-month: EWR in December 2013, 714 of 744 hours, 0.960)
    min_weather_coverage: float = 0.95
    # calendar days of a month allowed without a single staged flight (the real data has flights every day)
    max_missing_flight_days: int = 0
    # a month's flights per day must lie within median ± k · scaled MAD of the other months' (real months: at
    # most 2.8), once at least volume_min_history other months are published; outside it fails with this severity
    volume_mad_k: float = 4.0
    volume_min_history: int = 6
    volume_severity: Literal["ERROR", "WARN"] = "ERROR"
    # a staged reference table may shrink by at most this share of its published rows
    max_reference_shrink: float = 0.1
    # the newest landed month must be published within this many hours of its landing (a month's run takes
    # minutes, 100x scale included; the hours leave room for a queue, a failed run and its re-run)
    max_hours_landed_to_published: float = 6.0


@dataclass(frozen=True)
class Preview:
    """A pull request's preview of its base environment (prod): the assets it rebuilds, in its own lake, and the
    Delta version of every other table of the base, which it reads there (time travel) and never writes."""

    pr: int
    base: str
    base_lake_uri: str
    base_landing_dir: Path
    thresholds: Thresholds  # the base's own, so the checks judge the preview's data as the base's
    rebuilt: tuple[str, ...]  # asset keys as ``layer/table``
    pinned: Mapping[str, int]  # ``layer/table`` → the base table's Delta version, for every table not rebuilt
    months: tuple[str, ...]  # the months the base had published when the preview was created
    created_at: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "base_landing_dir": str(self.base_landing_dir), "pinned": dict(self.pinned)}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Preview:
        bands: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values["thresholds"].items()}
        return cls(
            **{
                **values,
                "base_landing_dir": Path(values["base_landing_dir"]),
                "thresholds": Thresholds(**bands),
                "rebuilt": tuple(values["rebuilt"]),
                "months": tuple(values["months"]),
            }
        )


@dataclass(frozen=True)
class Settings:
    """Everything one environment needs; paths are derived from ``data_root``."""

    name: str
    data_root: Path
    sample_fraction: float
    thresholds: Thresholds
    json_logs: bool
    lake_uri_override: str | None = None
    json_log_override: Path | None = None
    max_concurrent_runs: int = field(default_factory=lambda: os.cpu_count() or 1)
    preview: Preview | None = None

    @property
    def runs_automations(self) -> bool:
        """Whether schedules and sensors run by default: in stage and prod, never in dev or a preview."""
        return self.name in ("stage", "prod")

    @property
    def env_dir(self) -> Path:
        return self.data_root / self.name

    @property
    def landing_dir(self) -> Path:
        """A preview reads its base's landing files (the same data), never its own."""
        return self.preview.base_landing_dir if self.preview else self.env_dir / "landing"

    @property
    def warehouse_path(self) -> Path:
        return self.env_dir / "warehouse.duckdb"

    @property
    def lake_uri(self) -> str:
        """Root of the environment's Delta tables: ``<lake_uri>/<layer>/<table>``."""
        return self.lake_uri_override or str(self.env_dir / "lake")

    @property
    def json_log_file(self) -> Path:
        """Where the JSON log records of the ``dataops`` command and of runs are appended, one object per line."""
        return self.json_log_override or self.env_dir / "logs" / "dataops.jsonl"

    @property
    def dagster_home(self) -> Path:
        return self.env_dir / "dagster_home"

    @property
    def data_docs_dir(self) -> Path:
        return self.env_dir / "data_docs"

    def with_root(self, data_root: Path) -> Settings:
        """The same environment with its files under another folder (tests, deploys)."""
        return replace(self, data_root=data_root)


# Month sizes of the real data are 25,000 to 29,000 flights; the bands leave room for the dev sample's spread.
_FULL_YEAR = Thresholds(min_flights_per_month=24_000, max_flights_per_month=30_000, max_quarantine_share=0.01)
# dev's volume band is a WARN: a developer's months are reloaded, sampled and cut at will
_DEV_SAMPLE = Thresholds(
    min_flights_per_month=2_300, max_flights_per_month=3_100, max_quarantine_share=0.01, volume_severity="WARN"
)


@dataclass(frozen=True)
class _Profile:
    sample_fraction: float
    thresholds: Thresholds
    json_logs: bool


_ENVIRONMENTS = {
    "dev": _Profile(sample_fraction=0.10, thresholds=_DEV_SAMPLE, json_logs=False),
    "stage": _Profile(sample_fraction=1.0, thresholds=_FULL_YEAR, json_logs=True),
    "prod": _Profile(sample_fraction=1.0, thresholds=_FULL_YEAR, json_logs=True),
}
ENVIRONMENT_NAMES: tuple[str, ...] = tuple(_ENVIRONMENTS)


def default_data_root() -> Path:
    """``var/`` of the checkout this package runs from, or of the working directory when installed."""
    checkout = Path(__file__).resolve().parents[1]
    base = checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()
    return base / "var"


def settings_for(
    name: str, data_root: Path | None = None, lake_uri: str | None = None, max_concurrent_runs: int | None = None
) -> Settings:
    """Settings of a named environment (or of an existing preview, ``pr-N``); an unknown name fails with the valid
    ones listed."""
    root = data_root or default_data_root()
    preview = read_preview(root / name) if PREVIEW_NAME.match(name) else None
    base = preview.base if preview else name
    if base not in _ENVIRONMENTS:
        valid = ", ".join(ENVIRONMENT_NAMES)
        raise UnknownEnvironmentError(
            f"{ENV_VAR}={name!r} is not a known environment; expected one of: {valid} (or pr-N, a preview)"
        )
    profile = _ENVIRONMENTS[base]
    return Settings(
        name=name,
        data_root=root,
        sample_fraction=profile.sample_fraction,
        thresholds=preview.thresholds if preview else profile.thresholds,
        json_logs=profile.json_logs,
        lake_uri_override=lake_uri,
        max_concurrent_runs=max_concurrent_runs or os.cpu_count() or 1,
        preview=preview,
    )


def read_preview(env_dir: Path) -> Preview:
    """The manifest of the preview in ``env_dir``; a preview that was never created (or was removed) fails."""
    try:
        return Preview.from_json(json.loads((env_dir / PREVIEW_MANIFEST).read_text()))
    except FileNotFoundError:
        pr = env_dir.name.removeprefix("pr-")
        raise UnknownEnvironmentError(
            f"{ENV_VAR}={env_dir.name!r}: no preview {env_dir.name} under {env_dir.parent} (create it with "
            f"`dataops preview up --pr {pr}`)"
        ) from None
    except (ValueError, KeyError, TypeError) as error:
        raise UnknownEnvironmentError(f"{env_dir / PREVIEW_MANIFEST} is not a preview manifest: {error}") from error


def open_previews(data_root: Path) -> list[Preview]:
    """Every preview under ``data_root``, oldest first (a damaged manifest is skipped: it pins nothing)."""
    previews = []
    for folder in sorted(data_root.glob("pr-*")):
        if PREVIEW_NAME.match(folder.name) and (folder / PREVIEW_MANIFEST).is_file():
            try:
                previews.append(read_preview(folder))
            except UnknownEnvironmentError:
                continue
    return sorted(previews, key=lambda preview: preview.created_at)


def current_settings(name: str | None = None) -> Settings:
    """Settings of the environment named by ``DATAOPS_ENV`` (default ``dev``), or of ``name`` with the same
    variables (data root, lake, thresholds)."""
    name = name or os.environ.get(ENV_VAR, DEFAULT_ENV).strip() or DEFAULT_ENV
    root = os.environ.get(DATA_ROOT_VAR)
    runs = os.environ.get(MAX_RUNS_VAR, "").strip()
    if runs and not (runs.isdigit() and int(runs) > 0):
        raise UnknownEnvironmentError(f"{MAX_RUNS_VAR}={runs!r} is not a positive whole number")
    settings = settings_for(name, Path(root) if root else None, os.environ.get(LAKE_URI_VAR) or None, int(runs or 0))
    json_log = os.environ.get(JSON_LOGS_VAR, "").strip()
    if json_log:
        settings = replace(settings, json_log_override=Path(json_log))
    overrides = os.environ.get(THRESHOLDS_VAR, "").strip()
    return replace(settings, thresholds=_override(settings.thresholds, overrides)) if overrides else settings


def _override(thresholds: Thresholds, overrides: str) -> Thresholds:
    """The thresholds with the fields named in ``overrides`` (JSON) replaced; lists become the bands' tuples."""
    try:
        values = json.loads(overrides)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return replace(thresholds, **fields)
    except (ValueError, TypeError, AttributeError) as error:
        raise UnknownEnvironmentError(f"{THRESHOLDS_VAR} is not a JSON object of threshold fields: {error}") from error
