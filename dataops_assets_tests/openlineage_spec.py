"""Validation of OpenLineage events against the official spec, read from a local copy of its ``spec/`` folder.

The folder holds ``OpenLineage.json`` (the core schema) and ``facets/*.json`` (one schema per standard facet), as in
the OpenLineage repository. Every schema is registered by its ``$id``; a reference to anything else is an error,
never a download, so the check runs offline and only against the files given.

Each event is validated against the core schema's ``RunEvent`` (the branch of its root that a run event must match;
the root's ``oneOf`` gives the same verdict with vaguer messages). The core checks every facet only as a base facet
(``_producer``, ``_schemaURL``); each facet is then validated against its own definition
(``<facet file>#/$defs/<facet>``, named by the facet's ``_schemaURL``), which carries the facet's real constraints.
Facets are matched by file name, not by version: the spec folder may be newer or older than the client that wrote
``_schemaURL``.

A spec folder holds one core schema, while each facet schema refers to the core version it was written against
(``…/1-0-2/OpenLineage.json#/$defs/RunFacet`` beside ``…/2-0-2/…``). Those core addresses are served by the
folder's core: the base definitions a facet extends (``BaseFacet``, ``RunFacet``, ``JobFacet``, ``DatasetFacet``,
``OutputDatasetFacet``) are in every core version.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed (types-jsonschema)
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from dataops_assets.observability.schemas import FORMATS

SPEC_DIR_ENV = "OPENLINEAGE_SPEC_DIR"
CORE_FILE = "OpenLineage.json"


def _refuse(uri: str) -> Resource[Any]:
    # an unregistered schema is an error, never fetched (referencing's attrs classes: no keyword types for mypy)
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


@dataclass(frozen=True)
class OfficialSpec:
    core_id: str
    facet_ids: Mapping[str, str]  # facet file name (``JobTypeJobFacet.json``) -> its ``$id``
    registry: Registry[Any]
    schemas: Mapping[str, dict[str, Any]]  # by ``$id``: checked as schemas when first used

    @property
    def run_event(self) -> str:
        defined = "RunEvent" in self.schemas[self.core_id].get("$defs", {})
        return f"{self.core_id}#/$defs/RunEvent" if defined else f"{self.core_id}#"

    def definition_of(self, schema_url: str) -> str | None:
        """The registered definition a facet's ``_schemaURL`` names (same file name and definition), if any."""
        address, _, pointer = schema_url.partition("#")
        file_name = address.rsplit("/", 1)[-1]
        schema_id = self.core_id if file_name == CORE_FILE else self.facet_ids.get(file_name)
        return f"{schema_id}#{pointer}" if schema_id and pointer else None


def _schema(path: Path) -> dict[str, Any] | None:
    schema = json.loads(path.read_text())
    return schema if isinstance(schema, dict) and schema.get("$id") else None  # no $id: nothing can refer to it


def load_spec(folder: Path) -> OfficialSpec:
    core = _schema(folder / CORE_FILE)
    if core is None:
        raise ValueError(f"{folder / CORE_FILE}: not a JSON schema with an $id")
    facets = {path.name: _schema(path) for path in sorted((folder / "facets").glob("*.json"))}
    facet_ids = {name: schema["$id"] for name, schema in facets.items() if schema}
    if not facet_ids:
        raise ValueError(f"{folder / 'facets'}: no facet schemas")
    schemas = {core["$id"]: core} | {schema["$id"]: schema for schema in facets.values() if schema}
    resources = [(schema_id, DRAFT202012.create_resource(schema)) for schema_id, schema in schemas.items()]
    core_resource = DRAFT202012.create_resource(core)
    resources += [(address, core_resource) for address in _core_addresses(schemas.values()) - {core["$id"]}]
    return OfficialSpec(
        core_id=core["$id"],
        facet_ids=facet_ids,
        registry=Registry(retrieve=_refuse).with_resources(resources),  # type: ignore[call-arg]
        schemas=schemas,
    )


def _core_addresses(schemas: Iterable[Any]) -> set[str]:
    """Every core schema address (``…/<version>/OpenLineage.json``) the schemas refer to."""
    found: set[str] = set()
    stack = list(schemas)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.partition("#")[0].endswith("/" + CORE_FILE):
                found.add(ref.partition("#")[0])
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return found


def facets_of(event: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, facet) for every facet of a run event: run, job, and each dataset's facets, input and output facets."""
    places: list[tuple[str, Any]] = [("run", event.get("run", {})), ("job", event.get("job", {}))]
    places += [(f"inputs/{i}", dataset) for i, dataset in enumerate(event.get("inputs", []))]
    places += [(f"outputs/{i}", dataset) for i, dataset in enumerate(event.get("outputs", []))]
    for where, holder in places:
        for group in ("facets", "inputFacets", "outputFacets"):
            for name, facet in (holder.get(group) or {}).items():
                yield f"{where}/{group}/{name}", facet


@dataclass
class SpecReport:
    """What was validated, against which schemas, and every problem found (empty when all conforms)."""

    events: int = 0
    facets: int = 0
    schemas: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        used = ", ".join(sorted(self.schemas))
        return f"{self.events} event(s) and {self.facets} facet(s) checked against: {used}"


def _describe(error: Any) -> str:
    return f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message}"


class SpecChecker:
    """Validates events against one OfficialSpec; validators are built once per schema address."""

    def __init__(self, spec: OfficialSpec) -> None:
        self.spec = spec
        self._validators: dict[str, Any] = {}

    def _errors(self, address: str, instance: Any) -> list[str]:
        if address not in self._validators:
            schema_id = address.partition("#")[0]
            if schema_id in self.spec.schemas:  # a malformed schema would otherwise pass anything silently
                jsonschema.Draft202012Validator.check_schema(self.spec.schemas[schema_id])
            schema = {"$ref": address}
            self._validators[address] = jsonschema.Draft202012Validator(
                schema, registry=self.spec.registry, format_checker=FORMATS
            )
        try:
            return [_describe(error) for error in self._validators[address].iter_errors(instance)]
        except Unresolvable as error:
            return [f"cannot resolve {error.ref!r} (not in the spec folder)"]

    def _check_facet(self, report: SpecReport, label: str, facet: Any) -> None:
        schema_url = facet.get("_schemaURL", "") if isinstance(facet, dict) else ""
        address = self.spec.definition_of(schema_url)
        if address is None:
            report.problems.append(f"{label}: no schema in the spec folder for _schemaURL {schema_url!r}")
            return
        report.facets += 1
        report.schemas.add(address.partition("#")[0])
        report.problems += [f"{label} ({address}): {error}" for error in self._errors(address, facet)]

    def check(self, events: list[dict[str, Any]]) -> SpecReport:
        report = SpecReport()
        for index, event in enumerate(events):
            label = f"event {index} ({event.get('eventType')} {event.get('job', {}).get('name')})"
            report.events += 1
            report.schemas.add(self.spec.core_id)
            report.problems += [f"{label}: {error}" for error in self._errors(self.spec.run_event, event)]
            for where, facet in facets_of(event):
                self._check_facet(report, f"{label} {where}", facet)
        return report
