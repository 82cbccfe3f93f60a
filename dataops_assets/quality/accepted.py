"""Accepted exceptions: known, understood gaps of the source data, declared in one reviewed file beside the suites.

``dataops_assets/expectations/accepted_exceptions.yaml`` lists, per entry, which expectation (its ``meta.name``) of
which suites it concerns, what the gap is, why it is accepted, the baseline measured on the real data, an owner
and optionally an expiry date, and what is accepted:

- ``values``: offending values that are known (e.g. destinations missing from ``airports``); any other value is new;
- ``unexpected_percent``: a band ``{min, max}`` for the expectation's share of unexpected values (e.g. tail
  numbers missing from ``planes``); a share above ``max`` is new, one below ``min`` is accepted with a note that
  the baseline may be outdated.

The suites stay as they are: an accepted exception changes how a failed expectation is reported (after GX ran),
never what GX checks. A failure whose offending values all fall within its entry is *accepted*: the check passes
and its metadata counts what was accepted; anything else is a failure as before. An expired entry accepts nothing.

Nothing here imports great_expectations or dagster.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # a dependency of dagster; no stubs installed

from dataops_assets.quality.gx_suites import EXPECTATIONS_DIR, SUITES, SuiteFileError, SuiteSpec, load_suite
from dataops_assets.quality.gx_validation import (
    SAMPLE_SIZE,
    ExpectationOutcome,
    Status,
    ValidationOutcome,
    critical,
    status_of,
    warnings_only,
)

ACCEPTED_EXCEPTIONS_FILE = EXPECTATIONS_DIR / "accepted_exceptions.yaml"

REQUIRED_FIELDS = ("id", "suites", "expectation", "what", "why", "baseline", "owner", "accept")
OPTIONAL_FIELDS = ("expires",)
ACCEPT_KINDS = ("values", "unexpected_percent")


class AcceptedExceptionsError(ValueError):
    """The accepted-exceptions file cannot be read or breaks its format; the message names the file and entry."""


@dataclass(frozen=True)
class ShareBand:
    """Accepted share of unexpected values, in percent (as GX reports ``unexpected_percent``)."""

    min_percent: float
    max_percent: float

    def __str__(self) -> str:
        return f"{self.min_percent:g} % to {self.max_percent:g} %"


@dataclass(frozen=True)
class AcceptedException:
    id: str
    suites: tuple[str, ...]
    expectation: str
    what: str
    why: str
    baseline: str
    owner: str
    expires: dt.date | None = None
    values: frozenset[str] = frozenset()  # accepted offending values (the ``values`` kind)
    share: ShareBand | None = None  # accepted band of the unexpected share (the ``unexpected_percent`` kind)

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > self.expires

    @property
    def accepts(self) -> str:
        """What the entry accepts, in words."""
        if self.share is not None:
            return f"an unexpected share of {self.share}"
        return "the values " + ", ".join(sorted(self.values))


@dataclass(frozen=True)
class AcceptedExceptions:
    entries: tuple[AcceptedException, ...] = ()
    source: Path | None = None

    def for_suite(self, suite: str) -> dict[str, AcceptedException]:
        """The entries of one suite, keyed by expectation name."""
        return {entry.expectation: entry for entry in self.entries if suite in entry.suites}

    def accepted_values(self, suite: str, today: dt.date) -> dict[str, frozenset[str]]:
        """Accepted offending values of the suite's unexpired ``values`` entries, by expectation name: the staging
        step keeps rows with these values instead of quarantining them."""
        return {
            name: entry.values
            for name, entry in self.for_suite(suite).items()
            if entry.values and not entry.expired(today)
        }


NO_EXCEPTIONS = AcceptedExceptions()


def load_accepted_exceptions(
    path: Path = ACCEPTED_EXCEPTIONS_FILE, suites: Sequence[SuiteSpec] = SUITES
) -> AcceptedExceptions:
    """The entries of ``path``, checked against the suites; raises ``AcceptedExceptionsError`` naming the problem."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AcceptedExceptionsError(f"cannot read accepted exceptions {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise AcceptedExceptionsError(f"accepted exceptions {path} is not valid YAML: {error}") from None
    raw_entries = document.get("exceptions") if isinstance(document, dict) else None
    if not isinstance(raw_entries, list):
        raise AcceptedExceptionsError(f"accepted exceptions {path}: expected a mapping with an 'exceptions' list")
    names = _expectation_names(suites)
    entries, problems = [], []
    for position, raw in enumerate(raw_entries):
        try:
            entries.append(_entry(raw, names))
        except ValueError as error:
            label = raw.get("id") if isinstance(raw, dict) and raw.get("id") else f"entry {position + 1}"
            problems.append(f"{label}: {error}")
    problems += _duplicates(entries)
    if problems:
        raise AcceptedExceptionsError(f"accepted exceptions {path} is invalid: " + "; ".join(problems))
    return AcceptedExceptions(tuple(entries), path)


def _expectation_names(suites: Sequence[SuiteSpec]) -> dict[str, set[str]]:
    """Expectation names per suite; a suite file that cannot be read has none (its own check reports why)."""
    names: dict[str, set[str]] = {}
    for spec in suites:
        try:
            names[spec.name] = {e["meta"]["name"] for e in load_suite(spec.path)["expectations"]}
        except SuiteFileError:
            names[spec.name] = set()
    return names


def _entry(raw: Any, names: Mapping[str, set[str]]) -> AcceptedException:
    if not isinstance(raw, dict):
        raise ValueError("not a mapping")
    missing = [key for key in REQUIRED_FIELDS if raw.get(key) in (None, "", [], {})]
    unknown = sorted(set(raw) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})"
        )
    suites = raw["suites"] if isinstance(raw["suites"], list) else [raw["suites"]]
    expectation = str(raw["expectation"])
    for suite in map(str, suites):
        if suite not in names:
            raise ValueError(f"unknown suite {suite!r} (known: {', '.join(sorted(names))})")
        if expectation not in names[suite]:
            raise ValueError(f"suite {suite} has no expectation named {expectation!r}")
    values, share = _accept(raw["accept"])
    return AcceptedException(
        id=str(raw["id"]),
        suites=tuple(map(str, suites)),
        expectation=expectation,
        what=_text(raw["what"]),
        why=_text(raw["why"]),
        baseline=_text(raw["baseline"]),
        owner=str(raw["owner"]),
        expires=_date(raw.get("expires")),
        values=values,
        share=share,
    )


