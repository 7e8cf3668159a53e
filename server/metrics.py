"""Prometheus metrics, one registry per app or worker (never the global one, so apps in one process don't mix).

Counters and histograms are updated where things happen; gauges that describe stored state (queue size, storage
bytes, active sessions) are refreshed from the database and queue when /metrics is scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.uploads = Counter("media_uploads", "Uploads completed (assets created)", ["profile", "method"],
                               registry=r)
        self.processing_duration = Histogram(
            "media_processing_duration_seconds", "Time a processing step took", ["step", "status"],
            buckets=DURATION_BUCKETS, registry=r,
        )
        self.job_duration = Histogram("media_job_duration_seconds", "Time any queued job took", ["job", "status"],
                                      buckets=DURATION_BUCKETS, registry=r)
        self.queue_size = Gauge("media_processing_queue_size", "Jobs in the queue by state", ["queue", "state"],
                                registry=r)
        self.storage_bytes = Gauge("media_storage_bytes_total", "Bytes stored, originals and renditions",
                                   ["bucket"], registry=r)
        self.active_sessions = Gauge("media_active_sessions", "Recording sessions still receiving chunks",
                                     registry=r)
        self.http_requests = Counter("media_http_requests", "HTTP requests", ["method", "route", "status"],
                                     registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
