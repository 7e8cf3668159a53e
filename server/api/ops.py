"""Operations: /health, /metrics, and JSON figures for clients that do not scrape Prometheus."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from litestar import Controller, Response, get
from litestar.datastructures import State

from mediasvc.auth import PrincipalDep
from mediasvc.database import check_database
from mediasvc.errors import ServiceUnavailable, error_body
from mediasvc.queue import queue_depth
from mediasvc.schemas import BucketStats, Health, HealthCheck, Stats, StorageStats
from mediasvc.services import ServicesDep
from mediasvc.tables import Asset, RecordingSession
from mediasvc.timeouts import within

CHECK_TIMEOUT = 2.0


async def _timed(check: Callable[[], Awaitable[Any]]) -> HealthCheck:
    started = time.perf_counter()
    try:
        await within(check(), CHECK_TIMEOUT)
    except Exception as exc:  # a health check reports every failure, it never raises
        detail = exc.details.get("reason", "") if isinstance(exc, ServiceUnavailable) else type(exc).__name__
        return HealthCheck(ok=False, latency_ms=round((time.perf_counter() - started) * 1000, 1),
                           detail=detail or str(exc))
    return HealthCheck(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 1))


async def run_health_checks(services: ServicesDep) -> Health:
    async def plugins() -> None:
        if not services.host.storage_backend_classes:
            raise RuntimeError("no storage backend plugin loaded")

    names = ("database", "storage", "queue", "plugins")
    results = await asyncio.gather(
        _timed(lambda: check_database(services.engine, CHECK_TIMEOUT)),
        _timed(services.storage.check),
        _timed(lambda: queue_depth(services.queue, CHECK_TIMEOUT)),
        _timed(plugins),
    )
    checks = dict(zip(names, results))
    return Health(status="ok" if all(c.ok for c in results) else "unavailable", checks=checks)


async def refresh_gauges(services: ServicesDep) -> None:
    metrics = services.metrics
    try:
        depth = await queue_depth(services.queue, CHECK_TIMEOUT)
    except ServiceUnavailable:
        depth = {}
    for state, count in depth.items():
        metrics.queue_size.labels(queue=services.settings.queue.name, state=state).set(count)
    for row in await _bytes_by_bucket(tenant_id=None):
        metrics.storage_bytes.labels(bucket=row["bucket"]).set(row["bytes"])
    metrics.active_sessions.set(await RecordingSession.count().where(RecordingSession.status == "active"))


async def _bytes_by_bucket(tenant_id: Any) -> list[dict[str, Any]]:
    tenant_filter = "AND a.tenant = {}" if tenant_id is not None else ""
    args = [tenant_id] if tenant_id is not None else []
    return await Asset.raw(
        "SELECT a.bucket, a.profile, count(*) + coalesce(sum(r.n), 0) AS objects, "
        "sum(a.size_bytes) + coalesce(sum(r.bytes), 0) AS bytes FROM assets a "
        "LEFT JOIN (SELECT asset, count(*) AS n, sum(size_bytes) AS bytes FROM renditions GROUP BY asset) r "
        f"ON r.asset = a.id WHERE a.status NOT IN ('deleted', 'pending') {tenant_filter} GROUP BY a.bucket, a.profile "
        "ORDER BY a.bucket, a.profile",
        *args,
    )


class OpsController(Controller):
    path = "/"
    include_in_schema = True
    tags = ["operations"]

    @get("/health", opt={"public": True},
         summary="Database, storage, queue and plugins; 503 naming what is down, or `draining` while shutting down")
    async def health(self, services: ServicesDep, state: State) -> Response[Any]:
        if state.drain.draining:  # SIGTERM: take this instance out of the load balancer before it stops
            return Response(error_body("draining", "shutting down: finishing in-flight requests",
                                       {"status": "draining"}, None), status_code=503)
        health = await run_health_checks(services)
        if health.status == "ok":
            return Response(health)
        failing = [name for name, check in health.checks.items() if not check.ok]
        body = error_body("service_unavailable", f"unavailable: {', '.join(failing)}",
                          {"failing": failing, "checks": {k: v for k, v in health.checks.items()}}, None)
        return Response(body, status_code=503)

    @get("/metrics", opt={"public": True}, media_type="text/plain; version=0.0.4", summary="Prometheus metrics")
    async def metrics(self, services: ServicesDep) -> Response[bytes]:
        await refresh_gauges(services)
        return Response(services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


class StatsController(Controller):
    path = "/"
    tags = ["operations"]

    @get("/stats", summary="Uploads, active sessions, queue size and storage bytes for the caller's tenant")
    async def stats(self, principal: PrincipalDep, services: ServicesDep) -> Stats:
        by_status_rows = await Asset.raw(
            "SELECT status, count(*) AS n FROM assets WHERE tenant = {} GROUP BY status", principal.tenant_id
        )
        recent = await Asset.raw(
            "SELECT count(*) AS n FROM assets WHERE tenant = {} AND created_at > now() - interval '1 hour' "
            "AND status <> 'pending'", principal.tenant_id
        )
        try:
            depth = await queue_depth(services.queue, CHECK_TIMEOUT)
        except ServiceUnavailable:
            depth = {}
        by_status = {row["status"]: row["n"] for row in by_status_rows}
        return Stats(
            uploads_total=sum(n for status, n in by_status.items() if status != "pending"),
            uploads_last_hour=recent[0]["n"],
            assets_by_status=by_status,
            active_sessions=await RecordingSession.count().where(
                RecordingSession.tenant == principal.tenant_id, RecordingSession.status == "active"
            ),
            queue=depth,
            storage_bytes=sum(int(row["bytes"] or 0) for row in await _bytes_by_bucket(principal.tenant_id)),
        )

    @get("/storage/stats", summary="Bytes and object counts per bucket and profile for the caller's tenant")
    async def storage_stats(self, principal: PrincipalDep) -> StorageStats:
        rows = await _bytes_by_bucket(principal.tenant_id)
        buckets = [BucketStats(bucket=r["bucket"], profile=r["profile"], objects=int(r["objects"]),
                               bytes=int(r["bytes"] or 0)) for r in rows]
        return StorageStats(total_bytes=sum(b.bytes for b in buckets), total_objects=sum(b.objects for b in buckets),
                            by_bucket=buckets)