def _accept(raw: Any) -> tuple[frozenset[str], ShareBand | None]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ACCEPT_KINDS:
        raise ValueError(f"accept must hold exactly one of {', '.join(ACCEPT_KINDS)}")
    if "values" in raw:
        values = raw["values"]
        # Offending values are reported as the SAMPLE_SIZE most frequent: a longer list could not be verified.
        if not isinstance(values, list) or not values or len(values) > SAMPLE_SIZE:
            raise ValueError(f"accept.values must be a list of 1 to {SAMPLE_SIZE} values")
        return frozenset(map(str, values)), None
    band = raw["unexpected_percent"]
    if not isinstance(band, dict) or "max" not in band or set(band) - {"min", "max"}:
        raise ValueError("accept.unexpected_percent must be a mapping with max and optionally min")
    try:
        low, high = float(band.get("min", 0.0)), float(band["max"])
    except (TypeError, ValueError):
        raise ValueError("accept.unexpected_percent min and max must be numbers") from None
    if not 0.0 <= low <= high <= 100.0:
        raise ValueError(f"accept.unexpected_percent needs 0 <= min <= max <= 100, got {low} and {high}")
    return frozenset(), ShareBand(low, high)


def _text(value: Any) -> str:
    return " ".join(str(value).split())


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"expires must be a date like 2026-12-31, got {value!r}") from None


def _duplicates(entries: Iterable[AcceptedException]) -> list[str]:
    seen: dict[tuple[str, str], str] = {}
    ids: set[str] = set()
    problems = []
    for entry in entries:
        if entry.id in ids:
            problems.append(f"id {entry.id!r} is used twice")
        ids.add(entry.id)
        for suite in entry.suites:
            other = seen.setdefault((suite, entry.expectation), entry.id)
            if other != entry.id:
                problems.append(f"{entry.id} and {other} both cover {entry.expectation} of {suite}")
    return problems


@dataclass(frozen=True)
class Acceptance:
    """How one failed expectation meets its accepted exception."""

    exception: AcceptedException
    covered: bool  # every offending value or the whole share falls within the entry
    accepted_count: int  # unexpected values the entry accepted
    verdict: str  # one line for a person: what was accepted, or what is new
    new_values: tuple[tuple[Any, int], ...] = ()


