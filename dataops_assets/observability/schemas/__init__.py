"""JSON schemas the observability output is checked against, and a validator with real format checks.

``openlineage-run-event.derived.schema.json`` is written for this project (openlineage-python ships no copy of the
official ``OpenLineage.json``); its description says what it covers. The official spec is checked too, opt-in, by
``dataops_assets_tests/openlineage_spec.py`` when ``OPENLINEAGE_SPEC_DIR`` names a copy of its ``spec/`` folder.
jsonschema checks ``date-time`` and ``uri`` only with optional packages that are not installed here, so those
formats (and ``uuid``) are checked by the functions below, for both.
"""

import json
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema  # type: ignore[import-untyped]  # no stubs installed (types-jsonschema)

OPENLINEAGE_RUN_EVENT = Path(__file__).with_name("openlineage-run-event.derived.schema.json")

# shared with the tests' check against the official OpenLineage spec (dataops_assets_tests/openlineage_spec.py)
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if "T" not in value.upper():
        raise ValueError("a date-time needs a time")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("a date-time needs a time zone offset")
    return True


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = urlparse(value)
    if not parsed.scheme or not (parsed.netloc or parsed.path):
        raise ValueError("a URI needs a scheme and a location")
    return True


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if str(uuid.UUID(value)) != value.lower():
        raise ValueError("not a hyphenated UUID")
    return True


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(OPENLINEAGE_RUN_EVENT.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


def openlineage_errors(event: Any) -> list[str]:
    """Why an OpenLineage run event (as parsed JSON) does not validate; empty when it does."""
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(event)'}: {error.message}"
        for error in _validator().iter_errors(event)
    ]
