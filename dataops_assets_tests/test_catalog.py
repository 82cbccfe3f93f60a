"""The catalog on the asset graph: every column of every table described, groups, table names, code versions,
source links, and the same descriptions in the Data Docs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dataops_assets import catalog
from dataops_assets.environments import Settings
from dataops_assets_tests.fixtures.observability import pipeline_run


def _specs(definitions: dg.Definitions) -> dict[dg.AssetKey, dg.AssetSpec]:
    return {spec.key: spec for asset in definitions.assets or [] for spec in asset.specs}  # type: ignore[union-attr]


def test_every_asset_has_a_described_column_schema_and_its_table_name(definitions: dg.Definitions) -> None:
    specs = _specs(definitions)
    assert specs
    undescribed = []
    for key, spec in specs.items():
        schema = spec.metadata.get("dagster/column_schema")
        if not isinstance(schema, dg.TableSchema):
            undescribed.append(key.to_user_string())
            continue
        layer, table = key.path
        assert [c.name for c in schema.columns] == [c for c, _ in catalog.table_columns()[layer, table]]
        assert all(column.description for column in schema.columns), key
        assert spec.metadata["dagster/table_name"] == ".".join(key.path)
    assert not undescribed, f"assets without a column schema in dataops_assets/catalog.py: {undescribed}"


def test_catalog_columns_are_the_columns_the_tables_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each materialized table's stored schema (storage.py) names exactly the catalog's columns."""
    run = pipeline_run(tmp_path_factory)
    stored: dict[tuple[str, str], list[str]] = {}
    for event in run.result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        schema = materialization.metadata["dagster/column_schema"].value
        assert isinstance(schema, dg.TableSchema)
        layer, table = materialization.asset_key.path
        stored[layer, table] = sorted(c.name for c in schema.columns)
        assert materialization.metadata["dagster/table_name"].value == ".".join(materialization.asset_key.path)
    assert stored
    for key, columns in stored.items():
        assert columns == sorted(c for c, _ in catalog.table_columns()[key]), key


def test_no_description_names_a_column_that_does_not_exist() -> None:
    existing = {column for columns in catalog.table_columns().values() for column, _ in columns}
    assert set(catalog._DESCRIPTIONS) <= existing
    for (layer, table), overrides in catalog._TABLE_DESCRIPTIONS.items():
        assert set(overrides) <= {c for c, _ in catalog.table_columns()[layer, table]}, (layer, table)


def test_a_column_without_description_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(catalog._DESCRIPTIONS, "delay_gain")
    with pytest.raises(KeyError, match=r"delay_gain of staging\.flights"):
        catalog.column_descriptions("staging", "flights")


def test_quarantine_tables_have_their_own_group_and_names(definitions: dg.Definitions) -> None:
    groups = {key.to_user_string(): spec.group_name for key, spec in _specs(definitions).items()}
    assert groups["quarantine/quarantined_flights"] == groups["quarantine/quarantined_weather"] == "quarantine"
    assert groups["staging/flights"] == groups["staging/weather"] == "staging"
    assert {g for k, g in groups.items() if k.startswith("quarantine/")} == {"quarantine"}
    # the UI labels a node with the last part of its key: a quarantine table never reads like a staged one
    names = {group: {k.split("/")[-1] for k, g in groups.items() if g == group} for group in ("staging", "quarantine")}
    assert names["quarantine"] == {"quarantined_flights", "quarantined_weather"}
    assert not names["quarantine"] & names["staging"]


def test_code_versions_follow_the_code_of_each_asset(definitions: dg.Definitions) -> None:
    versions = {key.to_user_string(): spec.code_version for key, spec in _specs(definitions).items()}
    assert all(versions.values()), versions
    # one op writes staging and quarantine; flights and weather are staged by different transforms
    assert versions["staging/flights"] == versions["quarantine/quarantined_flights"]
    assert versions["staging/flights"] != versions["staging/weather"]
    assert versions["core/flights"] != versions["staging/flights"]


def test_code_references_point_at_the_asset_modules(definitions: dg.Definitions) -> None:
    for key, spec in _specs(definitions).items():
        references = spec.metadata["dagster/code_references"].code_references
        layer = key.path[0] if key.path[0] != "quarantine" else "staging"
        assert any(Path(getattr(r, "file_path", "")).name == f"{layer}.py" for r in references), key


def test_git_remote_links_to_the_web_url_of_origin(tmp_path: Path) -> None:
    assert catalog.git_remote(tmp_path) is None  # no repository
    git = tmp_path / ".git"
    git.mkdir()
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "config").write_text('[core]\n\tbare = false\n[remote "origin"]\n\turl = /srv/repos/project.git\n')
    assert catalog.git_remote(tmp_path) is None  # a remote without a web page
    (git / "config").write_text('[remote "origin"]\n\turl = git@example.org:team/project.git\n')
    assert catalog.git_remote(tmp_path) == ("https://example.org/team/project", "main")
    (git / "HEAD").write_text("0123456789abcdef0123456789abcdef01234567\n")
    (git / "config").write_text('[remote "origin"]\n\turl = https://example.org/team/project.git\n')
    assert catalog.git_remote(tmp_path) == (
        "https://example.org/team/project",
        "0123456789abcdef0123456789abcdef01234567",
    )


def test_data_docs_show_the_catalog_descriptions(settings: Settings) -> None:
    from dataops_ops.docs import build_data_docs_report

    build_data_docs_report(settings)
    page = next(settings.data_docs_dir.glob("expectations/core/flights.html"))
    text = page.read_text(encoding="utf-8")
    assert catalog.column_descriptions("core", "flights")["has_weather"] in text