def judge(failure: ExpectationOutcome, exception: AcceptedException, today: dt.date) -> Acceptance:
    """Whether ``failure`` holds only what ``exception`` accepts."""
    if failure.error is not None:
        return Acceptance(exception, False, 0, f"could not be evaluated, which {exception.id} does not cover")
    if exception.expired(today):
        return Acceptance(
            exception, False, 0, f"accepted exception {exception.id} expired on {exception.expires}: it accepts nothing"
        )
    if exception.share is not None:
        return _judge_share(failure, exception, exception.share)
    return _judge_values(failure, exception)


def _judge_share(failure: ExpectationOutcome, exception: AcceptedException, band: ShareBand) -> Acceptance:
    share = failure.unexpected_percent
    if share is None:
        return Acceptance(exception, False, 0, f"no unexpected share reported, which {exception.id} needs")
    if share > band.max_percent:
        return Acceptance(
            exception, False, 0, f"NEW: {share:.2f} % unexpected is above the band {band} accepted by {exception.id}"
        )
    verdict = f"{share:.2f} % unexpected, within the band {band} accepted by {exception.id}"
    if share < band.min_percent:
        verdict = f"{share:.2f} % unexpected, below the band {band} of {exception.id}: its baseline may be outdated"
    return Acceptance(exception, True, failure.unexpected_count or 0, verdict)


def _judge_values(failure: ExpectationOutcome, exception: AcceptedException) -> Acceptance:
    sample = failure.offending_values
    accepted = [(value, count) for value, count in sample if str(value) in exception.values]
    new = tuple((value, count) for value, count in sample if str(value) not in exception.values)
    accepted_count = sum(count for _, count in accepted)
    distinct = failure.distinct_offending or len(sample)
    # The sample holds the SAMPLE_SIZE most frequent values; an entry lists at most that many, so more distinct
    # offending values than the sample holds means at least one of them is new.
    unseen = distinct - len(sample)
    unaccounted = (failure.unexpected_count or 0) - sum(count for _, count in sample)
    if not new and unseen == 0 and unaccounted <= 0:
        listed = ", ".join(f"{value} ({count:,})" for value, count in accepted)
        return Acceptance(exception, True, accepted_count, f"only accepted values {listed}, per {exception.id}")
    named = [f"{value} ({count:,})" for value, count in new]
    if unseen > 0:
        named.append(f"{unseen} more distinct value(s)")
    elif unaccounted > 0:
        named.append(f"{unaccounted:,} unexpected value(s) without a value")
    return Acceptance(
        exception,
        False,
        accepted_count,
        f"NEW: {', '.join(named)} not among the values accepted by {exception.id}",
        new_values=new,
    )


@dataclass(frozen=True)
class Review:
    """A validation outcome seen through the accepted exceptions of its suite."""

    outcome: ValidationOutcome
    exceptions: Mapping[str, AcceptedException] = field(default_factory=dict)  # by expectation name
    acceptances: Mapping[str, Acceptance] = field(default_factory=dict)  # failed expectations with an entry

    @property
    def accepted(self) -> tuple[ExpectationOutcome, ...]:
        """Failures that hold only accepted exceptions."""
        return tuple(f for f in self.outcome.failures if self._covered(f))

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """Failures that count: anything not within an accepted exception."""
        return tuple(f for f in self.outcome.failures if not self._covered(f))

    @property
    def critical_failures(self) -> tuple[ExpectationOutcome, ...]:
        return critical(self.failures)

    @property
    def warning_failures(self) -> tuple[ExpectationOutcome, ...]:
        return warnings_only(self.failures)

    @property
    def status(self) -> Status:
        return status_of(self.outcome.could_not_run, self.failures)

    def accepted_count(self, expectation: str) -> int:
        acceptance = self.acceptances.get(expectation)
        return acceptance.accepted_count if acceptance is not None else 0

    def _covered(self, failure: ExpectationOutcome) -> bool:
        acceptance = self.acceptances.get(failure.name)
        return acceptance is not None and acceptance.covered


def review(
    outcome: ValidationOutcome, exceptions: AcceptedExceptions = NO_EXCEPTIONS, today: dt.date | None = None
) -> Review:
    """``outcome`` with each failed expectation judged against its suite's accepted exception, if it has one."""
    day = today or dt.date.today()
    entries = exceptions.for_suite(outcome.suite)
    acceptances = {
        failure.name: judge(failure, entries[failure.name], day)
        for failure in outcome.failures
        if failure.name in entries
    }
    return Review(outcome, entries, acceptances)
