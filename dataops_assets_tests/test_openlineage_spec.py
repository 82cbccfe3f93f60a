"""The offline checker behind the opt-in official OpenLineage validation, on a small spec folder of the same shape:
facets validated by their own definitions, a facet's older core version served by the folder's core, and an
unknown reference reported, never fetched."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dataops_assets_tests.fixtures.openlineage_spec import SpecChecker, load_spec

SPEC = "https://openlineage.io/spec"
CORE_ID = f"{SPEC}/2-0-2/OpenLineage.json"
CORE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": CORE_ID,
    "$defs": {
        "RunEvent": {
            "type": "object",
            "required": ["eventType", "run"],
            "properties": {"eventType": {"enum": ["START", "COMPLETE"]}, "run": {"$ref": "#/$defs/Run"}},
        },
        "Run": {
            "type": "object",
            "properties": {
                "runId": {"format": "uuid"},
                "facets": {"additionalProperties": {"$ref": "#/$defs/RunFacet"}},
            },
        },
        "BaseFacet": {"type": "object", "required": ["_producer", "_schemaURL"]},
        "RunFacet": {"allOf": [{"$ref": "#/$defs/BaseFacet"}]},
    },
}


def _facet_schema(name: str, core_version: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SPEC}/facets/1-0-0/{name}.json",
        "$defs": {
            name: {"allOf": [{"$ref": f"{SPEC}/{core_version}/OpenLineage.json#/$defs/RunFacet"}, extra]},
        },
    }


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "facets").mkdir()
    (tmp_path / "OpenLineage.json").write_text(json.dumps(CORE))
    # written against an older core than the folder's: served by the folder's core
    thing = _facet_schema("ThingRunFacet", "1-0-1", {"type": "object", "required": ["thing"]})
    (tmp_path / "facets" / "ThingRunFacet.json").write_text(json.dumps(thing))
    elsewhere = _facet_schema("ElsewhereRunFacet", "2-0-2", {"$ref": "https://schemas.invalid/other.json"})
    (tmp_path / "facets" / "ElsewhereRunFacet.json").write_text(json.dumps(elsewhere))
    return tmp_path


def _event(facets: dict[str, Any]) -> dict[str, Any]:
    return {"eventType": "COMPLETE", "run": {"runId": "0b6c5d5e-1d2f-4d6e-9c3b-2f1e0a9b8c7d", "facets": facets}}


THING = {
    "_producer": "https://example.org/dataops",
    "_schemaURL": f"{SPEC}/facets/1-0-0/ThingRunFacet.json#/$defs/ThingRunFacet",
    "thing": 1,
}


def test_a_conforming_event_passes_with_its_facet_checked_by_its_own_definition(spec_dir: Path) -> None:
    report = SpecChecker(load_spec(spec_dir)).check([_event({"thing": THING})])
    assert report.problems == [] and (report.events, report.facets) == (1, 1)
    assert f"{SPEC}/facets/1-0-0/ThingRunFacet.json" in report.schemas


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda event: event["run"]["facets"]["thing"].pop("thing"), "'thing' is a required property"),
        (lambda event: event["run"]["facets"]["thing"].pop("_producer"), "'_producer' is a required property"),
        (lambda event: event.update(eventType="DONE"), "eventType: 'DONE' is not one of"),
        (lambda event: event["run"].update(runId="run-1"), "is not a 'uuid'"),
    ],
)
def test_what_the_spec_forbids_is_reported(spec_dir: Path, edit: Any, expected: str) -> None:
    event = _event({"thing": copy.deepcopy(THING)})
    edit(event)
    problems = SpecChecker(load_spec(spec_dir)).check([event]).problems
    assert problems and any(expected in problem for problem in problems), problems


def test_unknown_schemas_are_reported_never_fetched(spec_dir: Path) -> None:
    unknown = {**THING, "_schemaURL": f"{SPEC}/facets/1-0-0/MissingRunFacet.json#/$defs/MissingRunFacet"}
    elsewhere = {**THING, "_schemaURL": f"{SPEC}/facets/1-0-0/ElsewhereRunFacet.json#/$defs/ElsewhereRunFacet"}
    problems = SpecChecker(load_spec(spec_dir)).check([_event({"unknown": unknown, "elsewhere": elsewhere})]).problems
    assert any("no schema in the spec folder" in problem and "MissingRunFacet" in problem for problem in problems)
    assert any("cannot resolve 'https://schemas.invalid/other.json'" in problem for problem in problems), problems
