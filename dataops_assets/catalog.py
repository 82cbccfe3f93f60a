"""The data catalog: every column of every lake table with a description, and what the asset graph shows.

The column lists come from the transforms themselves (staged schemas, source headers, and the transforms run on
empty frames), so a column added to a transform without a description fails ``test_catalog``. ``describe_assets``
puts the catalog on the asset definitions (column schema, table name, group, code version, links to the source);
``dataops docs`` shows the same descriptions beside the expectation suites.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import inspect
import textwrap
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets.assets.publish import RECORD_COLUMNS
from dataops_assets.assets.staging import QUARANTINE_LAYER as QUARANTINE
from dataops_assets.assets.staging import quarantine_table
from dataops_assets.transforms import core, flights, marts, reference, weather
from dataops_assets.transforms.typing import LINEAGE_COLUMNS, QUARANTINE_COLUMNS

# Added by the staging assets to each quarantined row (the run that set it aside and when).
QUARANTINE_RUN_COLUMNS = ("_run_id", "_quarantined_at")
PACKAGE_DIR = Path(__file__).resolve().parent
# The packages whose modules a code version covers, when an asset's (or a check's) code reaches them.
_PROJECT_PACKAGES = (
    "dataops_assets.transforms",
    "dataops_assets.assets",
    "dataops_assets.landing",
    "dataops_assets.quality",
)

# One meaning per column name; _TABLE_DESCRIPTIONS below overrides it where a table uses the name otherwise.
_DESCRIPTIONS = {
    # flights as landed and staged
    "year": "Year of the scheduled departure (local time).",
    "month": "Month of the scheduled departure (local time), 1 to 12.",
    "day": "Day of the month of the scheduled departure (local time).",
    "hour": "Hour of the scheduled departure (local time).",
    "minute": "Minute of the scheduled departure (local time).",
    "dep_time": "Actual departure, local clock time as HHMM; empty when the flight was cancelled.",
    "sched_dep_time": "Scheduled departure, local clock time as HHMM.",
    "dep_delay": "Departure delay in minutes (negative: left early); empty when cancelled.",
    "arr_time": "Actual arrival, local clock time at the destination as HHMM.",
    "sched_arr_time": "Scheduled arrival, local clock time at the destination as HHMM.",
    "arr_delay": "Arrival delay in minutes (negative: arrived early); empty when cancelled or diverted.",
    "carrier": "Two-letter airline code (see airlines).",
    "flight": "Flight number.",
    "tailnum": "Tail number of the plane (see planes); empty when unknown.",
    "origin": "Departure airport: EWR, JFK or LGA.",
    "dest": "Destination airport, FAA code (see airports).",
    "air_time": "Minutes in the air.",
    "distance": "Distance between the airports, in miles.",
    "time_hour": "Scheduled hour of departure as landed.",
    "flight_id": "Natural key: scheduled local departure, carrier and flight number, origin "
    "(e.g. 2013-01-01T0515/UA1545/EWR).",
    "sched_dep_local": "Scheduled departure, local date and time (America/New_York).",
    "sched_dep_utc": "Scheduled departure in UTC.",
    "dep_local": "Actual departure, local date and time (schedule + delay); empty when cancelled.",
    "dep_utc": "Actual departure in UTC; empty when cancelled.",
    "time_hour_utc": "Scheduled departure hour in UTC: the hour whose weather applies.",
    "cancelled": "True when the flight has no departure time.",
    "diverted": "True when the flight departed but has no arrival delay.",
    "dep_delayed_15": "True when the departure was 15 minutes late or more.",
    "on_time": "True when the flight arrived less than 15 minutes late.",
    "delay_gain": "Minutes made up in the air: departure delay minus arrival delay.",
    # weather
    "temp": "Temperature, °F.",
    "dewp": "Dew point, °F.",
    "humid": "Relative humidity, %.",
    "wind_dir": "Wind direction, degrees.",
    "wind_speed": "Wind speed, mph.",
    "wind_gust": "Wind gust speed, mph; mostly empty.",
    "precip": "Precipitation, inches.",
    "pressure": "Sea level pressure, millibars.",
    "visib": "Visibility, miles.",
    "observation_id": "Natural key: airport and UTC hour (e.g. EWR/2013-01-01T06Z).",
    "observed_local": "Local date and hour of the observation.",
    # reference tables
    "faa": "FAA airport code.",
    "lat": "Latitude of the airport.",
    "lon": "Longitude of the airport.",
    "alt": "Altitude of the airport, feet.",
    "tz": "Offset of the airport's time zone from UTC, hours.",
    "dst": "Daylight saving time: A (US rules), U (unknown) or N (none).",
    "tzone": "IANA time zone of the airport.",
    "type": "Type of plane.",
    "manufacturer": "Manufacturer of the plane.",
    "model": "Model of the plane.",
    "engines": "Number of engines.",
    "seats": "Number of seats.",
    "speed": "Average cruising speed, mph; mostly empty.",
    "engine": "Type of engine.",
    "year_built": "Year the plane was built.",
    # core lookups and flags
    "weather_observation_id": "The weather observation joined (origin, scheduled UTC hour); empty when none.",
    "airline_name": "Full name of the airline.",
    "dest_name": "Name of the destination airport; empty when the airport is not in airports.",
    "dest_tzone": "IANA time zone of the destination airport.",
    "has_weather": "True when a weather observation matched the origin and the scheduled UTC hour.",
    "plane_known": "True when the tail number was found in planes.",
    "dest_known": "True when the destination was found in airports.",
    # lineage and quarantine
    "_partition_month": "First day of the month (the partition) the row was landed for.",
    "_source_file": "Landing file the row was read from.",
    "_source_line": "Line of the row in its landing file (the header is line 1).",
    "rule": "Row rule the row broke: untypable, null_key, invalid_timestamp, outside_partition, duplicate_row or "
    "duplicate_key.",
    "detail": "What was wrong with the row, readable.",
    "raw_values": "The row's original values as landed, as JSON.",
    "_run_id": "Dagster run that set the row aside.",
    "_quarantined_at": "When the row was set aside (UTC).",
    # the publish record
    "table_name": "Published table (core.flights, marts.carrier_monthly, marts.route_monthly).",
    "delta_version": "Delta version of the table that holds the month as published.",
    "run_id": "Dagster run that wrote and checked the month.",
    "published_at": "When the month was published (UTC).",
    # marts
    "flights": "Scheduled flights.",
    "mean_dep_delay": "Mean departure delay, minutes (cancelled flights excluded).",
    "p90_dep_delay": "90th percentile of the departure delay, minutes.",
    "mean_arr_delay": "Mean arrival delay, minutes (cancelled and diverted flights excluded).",
    "p90_arr_delay": "90th percentile of the arrival delay, minutes.",
    "cancellation_rate": "Cancelled flights over scheduled flights.",
    "on_time_share": "Flights that arrived less than 15 minutes late over all scheduled flights.",
}
_MART_COUNTS = {
    "month": "First day of the month.",
    "cancelled": "Cancelled flights.",
    "on_time": "Flights that arrived less than 15 minutes late.",
}
_TABLE_DESCRIPTIONS: dict[tuple[str, str], dict[str, str]] = {
    ("raw", "weather"): {
        "year": "Year of the observation (local time).",
        "month": "Month of the observation (local time), 1 to 12.",
        "day": "Day of the month of the observation (local time).",
        "hour": "Hour of the observation (local time).",
        "origin": "Airport of the observation: EWR, JFK or LGA.",
        "time_hour": "Hour of the observation in UTC, ISO 8601 text.",
    },
    ("staging", "weather"): {
        "origin": "Airport of the observation: EWR, JFK or LGA.",
        "time_hour_utc": "Hour of the observation in UTC.",
    },
    ("raw", "airports"): {"name": "Name of the airport."},
    ("staging", "airports"): {"name": "Name of the airport."},
    ("raw", "airlines"): {"name": "Full name of the airline."},
    ("staging", "airlines"): {"name": "Full name of the airline."},
    ("raw", "planes"): {"year": "Year the plane was built."},
    ("marts", "carrier_monthly"): _MART_COUNTS,
    ("marts", "route_monthly"): {**_MART_COUNTS, "distance": "Median distance of the route's flights, miles."},
}


def _empty(columns: Iterable[str], dtypes: dict[str, str] | None = None) -> pd.DataFrame:
    dtypes = dtypes or {}
    return pd.DataFrame({column: pd.Series(dtype=dtypes.get(column, "object")) for column in columns})


@cache
def table_columns() -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
    """(layer, table) -> its columns as (name, type), in the order the assets write them."""
    text = "string"
    raw_lineage = ((LINEAGE_COLUMNS[1], text), (LINEAGE_COLUMNS[2], "int64"))
    tables: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for subject, module in (("flights", flights), ("weather", weather)):
        month = (LINEAGE_COLUMNS[0], "datetime64[ns]")
        tables["raw", subject] = [month, *((c, text) for c in module.SOURCE_COLUMNS), *raw_lineage]
        tables["staging", subject] = _typed(_empty(module.STAGED_SCHEMA, module.STAGED_SCHEMA))
        tables[QUARANTINE, quarantine_table(subject)] = [
            *((c, text) for c in QUARANTINE_COLUMNS[:3]),
            month,
            *raw_lineage,
            (QUARANTINE_RUN_COLUMNS[0], text),
            (QUARANTINE_RUN_COLUMNS[1], "datetime64[ns]"),
        ]
    staged_reference = {}
    for table, spec in reference.REFERENCE_SPECS.items():
        tables["raw", table] = [*((c, text) for c in spec.source_columns), *raw_lineage]
        staged_reference[table] = reference.stage_reference(table, _empty(spec.source_columns))
        tables["staging", table] = _typed(staged_reference[table])
    enriched = core.enrich_flights(
        _empty(flights.STAGED_SCHEMA, flights.STAGED_SCHEMA),
        _empty(weather.STAGED_SCHEMA, weather.STAGED_SCHEMA),
        staged_reference["planes"],
        staged_reference["airlines"],
        staged_reference["airports"],
    )
    tables["core", "flights"] = _typed(enriched)
    month_start = pd.Timestamp("2013-01-01")
    tables["marts", "carrier_monthly"] = _typed(marts.carrier_monthly(enriched, month_start))
    tables["marts", "route_monthly"] = _typed(marts.route_monthly(enriched, month_start))
    record_types = {"delta_version": "int64", "published_at": "datetime64[ns]"}
    tables["publish", "months"] = [(c, record_types.get(c, text)) for c in RECORD_COLUMNS]
    return {key: tuple(columns) for key, columns in tables.items()}


def _typed(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return [(str(c), "string" if pd.api.types.is_object_dtype(t) else str(t)) for c, t in frame.dtypes.items()]


def column_descriptions(layer: str, table: str) -> dict[str, str]:
    """Column -> description for one table; raises KeyError naming a column that has none."""
    overrides = _TABLE_DESCRIPTIONS.get((layer, table), {})
    described = {}
    for column, _ in table_columns()[layer, table]:
        description = overrides.get(column) or _DESCRIPTIONS.get(column)
        if description is None:
            raise KeyError(f"column {column} of {layer}.{table} has no description in dataops_assets/catalog.py")
        described[column] = description if layer != "raw" or column.startswith("_") else f"{description} As text."
    return described


def table_schema(layer: str, table: str) -> dg.TableSchema:
    types = dict(table_columns()[layer, table])
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=column, type=types[column], description=description)
            for column, description in column_descriptions(layer, table).items()
        ]
    )


def describe_assets(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets as the UI should show them: columns, table name, group, code version, links to the source."""
    with_sources = dg.with_source_code_references([_describe(asset) for asset in assets])
    remote = git_remote(PACKAGE_DIR.parent)
    if remote is not None:
        url, ref = remote
        mapping = dg.AnchorBasedFilePathMapping(
            local_file_anchor=PACKAGE_DIR, file_anchor_path_in_repository=PACKAGE_DIR.name
        )
        with_sources = dg.link_code_references_to_git(with_sources, url, ref, mapping)
    return [asset for asset in with_sources if isinstance(asset, dg.AssetsDefinition)]


