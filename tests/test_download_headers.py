"""Every response that carries stored bytes tells the browser not to sniff (``X-Content-Type-Options: nosniff``) and
sandboxes the file if it is opened as a page (``Content-Security-Policy: sandbox``): ``/media/serve`` and
``/media/stream`` (200, 206, 304, HEAD), the HLS proxy's playlists and segments, and the HLS fast path."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx

from mediasvc.delivery.tokens import issue_token
from mediasvc.media_urls import serve_url
from mediasvc.tables import Asset, Rendition
from tests.playback_helpers import tenant_with_key

EXPECTED = {"x-content-type-options": "nosniff", "content-security-policy": "sandbox"}
PAGE = b"<html><script>alert(document.cookie)</script></html>"  # what a disguised upload could hold
MASTER = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000,RESOLUTION=64x48\n240p/index.m3u8\n"
VARIANT = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nseg_0.ts\n#EXT-X-ENDLIST\n"
SEGMENT = b"G" + bytes(187)  # one MPEG-TS packet


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def assert_hardened(response: httpx.Response | dict[str, str], what: str) -> None:
    headers = response.headers if isinstance(response, httpx.Response) else response
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, (what, name, dict(headers))


async def test_serve_and_stream_send_nosniff_and_sandbox(app, client):
    services = app.state.services
    key = f"t/image/{uuid.uuid4()}/original.jpg"  # named .jpg, holds HTML: the browser must not sniff it
    await services.storage.put(key, PAGE)
    for stream in (False, True):
        url = path_of(serve_url(services.settings, key, stream=stream))
        full = await client.get(url)
        assert full.status_code == 200 and full.content == PAGE
        assert full.headers["content-type"] == "image/jpeg"
        assert_hardened(full, f"GET stream={stream}")
        part = await client.get(url, headers={"Range": "bytes=0-5"})
        assert part.status_code == 206 and part.content == PAGE[:6]
        assert_hardened(part, "206")
        cached = await client.get(url, headers={"If-None-Match": full.headers["etag"]})
        assert cached.status_code == 304
        assert_hardened(cached, "304")
        head = await client.head(url)
        assert head.status_code == 200 and head.content == b""
        assert_hardened(head, "HEAD")
    attachment = await client.get(path_of(serve_url(services.settings, key, download_name="x.php.jpg")))
    assert attachment.headers["content-disposition"].startswith("attachment;")
    assert_hardened(attachment, "attachment")


async def _hls_asset(services: Any) -> tuple[uuid.UUID, str]:
    """An asset with a (tiny, hand-written) HLS rendition in storage; returns (asset id, base folder)."""
    tenant_id, _, _ = await tenant_with_key()
    asset_id = uuid.uuid4()
    base = f"t/video/{asset_id}/hls"
    await services.storage.put(f"{base}/master.m3u8", MASTER.encode())
    await services.storage.put(f"{base}/240p/index.m3u8", VARIANT.encode())
    await services.storage.put(f"{base}/240p/seg_0.ts", SEGMENT)
    await Asset.insert(Asset(id=asset_id, tenant=tenant_id, profile="video_response", kind="video",
                             original_name="clip.mp4", storage_key=f"t/video/{asset_id}/original.mp4",
                             status="ready"))
    await Rendition.insert(Rendition(id=uuid.uuid4(), asset=asset_id, kind="hls", name="master",
                                     storage_key=f"{base}/master.m3u8", content_type="application/vnd.apple.mpegurl"))
    return asset_id, base


async def test_hls_proxy_playlists_and_segments_send_nosniff_and_sandbox(app, client):
    services = app.state.services
    asset_id, _ = await _hls_asset(services)
    token, _ = issue_token(services.settings, asset_id, "viewer", ttl_seconds=120)
    base = f"/hls/{token}/{asset_id}"
    for path, body in (("master.m3u8", MASTER.encode()), ("240p/index.m3u8", VARIANT.encode()),
                       ("240p/seg_0.ts", SEGMENT)):
        response = await client.get(f"{base}/{path}")
        assert response.status_code == 200 and response.content == body, path
        assert response.headers["access-control-allow-origin"] == "*"
        assert_hardened(response, path)
    part = await client.get(f"{base}/240p/seg_0.ts", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206
    assert_hardened(part, "segment 206")


async def test_hls_fast_path_sends_the_same_headers(app, client):
    services = app.state.services
    asset_id, _ = await _hls_asset(services)
    token, _ = issue_token(services.settings, asset_id, "viewer", ttl_seconds=120)
    path = f"/hls/{token}/{asset_id}/240p/seg_0.ts"
    assert (await client.get(path)).status_code == 200  # the slow path caches the asset for the fast one
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 40000), "server": ("testserver", 80),
        "extensions": {"http.response.pathsend": {}},
    }
    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.pathsend"]  # the fast path did it
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    assert sent[0]["status"] == 200 and headers["content-type"] == "video/mp2t"
    assert_hardened(headers, "fast path")
