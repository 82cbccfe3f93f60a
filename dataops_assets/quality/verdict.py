"""One asset check evaluation as this project reports it: the local runner's summary, the deploy gates (read over
GraphQL) and the alerts (read from the event log) all speak of the same few fields."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the deploy client reads verdicts over GraphQL without loading dagster
    import dagster as dg


@dataclass(frozen=True)
class CheckVerdict:
    asset: str  # the asset key as a user string, e.g. ``staging/flights``
    check: str
    partition: str | None
    passed: bool
    severity: str  # ERROR or WARN
    description: str

    @classmethod
    def from_dagster(cls, evaluation: "dg.AssetCheckEvaluation") -> "CheckVerdict":
        return CheckVerdict(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            partition=evaluation.partition,
            passed=evaluation.passed,
            severity=evaluation.severity.value,
            description=(evaluation.description or "").strip(),
        )
