"""/health (and recovery without a restart), /metrics, JSON stats, request ids and spans."""

from __future__ import annotations

import json
import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from mediasvc.app import create_app
from mediasvc.logs import JsonFormatter
from mediasvc.tables import Asset as AssetRow
from tests.conftest import REDIS_URL, serve_in_process
from tests.tcp_proxy import TcpProxy


def through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_health_ok(client):
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "storage", "queue", "plugins"}
    assert all(check["ok"] for check in body["checks"].values())


async def test_health_names_the_database_when_it_goes_down_and_recovers(make_settings, database_url):
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    app = create_app(make_settings(database_url=through(database_url, proxy)))
    async with serve_in_process(app) as http:
        assert (await http.get("/health")).status_code == 200
        await proxy.cut()
        down = await http.get("/health")
        assert down.status_code == 503
        error = down.json()["error"]
        assert error["code"] == "service_unavailable"
        assert error["details"]["failing"] == ["database"]
        assert "database" in error["message"]
        await proxy.restore()
        recovered = await http.get("/health")
        assert recovered.status_code == 200, recovered.text
    await proxy.cut()


async def test_health_names_the_queue_when_redis_is_unreachable(make_settings):
    proxy = TcpProxy("127.0.0.1", 6379)
    await proxy.start()
    app = create_app(make_settings(**{"queue.url": through(REDIS_URL, proxy)}))
    async with serve_in_process(app) as http:
        assert (await http.get("/health")).status_code == 200
        await proxy.cut()
        down = await http.get("/health")
        assert down.status_code == 503
        assert down.json()["error"]["details"]["failing"] == ["queue"]
        await proxy.restore()
        assert (await http.get("/health")).status_code == 200
    await proxy.cut()


async def test_health_names_storage_when_its_root_is_unusable(make_settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    app = create_app(make_settings(**{"storage.root": str(blocker / "storage")}))
    async with serve_in_process(app) as http:
        down = await http.get("/health")
    assert down.status_code == 503
    assert down.json()["error"]["details"]["failing"] == ["storage"]


async def test_metrics_exposes_the_named_series(client, auth):
    await client.post("/api/v1/assets", headers=auth, json={"profile": "avatar", "original_name": "a.png"})
    text = (await client.get("/metrics")).text
    for name in ("media_uploads_total", "media_processing_duration_seconds", "media_processing_queue_size",
                 "media_storage_bytes_total", "media_active_sessions"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert 'media_http_requests_total{method="POST",route="/api/v1/assets",status="201"} 1.0' in text


async def test_stats_and_storage_stats_count_stored_bytes(client, auth):
    ids = []
    for name, size in (("a.png", 1000), ("b.png", 3000)):
        response = await client.post("/api/v1/assets", headers=auth,
                                     json={"profile": "avatar", "original_name": name, "size_bytes": size})
        ids.append(uuid.UUID(response.json()["id"]))
    await client.post("/api/v1/assets", headers=auth,
                      json={"profile": "interview_attachment", "original_name": "cv.pdf", "size_bytes": 500})
    await AssetRow.update({AssetRow.status: "ready"}).where(AssetRow.id.is_in(ids))
    stats = (await client.get("/api/v1/stats", headers=auth)).json()
    assert stats["storage_bytes"] == 4000  # the pending pdf has no bytes yet
    assert stats["assets_by_status"] == {"ready": 2, "pending": 1}
    assert stats["uploads_total"] == 2
    assert set(stats["queue"]) == {"queued", "active", "incomplete"}
    storage = (await client.get("/api/v1/storage/stats", headers=auth)).json()
    assert storage["by_bucket"] == [{"bucket": "avatars", "profile": "avatar", "objects": 2, "bytes": 4000}]
    assert storage["total_bytes"] == 4000


async def test_request_id_is_echoed_or_generated(client):
    given = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["x-request-id"] != "bad id with spaces"
    assert len(generated.headers["x-request-id"]) == 32


def test_json_log_lines_carry_the_request_id():
    record = logging.LogRecord("mediasvc.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.request_id = "rid-1"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello you" and line["request_id"] == "rid-1" and line["level"] == "info"


@pytest.fixture(scope="module")
def span_exporter():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_requests_are_traced(span_exporter, client):
    await client.get("/health", headers={"X-Request-ID": "trace-me"})
    spans = [s for s in span_exporter.get_finished_spans() if s.attributes.get("mediasvc.request_id") == "trace-me"]
    assert len(spans) == 1
    assert spans[0].name == "GET /health"
    assert spans[0].attributes["http.response.status_code"] == 200
