"""OpenLineage events for each asset materialization of a finished run, emitted with openlineage-python.

Model (one OpenLineage job per asset, one OpenLineage run per asset materialization):

- job ``<schema>.<table>`` (the asset key joined with dots) in namespace ``dataops-<env>``, with jobType
  (BATCH / DAGSTER / ASSET), its description and owners;
- START at the step's start and COMPLETE at the materialization, or FAIL at the step failure (errorMessage facet);
  ABORT when the step ended without materializing the asset (an optional output that was not produced);
- the Dagster run as the parent run facet (job = the Dagster job, run id = the Dagster run id); the Dagster run
  itself is emitted too (START, then COMPLETE / FAIL / ABORT), so the parent reference resolves in Marquez;
- inputs: the asset's upstream assets from the asset graph (dataset ``<schema>.<table>`` in ``dataops-<env>``), plus
  the landing file (namespace ``file``) when the materialization names its ``source_file``;
- output: the asset, with the schema facet (from ``dagster/column_schema``), outputStatistics (rows written:
  ``dagster/partition_row_count``, else ``dagster/row_count``) and dataQualityAssertions (the asset checks of the run);
- run facets: nominalTime (the partition's time window), processing_engine (Dagster) and tags (partition, step).

Run ids are UUIDv7 derived from (Dagster run id, asset, partition) and the start time, so emitting the same run
twice produces the same ids. Events are built after the run from its event log, with the event times recorded
there (``runlog.digest_run``).

Transport by configuration: a JSON-lines file (``<env_dir>/lineage/events.jsonl``) by default, HTTP to
``$OPENLINEAGE_URL`` + ``/api/v1/lineage`` (Marquez-compatible) when ``OPENLINEAGE_URL`` is set. A transport that
fails is logged, never raised: lineage must not fail a run or a sensor.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dagster as dg
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    data_quality_assertions_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    nominal_time_run,
    output_statistics_output_dataset,
    ownership_job,
    parent_run,
    processing_engine_run,
    schema_dataset,
    tags_run,
)
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider
from openlineage.client.uuid import generate_static_uuid

from dataops_assets.observability.config import LineageConfig, lineage_file
from dataops_assets.observability.runlog import AssetDigest, RunDigest, plain

PRODUCER = "urn:dataops-assets:observability:lineage"
FILE_NAMESPACE = "file"

logger = logging.getLogger(__name__)

__all__ = [
    "PRODUCER",
    "AssetInfo",
    "LineageConfig",
    "asset_catalog",
    "dataset_name",
    "emit",
    "emit_run_lineage",
    "lineage_file",
    "make_client",
    "namespace",
    "run_events",
    "to_json",
]

_FINAL_STATE = {"SUCCESS": RunState.COMPLETE, "FAILURE": RunState.FAIL, "CANCELED": RunState.ABORT}


def namespace(environment: str) -> str:
    return f"dataops-{environment}"


def dataset_name(key: dg.AssetKey) -> str:
    """``<schema>.<table>``: the warehouse table of the asset (the I/O manager's schema is the key's prefix)."""
    return ".".join(key.path)


@dataclass(frozen=True)
class AssetInfo:
    """What lineage needs from the asset graph about one asset."""

    parents: tuple[dg.AssetKey, ...] = ()
    description: str | None = None
    owners: tuple[str, ...] = ()
    partitions_def: dg.PartitionsDefinition | None = None


def asset_catalog(asset_graph: Any) -> dict[dg.AssetKey, AssetInfo]:
    """Parents, description, owners and partitioning of every asset of a Dagster asset graph."""
    catalog = {}
    for key in asset_graph.get_all_asset_keys():
        node = asset_graph.get(key)
        catalog[key] = AssetInfo(
            parents=tuple(sorted(node.parent_keys, key=dataset_name)),
            description=node.description,
            owners=tuple(node.owners or ()),
            partitions_def=node.partitions_def,
        )
    return catalog


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


@dataclass
class _Builder:
    digest: RunDigest
    catalog: Mapping[dg.AssetKey, AssetInfo]
    environment: str
    events: list[RunEvent] = field(default_factory=list)

    @property
    def ns(self) -> str:
        return namespace(self.environment)

    def build(self) -> list[RunEvent]:
        run = self.digest
        start = run.started or min((a.started for a in run.assets if a.started), default=None)
        if start is None:
            return []  # the run never started: nothing happened to describe
        parent_job = Job(namespace=self.ns, name=run.job_name, facets=self._job_facets("JOB", None))
        run_facets = self._run_facets(run.partition, None)
        self._add(RunState.START, start, Run(runId=run.run_id, facets=run_facets), parent_job)
        for asset in run.assets:
            self._asset_events(asset)
        final = _FINAL_STATE.get(run.status)
        if final is not None:
            facets = dict(run_facets)
            if final == RunState.FAIL and run.failure_message:
                facets["errorMessage"] = _error(run.failure_message)
            end = run.ended or max((e.eventTime for e in self.events), default=_time(start))
            self._add(final, end, Run(runId=run.run_id, facets=facets), parent_job)
        return sorted(self.events, key=lambda e: e.eventTime)

    def _asset_events(self, asset: AssetDigest) -> None:
        if asset.started is None:
            return  # planned, never started (an upstream step failed): no run happened
        info = self.catalog.get(asset.key, AssetInfo())
        run_id = str(
            generate_static_uuid(
                datetime.fromtimestamp(asset.started, UTC),
                f"{self.digest.run_id}/{asset.asset}/{asset.partition or ''}".encode(),
            )
        )
        job = Job(namespace=self.ns, name=dataset_name(asset.key), facets=self._job_facets("ASSET", info))
        facets = self._run_facets(asset.partition, asset.step_key)
        facets["parent"] = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=self.digest.run_id),
            job=parent_run.Job(namespace=self.ns, name=self.digest.job_name),
            root=parent_run.Root(
                run=parent_run.RootRun(runId=self.digest.run_id),
                job=parent_run.RootJob(namespace=self.ns, name=self.digest.job_name),
            ),
            producer=PRODUCER,
        )
        inputs = self._inputs(asset, info)
        name = dataset_name(asset.key)
        start_output = [OutputDataset(namespace=self.ns, name=name)]
        self._add(
            RunState.START, asset.started, Run(runId=run_id, facets=facets), job, inputs=inputs, outputs=start_output
        )
        assertions = [
            data_quality_assertions_dataset.Assertion(
                assertion=check.check,
                success=check.passed,
                severity=check.severity.lower(),
                description=check.description[:1000] or None,
            )
            for check in self.digest.checks_of(asset)
        ]
        dataset_facets: dict[str, Any] = {}
        output_facets: dict[str, Any] = {}
        if assertions:
            dataset_facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                assertions=assertions, producer=PRODUCER
            )
        if asset.materialized is not None:
            schema = _schema_facet(asset.metadata.get("dagster/column_schema"))
            if schema is not None:
                dataset_facets["schema"] = schema
            rows = asset.rows_written
            if rows is not None:
                output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=rows, producer=PRODUCER
                )
            state, end = RunState.COMPLETE, asset.materialized
        elif asset.failed is not None:
            facets = {**facets, "errorMessage": _error(asset.error or "step failed")}
            state, end = RunState.FAIL, asset.failed
        else:
            state, end = RunState.ABORT, max(asset.started, self.digest.ended or asset.started)
        output = OutputDataset(namespace=self.ns, name=name, facets=dataset_facets, outputFacets=output_facets)
        self._add(state, end, Run(runId=run_id, facets=facets), job, inputs=inputs, outputs=[output])

    def _inputs(self, asset: AssetDigest, info: AssetInfo) -> list[InputDataset]:
        inputs = [InputDataset(namespace=self.ns, name=dataset_name(parent)) for parent in info.parents]
        source = plain(asset.metadata.get("source_file"))
        if isinstance(source, str) and source:
            inputs.append(InputDataset(namespace=FILE_NAMESPACE, name=str(Path(source).resolve())))
        return inputs

    def _job_facets(self, job_type: str, info: AssetInfo | None) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="BATCH", integration="DAGSTER", jobType=job_type, producer=PRODUCER
            )
        }
        if info and info.description:
            facets["documentation"] = documentation_job.DocumentationJobFacet(
                description=info.description, producer=PRODUCER
            )
        if info and info.owners:
            facets["ownership"] = ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=owner) for owner in info.owners], producer=PRODUCER
            )
        return facets

    def _run_facets(self, partition: str | None, step_key: str | None) -> dict[str, Any]:
        facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=dg.__version__,
                name="Dagster",
                openlineageAdapterVersion=version("openlineage-python"),
                producer=PRODUCER,
            )
        }
        tags = [tags_run.TagsRunFacetFields(key="environment", value=self.environment, source="DAGSTER")]
        if partition:
            tags.append(tags_run.TagsRunFacetFields(key="partition", value=partition, source="DAGSTER"))
            window = _time_window(self.digest, partition, self.catalog)
            if window is not None:
                facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                    nominalStartTime=window[0], nominalEndTime=window[1], producer=PRODUCER
                )
        if step_key:
            tags.append(tags_run.TagsRunFacetFields(key="step", value=step_key, source="DAGSTER"))
        facets["tags"] = tags_run.TagsRunFacet(tags=tags, producer=PRODUCER)
        return facets

    def _add(
        self,
        state: RunState,
        when: float | str,
        run: Run,
        job: Job,
        *,
        inputs: list[InputDataset] | None = None,
        outputs: list[OutputDataset] | None = None,
    ) -> None:
        event_time = when if isinstance(when, str) else _time(when)
        self.events.append(
            RunEvent(
                eventType=state,
                eventTime=event_time,
                run=run,
                job=job,
                inputs=inputs or [],
                outputs=outputs or [],
                producer=PRODUCER,
            )
        )


def _error(message: str) -> error_message_run.ErrorMessageRunFacet:
    return error_message_run.ErrorMessageRunFacet(
        message=message.strip()[:4000], programmingLanguage="python", producer=PRODUCER
    )


def _schema_facet(value: Any) -> schema_dataset.SchemaDatasetFacet | None:
    schema = plain(value)
    if not isinstance(schema, dg.TableSchema):
        return None
    fields = [
        schema_dataset.SchemaDatasetFacetFields(name=column.name, type=column.type, description=column.description)
        for column in schema.columns
    ]
    return schema_dataset.SchemaDatasetFacet(fields=fields, producer=PRODUCER)


def _time_window(digest: RunDigest, partition: str, catalog: Mapping[dg.AssetKey, AssetInfo]) -> tuple[str, str] | None:
    for asset in digest.assets:
        partitions_def = catalog.get(asset.key, AssetInfo()).partitions_def
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
            try:
                window = partitions_def.time_window_for_partition_key(partition)
            except Exception:  # a key of another partitioning: no nominal time
                return None
            return window.start.isoformat(), window.end.isoformat()
    return None


def run_events(digest: RunDigest, catalog: Mapping[dg.AssetKey, AssetInfo], environment: str) -> list[RunEvent]:
    """The OpenLineage events of a finished run, in time order."""
    return _Builder(digest, catalog, environment).build()


def to_json(event: RunEvent) -> str:
    return str(Serde.to_json(event))


def make_client(config: LineageConfig) -> OpenLineageClient:
    if config.url:
        auth = ApiKeyTokenProvider({"apiKey": config.api_key}) if config.api_key else TokenProvider({})
        http = HttpConfig(
            url=config.url,
            endpoint=config.endpoint,
            timeout=config.timeout_seconds,
            retry={
                "total": config.retries,
                "connect": config.retries,
                "read": config.retries,
                "backoff_factor": config.backoff_factor,
                "status_forcelist": [429, 500, 502, 503, 504],
                "allowed_methods": ["POST"],
            },
            auth=auth,
        )
        return OpenLineageClient(transport=HttpTransport(http))
    config.file.parent.mkdir(parents=True, exist_ok=True)
    return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(config.file), append=True)))


def emit(events: Iterable[RunEvent], config: LineageConfig, log: Any = None) -> int:
    """Emit the events in order; returns how many went out. A failing transport is logged and stops the batch."""
    events = list(events)
    sent = 0
    try:
        client = make_client(config)
        for event in events:
            client.emit(event)
            sent += 1
    except Exception as error:  # the transport's errors are many (requests, OS, fsspec): none may escape
        message = (
            f"OpenLineage: {sent} of {len(events)} event(s) sent to {config.destination}; the rest NOT sent: "
            f"{type(error).__name__}: {error}"
        )
        logger.warning(message)
        if log is not None:
            log.warning(message)
    return sent


def emit_run_lineage(
    digest: RunDigest, catalog: Mapping[dg.AssetKey, AssetInfo], config: LineageConfig, log: Any = None
) -> int:
    return emit(run_events(digest, catalog, config.environment), config, log)