def _describe(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
    version = compute_version(asset)
    return asset.map_asset_specs(lambda spec: _describe_spec(spec, version))


def _describe_spec(spec: dg.AssetSpec, code_version: str) -> dg.AssetSpec:
    layer, table = spec.key.path
    group = QUARANTINE if layer == QUARANTINE else spec.group_name
    described = spec.replace_attributes(group_name=group, code_version=spec.code_version or code_version)
    if (layer, table) not in table_columns():  # not a lake table of the catalog: test_catalog names it
        return described
    metadata = {"dagster/column_schema": table_schema(layer, table), "dagster/table_name": f"{layer}.{table}"}
    return described.merge_attributes(metadata=metadata)


def compute_version(definition: dg.AssetsDefinition) -> str:
    """A hash of the code that computes an asset (or a check): the normalized source of the compute function's
    module, and of the project code its function reaches: each project function it names or closes over (and what
    that function reaches in turn), the value of each constant it names, and whole any project module or class it
    names (with the modules those import). It changes when what they compute does, not when their layout,
    comments or docstrings do, nor when a function of a shared module that this asset never reaches does."""
    compute = definition.op.compute_fn
    function = getattr(compute, "decorated_fn", compute)
    own = inspect.getmodule(function)
    reached = _Reach()
    reached.function(function, include_source=own is None)
    if own is not None:  # its own module whole, and the constants its module-level code reads from others
        reached.sources.add(normalized_source(own))
        reached.constants_read_by(own)
    sources = {normalized_source(module) for module in _walk(reached.modules)}
    return hashlib.sha256("".join(sorted(sources | reached.sources)).encode()).hexdigest()[:12]


@cache
def normalized_source(module: ModuleType) -> str:
    """The module's code as ``ast.unparse`` writes it, without docstrings: comments, blank lines, line breaks and
    quotes are gone. Docstrings go too: they change no result (Dagster shows one as the asset's description)."""
    return _normalized(inspect.getsource(module))


def _normalized(source: str) -> str:
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and _docstring(node):
            node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def _docstring(node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


class _Reach:
    """What a function reaches in the project: the sources of functions and constants, and whole modules."""

    def __init__(self) -> None:
        self.sources: set[str] = set()
        self.modules: set[ModuleType] = set()
        self._seen: set[int] = set()

    def function(self, function: Any, include_source: bool = True) -> None:
        function = inspect.unwrap(function)
        if id(function) in self._seen:
            return
        self._seen.add(id(function))
        if include_source:
            self.sources.add(_normalized(inspect.getsource(function)))
        scope = getattr(function, "__globals__", {})
        cells = [cell.cell_contents for cell in getattr(function, "__closure__", None) or ()]
        named = [(name, scope[name]) for name in _names(getattr(function, "__code__", None)) if name in scope]
        for name, value in [*named, *((None, cell) for cell in cells)]:
            self.value(name, value)

    def value(self, name: str | None, value: Any) -> None:
        module = value if isinstance(value, ModuleType) else inspect.getmodule(value)
        if module is not None and _is_project(module):
            if inspect.isfunction(value) or inspect.isfunction(inspect.unwrap(value)):
                self.function(value)
            else:  # a module, a class or another object defined in the project: all of its module
                self.modules.add(module)
        elif name is not None and _is_constant(value):
            self.sources.add(f"{name} = {_constant_text(value)}")  # a constant the function reads

    def constants_read_by(self, module: ModuleType) -> None:
        """The constants a module's own code reads from project modules, by name or as ``module.NAME``."""
        scope = vars(module)
        for name, value in scope.items():
            if _is_constant(value) and not name.startswith("__"):
                self.sources.add(f"{name} = {_constant_text(value)}")
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                owner = scope.get(node.value.id)
                if isinstance(owner, ModuleType) and _is_project(owner):
                    value = getattr(owner, node.attr, None)
                    if _is_constant(value):
                        self.sources.add(f"{owner.__name__}.{node.attr} = {_constant_text(value)}")


def _constant_text(value: Any) -> str:
    """The constant's value as text, a set's members in one order (``repr`` follows the process's hash seed)."""
    if type(value) is frozenset:
        return f"frozenset({sorted(map(_constant_text, value))})"
    if type(value) is tuple:
        return f"({', '.join(map(_constant_text, value))},)"
    return repr(value)


def _is_constant(value: Any) -> bool:
    """Plain data whose ``repr`` is its value (no object whose ``repr`` holds an address)."""
    if type(value) in (tuple, frozenset):
        return all(_is_constant(item) for item in value)
    return type(value) in (str, int, float, bool, type(None))


def _names(code: CodeType | None) -> set[str]:
    """The global names a function's code and the code nested in it (comprehensions, inner functions) use."""
    if code is None:
        return set()
    nested = [const for const in code.co_consts if isinstance(const, CodeType)]
    return set(code.co_names).union(*(_names(inner) for inner in nested))


def _walk(modules: set[ModuleType]) -> set[ModuleType]:
    """Close the set over the project modules each module imports (functions, constants, whole modules)."""
    found, pending = set(modules), list(modules)
    while pending:
        for value in vars(pending.pop()).values():
            module = value if isinstance(value, ModuleType) else inspect.getmodule(value)
            if module is not None and _is_project(module) and module not in found:
                found.add(module)
                pending.append(module)
    return found


def _is_project(module: ModuleType) -> bool:
    # quality too: the staging step enforces the suites' quarantine rules and the accepted values through it
    return module.__name__.startswith(_PROJECT_PACKAGES)


def git_remote(root: Path) -> tuple[str, str] | None:
    """(web URL, commit or branch) of the checkout's ``origin`` remote, or None: no repository, or no web remote."""
    git_dir = root / ".git"
    if not (git_dir / "config").is_file() or not (git_dir / "HEAD").is_file():
        return None
    config = configparser.ConfigParser(strict=False)
    try:
        config.read(git_dir / "config", encoding="utf-8")
    except configparser.Error:
        return None
    url = config.get('remote "origin"', "url", fallback="").strip()
    url = url.removesuffix(".git")
    if url.startswith("git@") and ":" in url:  # scp-like git@host:owner/repo
        host, path = url.removeprefix("git@").split(":", 1)
        url = f"https://{host}/{path}"
    if not url.startswith(("https://", "http://")):
        return None
    head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    ref = head.removeprefix("ref: refs/heads/") if head.startswith("ref: ") else head
    return url, ref
