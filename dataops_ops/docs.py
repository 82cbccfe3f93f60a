"""Great Expectations Data Docs (static HTML) of the latest validation of every suite and partition.

The checks keep each validation result as ``<env>/validations/<suite>/<partition>.json``; ``build_data_docs_report``
renders them, with a page per suite (its table's column descriptions from ``dataops_assets.catalog`` as notes),
into ``settings.data_docs_dir`` (under ``var/``, git-ignored).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataops_assets.catalog import column_descriptions
from dataops_assets.environments import Settings
from dataops_assets.quality.gx_suites import SUITES, load_suite
from dataops_assets.resources import GreatExpectationsResource

SITE_NAME = "dataops"  # GX reserves "local_site"
_SITE_PARTS = ("index.html", "validations", "expectations", "static")


@dataclass(frozen=True)
class DocsBuild:
    index: Path
    validations: int
    skipped: tuple[str, ...]  # result files that could not be read, with the reason


def column_notes(layer: str, table: str) -> str:
    """The table's columns and their descriptions (the catalog's, as the Dagster UI shows them), as markdown."""
    rows = [f"| `{column}` | {text} |" for column, text in column_descriptions(layer, table).items()]
    return "\n".join([f"**Columns of {layer}.{table}**", "", "| column | description |", "|---|---|", *rows])


def build_data_docs_report(settings: Settings) -> DocsBuild:
    """Render Data Docs for the latest persisted validations: ``index.html``, how many validations were rendered and
    which files were skipped."""
    resource = GreatExpectationsResource.for_settings(settings)
    # A context of its own: the validation store must hold only the results loaded here.
    context = resource.new_context()  # imports GX with analytics off
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    site_dir = Path(resource.data_docs_dir)
    # Pages of earlier builds would outlive the results they showed: remove what a build writes, nothing else.
    for part in _SITE_PARTS:
        target = site_dir / part
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    site_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name=SITE_NAME,
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    for spec in SUITES:
        try:
            suite = gx.ExpectationSuite(**load_suite(spec.path))
            suite.notes = column_notes(*spec.asset_key)
            context.suites.add(suite)
        except Exception:  # a broken suite file loses its page; the validation pages still render
            continue
    store = context.validation_results_store
    rendered, skipped = 0, []
    for path in sorted(Path(resource.validations_dir).glob("*/*.json")):
        try:
            result_json: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            result = store.deserialize(json.dumps(result_json))
            run = result_json.get("meta", {}).get("run_id") or {}
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=path.parent.name),
                run_id=RunIdentifier(run_name=path.stem, run_time=run.get("run_time")),
                batch_identifier=path.stem,
            )
            store.set(key, result)
            rendered += 1
        except Exception as error:
            skipped.append(f"{path}: {type(error).__name__}: {error}")
    context.build_data_docs(site_names=[SITE_NAME])
    return DocsBuild(index=resource.data_docs_index, validations=rendered, skipped=tuple(skipped))
