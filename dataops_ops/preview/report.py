"""The pull request's comment: one file, rewritten by each step (``up``, ``diff``), headed by a marker line the
workflow finds the comment by, to update it in place."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dataops_assets.environments import Settings
from dataops_assets.files import write_atomic
from dataops_ops.preview.environment import report_dir
from dataops_ops.runner import PartitionOutcome

MARKER = "<!-- dataops-preview -->"
# The parts of the comment, in its order; a part not written yet is left out.
PARTS = ("changes.md", "checks.md", "diff.md")


def checks_markdown(outcomes: Sequence[PartitionOutcome], rebuilt: Sequence[str]) -> str:
    """One row per run (month, or the reference tables): status and checks passed, then each failed check."""
    lines = ["### Check results", ""]
    if not rebuilt:
        return "\n".join([*lines, "Nothing to rebuild, so nothing ran."])
    failed = [outcome for outcome in outcomes if not outcome.success]
    passed = sum(check.passed for outcome in outcomes for check in outcome.checks)
    total = sum(len(outcome.checks) for outcome in outcomes)
    verdict = "**failed**" if failed else "passed"
    lines += [f"{len(outcomes)} run(s) {verdict}: {passed}/{total} checks passed.", ""]
    lines += ["| Month | Status | Checks passed | Findings |", "|---|---|---|---|"]
    for outcome in outcomes:
        status = "ok" if outcome.success else outcome.status or "FAILED"
        found = [f"{c.severity} `{c.asset}` {c.check}: {_headline(c.description)}" for c in outcome.findings]
        found += [f"error: {error}" for error in outcome.errors]
        checks = f"{sum(c.passed for c in outcome.checks)}/{len(outcome.checks)}"
        lines.append(f"| {outcome.partition} | {status} | {checks} | {'<br>'.join(found) or '-'} |")
    return "\n".join(lines)


def _headline(description: str) -> str:
    return (description.splitlines() or [""])[0].replace("|", "\\|")


def write_checks(path: Path, outcomes: Sequence[PartitionOutcome], rebuilt: Sequence[str]) -> None:
    write_atomic(path, checks_markdown(outcomes, rebuilt) + "\n")


def write_comment(preview: Settings, ui: str | None) -> Path:
    """``comment.md`` from the parts written so far, with the preview's UI link when it serves one."""
    assert preview.preview is not None
    folder = report_dir(preview.data_root, preview.preview.pr)
    base = preview.preview.base
    lines = [MARKER, f"## Preview `{preview.name}` against {base}", ""]
    if ui:
        lines += [f"Dagster UI of the preview: {ui}", ""]
    lines += [(folder / part).read_text().rstrip() + "\n" for part in PARTS if (folder / part).is_file()]
    out = folder / "comment.md"
    write_atomic(out, "\n".join(lines) + "\n")
    return out
