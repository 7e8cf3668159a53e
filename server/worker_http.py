"""The ``mediasvc worker`` process: the SAQ worker plus its own small HTTP endpoint on ``worker_metrics_port``,
``/metrics`` (Prometheus) and ``/health``.

The endpoint is served from the worker's event loop, so an answer at all proves the loop is alive; ``/health``
then answers 200 when the SAQ worker is running (started, not stopping, its job loops present), its queue answers
and its database answers, else 503 with the same error envelope the API's ``/health`` uses.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any, Awaitable, Callable

import msgspec
from saq import Worker

from mediasvc.database import check_database
from mediasvc.errors import ConfigurationError, ServiceUnavailable, error_body
from mediasvc.metrics import Metrics
from mediasvc.queue import queue_depth
from mediasvc.schemas import Health, HealthCheck

CHECK_TIMEOUT = 2.0
READ_TIMEOUT = 5.0
MAX_HEADER_LINES = 100
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

log = logging.getLogger("mediasvc.worker")


async def _timed(check: Callable[[], Awaitable[Any]]) -> HealthCheck:
    started = time.perf_counter()
    try:
        await check()
    except Exception as exc:  # a health check reports every failure, it never raises
        detail = exc.details.get("reason", "") if isinstance(exc, ServiceUnavailable) else str(exc)
        return HealthCheck(ok=False, latency_ms=round((time.perf_counter() - started) * 1000, 1),
                           detail=detail or type(exc).__name__)
    return HealthCheck(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 1))


async def worker_health(worker: Worker) -> Health:
    """Is this worker able to run jobs: its loop running, its queue and its database reachable."""

    async def loop() -> None:
        if worker.event.is_set():
            raise RuntimeError("stopping")
        if not any(task.get_name() == "process" and not task.done() for task in worker.tasks):
            raise RuntimeError("not started")  # start-up (database pool, plugins) has not finished

    async def database() -> None:
        engine = worker.context.get("own_engine")
        if engine is None:
            raise RuntimeError("not started")
        await check_database(engine, CHECK_TIMEOUT)

    names = ("worker", "queue", "database")
    results = await asyncio.gather(_timed(loop), _timed(lambda: queue_depth(worker.queue, CHECK_TIMEOUT)),
                                   _timed(database))
    return Health(status="ok" if all(r.ok for r in results) else "unavailable", checks=dict(zip(names, results)))


async def _health_response(worker: Worker) -> tuple[int, str, bytes]:
    health = await worker_health(worker)
    if health.status == "ok":
        return 200, "application/json", msgspec.json.encode(health)
    failing = [name for name, check in health.checks.items() if not check.ok]
    body = error_body("service_unavailable", f"unavailable: {', '.join(failing)}",
                      {"failing": failing, "checks": msgspec.to_builtins(health.checks)}, None)
    return 503, "application/json", msgspec.json.encode(body)


def _not_found() -> tuple[int, str, bytes]:
    body = error_body("not_found", "not found: this port serves /health and /metrics", {}, None)
    return 404, "application/json", msgspec.json.encode(body)


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, worker: Worker,
                  metrics: Metrics) -> None:
    try:
        request_line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
        for _ in range(MAX_HEADER_LINES):  # headers are read and ignored
            if (await asyncio.wait_for(reader.readline(), READ_TIMEOUT)) in (b"\r\n", b"\n", b""):
                break
        method, _, rest = request_line.decode("latin-1").partition(" ")
        path = rest.split(" ", 1)[0].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            status, content_type, body = 405, "text/plain", b"GET or HEAD only\n"
        elif path == "/health":
            status, content_type, body = await _health_response(worker)
        elif path == "/metrics":
            status, content_type, body = 200, METRICS_TYPE, metrics.render()
        else:
            status, content_type, body = _not_found()
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
        writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
        await writer.drain()
    except (TimeoutError, ConnectionError, UnicodeDecodeError):
        pass  # a slow or broken client gets nothing more
    finally:
        writer.close()


async def serve_worker_http(worker: Worker, metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """Listen on ``host:port`` in the running loop; raises OSError when the port cannot be bound."""
    return await asyncio.start_server(lambda r, w: _answer(r, w, worker, metrics), host, port)


async def run_worker(options: dict[str, Any], metrics: Metrics, host: str, port: int) -> None:
    """Run ``saq.Worker(**options)`` until SIGINT or SIGTERM, with /health and /metrics on ``host:port`` (0: none).
    A port that cannot be bound is a ConfigurationError, raised before any job runs."""
    worker = Worker(**options)
    server = None
    if port:
        try:
            server = await serve_worker_http(worker, metrics, host, port)
        except OSError as exc:
            raise ConfigurationError(
                f"worker /health and /metrics: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "set MEDIASVC_WORKER_METRICS_PORT or --metrics-port (0: off)") from exc
        log.info("worker health and metrics on http://%s:%d/health and /metrics", host, port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.stop()))
    try:
        await worker.queue.connect()
        await worker.start()
    finally:
        if server is not None:
            server.close()
