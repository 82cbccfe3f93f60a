"""``dataops metrics``: Prometheus metrics read from the environment's Dagster instance at each scrape.

The instance is the source: runs by job and status and their durations, materializations and rows per asset (rows
from the materialization metadata), check evaluations by asset, check, severity and result, all read through the
digest of each finished run (``runlog.digest_run``). Nothing is copied anywhere, so nothing waits on the lake.
Every sample carries the ``environment`` label; ``partition`` is empty for unpartitioned assets.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
from prometheus_client import CollectorRegistry, generate_latest, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from dataops_assets.environments import Settings
from dataops_assets.observability.runlog import AssetDigest, RunDigest, digest_run
from dataops_ops.instance import open_instance

Samples = Mapping[Any, float]  # label values (a tuple) → sample value
Family = Callable[..., CounterMetricFamily | GaugeMetricFamily]


class InstanceCollector(Collector):
    """Reads the instance at each scrape; a finished run's digest never changes, so each run is read once."""

    def __init__(self, instance: dg.DagsterInstance, environment: str) -> None:
        self.instance = instance
        self.environment = environment
        self._digests: dict[str, RunDigest] = {}

    def _digest(self, run_id: str) -> RunDigest:
        if run_id not in self._digests:
            self._digests[run_id] = digest_run(self.instance, run_id)
        return self._digests[run_id]

    def _family(self, family: Family, name: str, doc: str, labels: Sequence[str], samples: Samples) -> Metric:
        metric = family(name, doc, labels=["environment", *labels])
        for values, value in sorted(samples.items()):
            metric.add_metric([self.environment, *values], value)
        return metric

    def collect(self) -> Iterator[Metric]:
        runs = [record.dagster_run for record in self.instance.get_run_records()]
        # oldest first, so that in the "latest" maps below the newest run of a key wins
        ended = sorted((self._digest(run.run_id) for run in runs if run.is_finished), key=lambda d: d.ended or 0.0)
        unfinished = Counter((run.job_name, run.status.value) for run in runs if not run.is_finished)
        yield from self._run_families(ended, unfinished)
        yield from self._asset_families([a for digest in ended for a in digest.assets if a.materialized is not None])
        checks = Counter((c.asset, c.check, c.severity, str(c.passed).lower()) for d in ended for c in d.checks)
        labels = ("asset", "check", "severity", "passed")
        yield self._family(CounterMetricFamily, "dataops_check_evaluations", "Asset check evaluations.", labels, checks)

    def _run_families(self, ended: list[RunDigest], unfinished: Samples) -> Iterator[Metric]:
        job_status = ("job", "status")
        by_status = Counter((digest.job_name, digest.status) for digest in ended)
        yield self._family(
            CounterMetricFamily, "dataops_runs", "Finished runs by job and status.", job_status, by_status
        )
        doc = "Queued and running runs by job and status."
        yield self._family(GaugeMetricFamily, "dataops_unfinished_runs", doc, job_status, unfinished)
        doc = "Wall time of finished runs, start to end."
        duration = SummaryMetricFamily("dataops_run_duration_seconds", doc, labels=["environment", "job"])
        for job in sorted({digest.job_name for digest in ended}):
            seconds = [d.duration_seconds for d in ended if d.job_name == job and d.duration_seconds is not None]
            duration.add_metric([self.environment, job], count_value=len(seconds), sum_value=sum(seconds))
        yield duration
        latest = {(digest.job_name, digest.partition or ""): digest for digest in ended}
        success = {key: float(digest.status == "SUCCESS") for key, digest in latest.items()}
        end = {key: digest.ended for key, digest in latest.items() if digest.ended is not None}
        doc = "1 when the latest finished run of the job and partition succeeded, else 0."
        yield self._family(GaugeMetricFamily, "dataops_last_run_success", doc, ("job", "partition"), success)
        doc = "When the latest finished run of the job and partition ended (Unix time)."
        yield self._family(GaugeMetricFamily, "dataops_last_run_end_timestamp_seconds", doc, ("job", "partition"), end)

    def _asset_families(self, materialized: list[AssetDigest]) -> Iterator[Metric]:
        count = Counter((asset.asset,) for asset in materialized)
        with_rows = [(asset, asset.rows_written) for asset in materialized if asset.rows_written is not None]
        rows: Counter[tuple[str]] = Counter()
        for asset, written in with_rows:
            rows[(asset.asset,)] += written
        latest = {(asset.asset, asset.partition or ""): written for asset, written in with_rows}
        doc = "Materializations of each asset."
        yield self._family(CounterMetricFamily, "dataops_asset_materializations", doc, ("asset",), count)
        doc = "Rows written by all materializations of each asset (that report rows)."
        yield self._family(CounterMetricFamily, "dataops_rows_written", doc, ("asset",), rows)
        doc = "Rows written by the latest materialization of each asset and partition."
        yield self._family(GaugeMetricFamily, "dataops_asset_rows", doc, ("asset", "partition"), latest)


def run_metrics(settings: Settings, args: argparse.Namespace) -> int:
    """Print the exposition, write it to ``args.output`` atomically, or serve it on 127.0.0.1:``args.serve``."""
    with open_instance(settings) as instance:
        registry = CollectorRegistry()
        registry.register(InstanceCollector(instance, settings.name))
        if args.serve is not None:
            server, thread = start_http_server(args.serve, addr="127.0.0.1", registry=registry)
            print(f"serving metrics on http://127.0.0.1:{args.serve}/metrics (Ctrl-C stops)", flush=True)
            try:
                thread.join()
            except KeyboardInterrupt:
                pass
            finally:
                server.shutdown()
        elif args.output is not None:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(args.output), registry)
        else:
            sys.stdout.write(generate_latest(registry).decode())
    return 0
