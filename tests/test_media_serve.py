"""Serving by signed URL: exact Range bytes, conditional requests, attachment names, signatures; S3 redirects."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from mediasvc.media_urls import serve_url
from mediasvc.app import create_app
from mediasvc.tables import Asset
from tests.conftest import serve_in_process
from tests.s3_server import S3Server, s3_server  # noqa: F401 - fixture

DATA = os.urandom(1_000_003)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
async def stored(client, app):
    services = app.state.services
    key = f"t/video/{uuid.uuid4()}/original.mp4"
    await services.storage.put(key, DATA)
    return services, key


async def test_full_and_ranged_reads_return_exactly_the_bytes(client, stored):
    services, key = stored
    url = path_of(serve_url(services.settings, key))
    full = await client.get(url)
    assert full.status_code == 200 and full.content == DATA
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["content-type"] == "video/mp4"
    for header, expected in [("bytes=0-99", DATA[:100]), ("bytes=1000-", DATA[1000:]),
                             ("bytes=-500", DATA[-500:]), ("bytes=999999-2000000", DATA[999999:])]:
        part = await client.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == expected, header
        start = len(DATA) - len(expected) if header.startswith("bytes=-") else int(header[6:].split("-")[0])
        assert part.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{len(DATA)}"
    past = await client.get(url, headers={"Range": "bytes=2000000-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(DATA)}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"
    several = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert several.status_code == 200 and several.content == DATA  # multiple ranges: the whole body


async def test_conditional_requests(client, stored):
    services, key = stored
    url = path_of(serve_url(services.settings, key))
    first = await client.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert (await client.get(url, headers={"If-None-Match": etag})).status_code == 304
    assert (await client.get(url, headers={"If-Modified-Since": modified})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": '"other"'})).status_code == 200
    same = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == DATA[:10]
    changed = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert changed.status_code == 200 and changed.content == DATA
    head = await client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(DATA)) and head.content == b""


async def test_signatures_are_required_and_checked(client, stored):
    services, key = stored
    url = path_of(serve_url(services.settings, key, download_name="réponse finale.mp4"))
    ok = await client.get(url)
    assert ok.status_code == 200
    assert ok.headers["content-disposition"] == (
        "attachment; filename=\"r_ponse finale.mp4\"; filename*=UTF-8''r%C3%A9ponse%20finale.mp4")
    tampered = url.replace("dl=r", "dl=x")
    assert (await client.get(tampered)).status_code == 403
    assert (await client.get(f"/media/serve/{key}")).status_code == 403
    other = path_of(serve_url(services.settings, key)).replace(key, key.replace("original", "other"))
    assert (await client.get(other)).json()["error"]["code"] == "forbidden"
    expired = path_of(serve_url(services.settings, key, expires_in=1))
    time.sleep(1.1)
    assert (await client.get(expired)).status_code == 403
    missing = path_of(serve_url(services.settings, "t/video/none/original.mp4"))
    assert (await client.get(missing)).status_code == 404
    escape = path_of(serve_url(services.settings, "t/../../etc/passwd"))
    assert (await client.get(escape)).status_code in (400, 404)


async def test_stream_proxies_without_redirect(client, stored):
    services, key = stored
    response = await client.get(path_of(serve_url(services.settings, key, stream=True)),
                                headers={"Range": "bytes=10-19"})
    assert response.status_code == 206 and response.content == DATA[10:20]


async def test_download_redirects_to_a_signed_attachment(client, auth, app):
    services = app.state.services
    created = (await client.post("/api/v1/assets", headers=auth, json={
        "profile": "avatar", "original_name": "my photo.png"})).json()
    pending = await client.get(f"/api/v1/assets/{created['id']}/download", headers=auth)
    assert pending.status_code == 409
    row = await Asset.select(Asset.storage_key).where(Asset.id == uuid.UUID(created["id"])).first()
    await services.storage.put(row["storage_key"], b"\x89PNG\r\n\x1a\n" + DATA[:100])
    await Asset.update({Asset.status: "ready"}).where(Asset.id == uuid.UUID(created["id"]))
    response = await client.get(f"/api/v1/assets/{created['id']}/download", headers=auth)
    assert response.status_code == 302
    followed = await client.get(path_of(response.headers["location"]))
    assert followed.content == b"\x89PNG\r\n\x1a\n" + DATA[:100]
    assert 'filename="my photo.png"' in followed.headers["content-disposition"]


async def test_s3_serve_redirects_to_a_presigned_url(make_settings, s3_server):
    settings = make_settings(**{f"storage.{k.split('__', 1)[1].lower()}": v for k, v in s3_server.env().items()})
    app = create_app(settings)
    async with serve_in_process(app) as http:
        services = app.state.services
        key = f"t/video/{uuid.uuid4()}/original.mp4"
        await services.storage.put(key, DATA)
        response = await http.get(path_of(serve_url(services.settings, key)))
        assert response.status_code == 302
        fetched = httpx.get(response.headers["location"])
        assert hashlib.sha256(fetched.content).digest() == hashlib.sha256(DATA).digest()
