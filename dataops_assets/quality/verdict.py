"""One asset check evaluation as this project reports it: the run digest and the runner's summary, lineage, the
alerts (read from the instance) and the deploy gates (read over GraphQL) all speak of the same few fields."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the deploy client reads verdicts over GraphQL without loading dagster
    import dagster as dg

_METADATA_TEXT_LIMIT = 300


@dataclass(frozen=True)
class CheckVerdict:
    asset: str  # the asset key as a user string, e.g. ``staging/flights``
    check: str
    partition: str | None
    passed: bool
    severity: str  # ERROR or WARN
    description: str
    run_id: str | None = None
    # each metadata entry as short text (what an alert shows); not part of the verdict's identity
    metadata: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_dagster(cls, evaluation: "dg.AssetCheckEvaluation", run_id: str | None = None) -> "CheckVerdict":
        return CheckVerdict(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            partition=evaluation.partition,
            passed=evaluation.passed,
            severity=evaluation.severity.value,
            description=(evaluation.description or "").strip(),
            run_id=run_id,
            metadata={key: _metadata_text(value) for key, value in evaluation.metadata.items()},
        )


def _metadata_text(value: Any) -> str:
    raw = getattr(value, "value", value)  # a MetadataValue, or a plain value
    text = json.dumps(raw, default=str) if isinstance(raw, (dict, list, tuple)) else str(raw)
    return text if len(text) <= _METADATA_TEXT_LIMIT else text[: _METADATA_TEXT_LIMIT - 1] + "…"
