"""What ``preview diff`` compares: each rebuilt published table (core, marts), month by month, as the preview's
publish record names it against the base's, whose publish record is read at the version the preview pinned."""

from __future__ import annotations

import pyarrow.dataset as pads
from deltalake import DeltaTable

from dataops_assets.environments import Preview, Settings, settings_for
from dataops_assets.storage import PARTITION_COLUMN
from dataops_ops.lake import PUBLISH_RECORD, PUBLISHED_LAYERS, Publication, publications, table_uri
from dataops_ops.preview.diff import DEFAULT_MAX_ROWS, DiffReport, diff_report, diff_table_month, write_diff
from dataops_ops.preview.environment import report_dir


def compare_preview(preview: Settings, max_rows: int | None = None) -> DiffReport:
    """The diff of every rebuilt published table and month; written to the preview's diff.md and diff.json."""
    assert preview.preview is not None
    manifest = preview.preview
    base = settings_for(manifest.base, preview.data_root, manifest.base_lake_uri)
    base_record = publications(base, version=manifest.pinned.get(PUBLISH_RECORD.replace(".", "/")))
    head_record = publications(preview)
    diffs = [
        diff_table_month(
            name,
            month,
            _month(base, name, base_record.get(name, {}).get(month)),
            _month(preview, name, head_record.get(name, {}).get(month)),
            max_rows=max_rows or DEFAULT_MAX_ROWS,
        )
        for name in published_rebuilt(manifest)
        for month in manifest.months
    ]
    report = diff_report(diffs)
    write_diff(report, report_dir(preview.data_root, manifest.pr))
    return report


def published_rebuilt(manifest: Preview) -> list[str]:
    """``layer.table`` of the rebuilt tables consumers read (core and the marts)."""
    names = [key.replace("/", ".") for key in manifest.rebuilt]
    return [name for name in names if name.split(".")[0] in PUBLISHED_LAYERS]


def _month(settings: Settings, name: str, publication: Publication | None) -> pads.Dataset | None:
    """The month as its publication names it; None when the month is not published there."""
    if publication is None:
        return None
    table = DeltaTable(table_uri(settings, name), version=publication.version)
    predicate = [(PARTITION_COLUMN, "=", f"{publication.month}-01")]
    return table.to_pyarrow_dataset(file_pruning_predicate=predicate)
