"""Presigned direct uploads: the local backend's signed PUT endpoint, confirm / abort / expiry, the uploads view,
and the S3 backend against a real SeaweedFS (presigned PUT and presigned multipart, signatures checked)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import av
import httpx
import obstore
import pytest

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.events import MEDIA_UPLOADED
from mediasvc.ingest import presigned
from mediasvc.tables import Asset as AssetRow
from mediasvc.tables import Event as EventRow
from mediasvc.tables import Upload as UploadRow
from tests.conftest import serve_in_process
from tests.s3_server import S3Server, s3_server  # noqa: F401 (the fixture)

MiB = 1024 * 1024


# --- real media bytes ---------------------------------------------------------------------------------------------


def make_mp4(frames: int = 10, fps: int = 10, size: tuple[int, int] = (64, 48)) -> bytes:
    """A real MPEG-4 video in an MP4 container, encoded by PyAV (``frames / fps`` seconds)."""
    width, height = size
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 8 % 256]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def make_png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG built by hand (Pillow is not installed)."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


MP4 = make_mp4()
PNG = make_png()


# --- helpers ------------------------------------------------------------------------------------------------------


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]


async def initiate(client: httpx.AsyncClient, auth: dict[str, str], data: bytes = MP4, **fields) -> httpx.Response:
    payload = {"file_name": "answer.mp4", "profile": "video_response", "content_type": "video/mp4",
               "size_bytes": len(data)} | fields
    return await client.post("/api/v1/uploads", json=payload, headers=auth)


async def ticket_for(client, auth, data: bytes = MP4, **fields) -> dict:
    response = await initiate(client, auth, data, **fields)
    assert response.status_code == 201, response.text
    return response.json()


def local_target(url: str) -> str:
    """The path and query of a local signed URL (the test client talks to the app in process)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode(dict(parse_qsl(parts.query)) | changes)))


def flip_last_char(value: str) -> str:
    return value[:-1] + ("A" if value[-1] != "A" else "B")


async def put_local(client, ticket: dict, data: bytes, **header_changes) -> httpx.Response:
    headers = dict(ticket["headers"]) | header_changes
    headers = {k: v for k, v in headers.items() if v is not None}
    return await client.put(local_target(ticket["url"]), content=data, headers=headers)


async def upload_row(upload_id: str) -> dict:
    return await UploadRow.select().where(UploadRow.id == uuid.UUID(upload_id)).output(load_json=True).first()


def stored_path(app, key: str):
    return app.state.services.storage.local_path(key)


# --- local backend: the signed PUT --------------------------------------------------------------------------------


async def test_local_put_then_confirm_creates_the_asset(app, client, auth):
    ticket = await ticket_for(client, auth, owner="user-9", metadata={"question": 4})
    assert ticket["mode"] == "single" and ticket["method"] == "PUT"
    assert ticket["headers"] == {"Content-Type": "video/mp4", "Content-Length": str(len(MP4))}
    assert urlsplit(ticket["url"]).path == f"/media/uploads/{ticket['upload_id']}"
    expires_at = datetime.fromisoformat(ticket["expires_at"])
    assert timedelta(seconds=880) < expires_at - datetime.now(timezone.utc) <= timedelta(seconds=900)

    view = (await client.get(f"/api/v1/uploads/{ticket['upload_id']}", headers=auth)).json()
    assert (view["method"], view["status"], view["offset"], view["length"], view["asset_id"]) == \
        ("presigned", "uploading", 0, len(MP4), None)

    put = await put_local(client, ticket, MP4)  # no API key: the signature is the credential
    assert put.status_code == 200, put.text
    assert put.json()["size_bytes"] == len(MP4)
    row = await upload_row(ticket["upload_id"])
    assert stored_path(app, row["storage_key"]).read_bytes() == MP4
    assert row["storage_key"].endswith(f"/video/{ticket['asset_id']}/original.mp4")

    confirmed = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    assert confirmed.status_code == 200, confirmed.text
    body = confirmed.json()
    assert body["asset_id"] == ticket["asset_id"]
    assert body["sha256"] == hashlib.sha256(MP4).hexdigest()
    asset = await AssetRow.select().where(AssetRow.id == uuid.UUID(ticket["asset_id"])).output(
        load_json=True).first()
    assert (asset["size_bytes"], asset["sha256"], asset["content_type"], asset["owner"]) == \
        (len(MP4), hashlib.sha256(MP4).hexdigest(), "video/mp4", "user-9")
    assert asset["status"] in ("uploaded", "processing", "ready")  # processing was scheduled
    assert asset["metadata"] == {"question": 4}
    assert asset["storage_key"] == row["storage_key"]
    events = await EventRow.select(EventRow.payload).where(EventRow.type == MEDIA_UPLOADED).output(load_json=True)
    assert any(e["payload"]["asset_id"] == ticket["asset_id"] and e["payload"]["method"] == "presigned"
               for e in events)

    view = (await client.get(f"/api/v1/uploads/{ticket['upload_id']}", headers=auth)).json()
    assert (view["status"], view["offset"], view["asset_id"]) == ("complete", len(MP4), ticket["asset_id"])

    again = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    assert again.status_code == 200 and again.json() == body  # idempotent: the same asset, no second one
    assert await AssetRow.count().where(AssetRow.id == uuid.UUID(ticket["asset_id"])) == 1


async def test_tampered_or_expired_signature_is_403_and_nothing_is_stored(app, client, auth):
    ticket = await ticket_for(client, auth)
    query = dict(parse_qsl(urlsplit(ticket["url"]).query))
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    tampered = [
        with_query(ticket["url"], sig=flip_last_char(query["sig"])),
        with_query(ticket["url"], size=str(len(MP4) + 1)),  # bound parameters are part of the signature
        with_query(ticket["url"], type="video/webm"),
        with_query(ticket["url"], exp=str(int(query["exp"]) + 3600)),
        ticket["url"].replace(ticket["upload_id"], str(uuid.uuid4())),  # another upload's path
    ]
    for url in tampered:
        response = await put_local(client, ticket | {"url": url}, MP4)
        assert_envelope(response, 403, "forbidden")
    assert not stored_path(app, key).exists()

    short = await ticket_for(client, auth, expires_in=1)
    await asyncio.sleep(2.1)
    assert_envelope(await put_local(client, short, MP4), 403, "forbidden")
    assert not stored_path(app, (await upload_row(short["upload_id"]))["storage_key"]).exists()
    # the untampered URL still works after all those refusals
    assert (await put_local(client, ticket, MP4)).status_code == 200


async def test_the_signed_url_is_single_use_even_under_concurrency(app, client, auth):
    ticket = await ticket_for(client, auth)
    first_chunk_sent, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield MP4[:100]
        first_chunk_sent.set()
        await release.wait()
        yield MP4[100:]

    slow = asyncio.create_task(client.put(local_target(ticket["url"]), content=slow_body(),
                                          headers=ticket["headers"]))
    await asyncio.wait_for(first_chunk_sent.wait(), 10)
    concurrent = await put_local(client, ticket, MP4)
    assert_envelope(concurrent, 409, "conflict")  # the first PUT holds the upload
    release.set()
    assert (await slow).status_code == 200
    assert_envelope(await put_local(client, ticket, MP4), 409, "conflict")  # and used it up
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert stored_path(app, key).read_bytes() == MP4


async def test_wrong_headers_are_refused_before_the_body(app, client, auth):
    ticket = await ticket_for(client, auth)
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert_envelope(await put_local(client, ticket, MP4[:-1], **{"Content-Length": str(len(MP4) - 1)}),
                    422, "validation_failed")
    assert_envelope(await put_local(client, ticket, MP4 + b"x", **{"Content-Length": str(len(MP4) + 1)}),
                    413, "payload_too_large")
    assert_envelope(await put_local(client, ticket, MP4, **{"Content-Type": "video/webm"}),
                    415, "unsupported_media_type")

    async def unsized() -> AsyncIterator[bytes]:
        yield MP4

    response = await client.put(local_target(ticket["url"]), content=unsized(),
                                headers={"Content-Type": "video/mp4"})  # chunked: no Content-Length
    assert_envelope(response, 411, "length_required")
    assert not stored_path(app, key).exists()
    assert (await put_local(client, ticket, MP4)).status_code == 200  # refusals did not use the URL up


async def test_a_body_longer_than_the_bound_size_is_413_and_nothing_is_kept(app, client, auth):
    data = MP4 + os.urandom(6 * MiB)  # over the 5 MiB part size: the streamed (multipart) write path
    ticket = await ticket_for(client, auth, data)
    key = (await upload_row(ticket["upload_id"]))["storage_key"]

    async def body_with_extra() -> AsyncIterator[bytes]:  # lies: Content-Length says len(data), sends more
        for offset in range(0, len(data), MiB):
            yield data[offset:offset + MiB]
        yield b"one byte too many"

    response = await client.put(local_target(ticket["url"]), content=body_with_extra(), headers=ticket["headers"])
    assert_envelope(response, 413, "payload_too_large")
    path = stored_path(app, key)
    assert not path.exists()
    assert not list(path.parent.glob("*")) if path.parent.exists() else True  # no staging parts left either
    assert "put" not in (await upload_row(ticket["upload_id"]))["metadata"]
    assert (await put_local(client, ticket, data)).status_code == 200


# --- confirm, abort, expiry ---------------------------------------------------------------------------------------


async def test_confirm_rejects_bytes_the_profile_does_not_allow_and_removes_them(app, client, auth):
    ticket = await ticket_for(client, auth, PNG)  # PNG bytes named answer.mp4, declared video/mp4
    assert (await put_local(client, ticket, PNG)).status_code == 200
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert stored_path(app, key).exists()
    error = assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                            415, "unsupported_media_type")
    assert error["details"]["sniffed"] == "image/png"
    assert not stored_path(app, key).exists()
    row = await upload_row(ticket["upload_id"])
    assert row["status"] == "failed" and row["metadata"]["error"]["code"] == "unsupported_media_type"
    assert await AssetRow.count().where(AssetRow.id == uuid.UUID(ticket["asset_id"])) == 0
    assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                    409, "conflict")


async def test_confirm_rejects_a_wrong_size_and_removes_the_object(app, client, auth):
    ticket = await ticket_for(client, auth)
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    await app.state.services.storage.put(key, MP4 + b"tail")  # bytes that did not come through the bound PUT
    error = assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                            422, "validation_failed")
    assert error["details"] == {"declared": len(MP4), "actual": len(MP4) + 4}
    assert not stored_path(app, key).exists()
    assert (await upload_row(ticket["upload_id"]))["status"] == "failed"


async def test_concurrent_confirms_make_one_asset(client, auth):
    ticket = await ticket_for(client, auth)
    assert (await put_local(client, ticket, MP4)).status_code == 200
    responses = await asyncio.gather(*[
        client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth) for _ in range(5)])
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and set(statuses) <= {200, 409}, [r.text for r in responses]
    assert {r.json()["asset_id"] for r in responses if r.status_code == 200} == {ticket["asset_id"]}
    assert await AssetRow.count().where(AssetRow.id == uuid.UUID(ticket["asset_id"])) == 1
    events = await EventRow.select(EventRow.payload).where(EventRow.type == MEDIA_UPLOADED).output(load_json=True)
    assert sum(e["payload"]["asset_id"] == ticket["asset_id"] for e in events) == 1
    again = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    assert again.status_code == 200 and again.json()["asset_id"] == ticket["asset_id"]


async def test_confirm_before_the_bytes_arrive_is_409_and_changes_nothing(client, auth):
    ticket = await ticket_for(client, auth)
    assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                    409, "conflict")
    assert (await upload_row(ticket["upload_id"]))["status"] == "uploading"
    assert (await put_local(client, ticket, MP4)).status_code == 200
    assert (await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)).status_code == 200


async def test_abort_removes_what_was_written(app, client, auth):
    ticket = await ticket_for(client, auth)
    assert (await put_local(client, ticket, MP4)).status_code == 200
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert stored_path(app, key).exists()
    response = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/abort", headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "aborted"
    assert not stored_path(app, key).exists()
    assert (await client.post(f"/api/v1/uploads/{ticket['upload_id']}/abort", headers=auth)).status_code == 200
    assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                    409, "conflict")
    unused = await ticket_for(client, auth)
    assert (await client.post(f"/api/v1/uploads/{unused['upload_id']}/abort", headers=auth)).status_code == 200
    assert_envelope(await put_local(client, unused, MP4), 409, "conflict")  # its URL is dead
    assert not stored_path(app, (await upload_row(unused["upload_id"]))["storage_key"]).exists()

    done = await ticket_for(client, auth)
    assert (await put_local(client, done, MP4)).status_code == 200
    assert (await client.post(f"/api/v1/uploads/{done['upload_id']}/confirm", headers=auth)).status_code == 200
    assert_envelope(await client.post(f"/api/v1/uploads/{done['upload_id']}/abort", headers=auth), 409, "conflict")
    assert stored_path(app, (await upload_row(done["upload_id"]))["storage_key"]).exists()  # the asset's original


async def test_expiry_marks_unconfirmed_uploads_expired_and_deletes_their_objects(app, client, auth):
    stale = await ticket_for(client, auth)
    fresh = await ticket_for(client, auth)
    confirmed = await ticket_for(client, auth)
    for ticket in (stale, fresh, confirmed):
        assert (await put_local(client, ticket, MP4)).status_code == 200
    assert (await client.post(f"/api/v1/uploads/{confirmed['upload_id']}/confirm", headers=auth)).status_code == 200
    past = datetime.now(timezone.utc) - timedelta(seconds=presigned.CONFIRM_GRACE_SECONDS + 60)
    for ticket in (stale, confirmed):
        await UploadRow.update({UploadRow.expires_at: past}).where(UploadRow.id == uuid.UUID(ticket["upload_id"]))

    result = await presigned.expire_presigned_uploads({"storage": app.state.services.storage})
    assert result["expired"] >= 1
    stale_row, fresh_row, confirmed_row = [await upload_row(t["upload_id"]) for t in (stale, fresh, confirmed)]
    assert stale_row["status"] == "expired" and not stored_path(app, stale_row["storage_key"]).exists()
    assert fresh_row["status"] == "uploading" and stored_path(app, fresh_row["storage_key"]).exists()
    assert confirmed_row["status"] == "complete" and stored_path(app, confirmed_row["storage_key"]).exists()
    assert_envelope(await client.post(f"/api/v1/uploads/{stale['upload_id']}/confirm", headers=auth),
                    409, "conflict")
    await presigned.expire_presigned_uploads({"storage": app.state.services.storage})  # re-running is harmless
    assert (await upload_row(stale["upload_id"]))["status"] == "expired"
    assert (await upload_row(fresh["upload_id"]))["status"] == "uploading"


async def test_confirm_after_the_grace_period_is_refused(app, client, auth):
    ticket = await ticket_for(client, auth)
    assert (await put_local(client, ticket, MP4)).status_code == 200
    past = datetime.now(timezone.utc) - timedelta(seconds=presigned.CONFIRM_GRACE_SECONDS + 5)
    await UploadRow.update({UploadRow.expires_at: past}).where(UploadRow.id == uuid.UUID(ticket["upload_id"]))
    error = assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                            409, "conflict")
    assert error["details"]["status"] == "expired"


# --- initiate validation and the uploads view ---------------------------------------------------------------------


async def test_initiate_validates_before_anything_is_reserved(client, auth):
    before = await UploadRow.count()
    assert_envelope(await initiate(client, auth, profile="nope"), 422, "validation_failed")
    assert_envelope(await initiate(client, auth, file_name="virus.exe"), 415, "unsupported_media_type")
    assert_envelope(await initiate(client, auth, size_bytes=501 * MiB), 413, "payload_too_large")
    assert_envelope(await initiate(client, auth, size_bytes=0), 422, "validation_failed")
    assert_envelope(await initiate(client, auth, size_bytes=-5), 422, "validation_failed")
    assert_envelope(await initiate(client, auth, content_type="text/html"), 415, "unsupported_media_type")
    assert_envelope(await initiate(client, auth, file_name="a.png", profile="avatar", content_type="image/svg+xml"),
                    415, "unsupported_media_type")
    assert_envelope(await initiate(client, auth, content_type="video/mp4\r\nX-Evil: 1"), 422, "validation_failed")
    assert_envelope(await initiate(client, auth, expires_in=3601), 422, "validation_failed")
    assert_envelope(await initiate(client, auth, expires_in=0), 422, "validation_failed")
    assert_envelope(await initiate(client, auth, unknown_field=1), 422, "validation_failed")
    response = await client.post("/api/v1/uploads", content=b"{not json", headers=auth | {
        "Content-Type": "application/json"})
    assert_envelope(response, 400, "bad_request")
    assert_envelope(await client.post("/api/v1/uploads", json={}), 401, "unauthorized")
    assert await UploadRow.count() == before


async def test_file_names_are_sanitized_and_never_paths(client, auth):
    ticket = await ticket_for(client, auth, file_name="../../etc/passwd.mp4")
    row = await upload_row(ticket["upload_id"])
    assert row["original_name"] == "passwd.mp4"
    assert ".." not in row["storage_key"] and "passwd" not in row["storage_key"]


async def test_get_upload_is_scoped_to_the_tenant(client, auth):
    ticket = await ticket_for(client, auth)
    own = await client.get(f"/api/v1/uploads/{ticket['upload_id']}", headers=auth)
    assert own.status_code == 200
    assert set(own.json()) >= {"id", "method", "status", "profile", "offset", "length", "asset_id",
                               "expires_at", "created_at"}
    other_key, _ = await create_api_key(f"other-{uuid.uuid4().hex[:6]}")
    other = {"Authorization": f"Bearer {other_key}"}
    for path in ("", "/confirm", "/abort"):
        call = client.get if not path else client.post
        assert_envelope(await call(f"/api/v1/uploads/{ticket['upload_id']}{path}", headers=other), 404, "not_found")
    assert_envelope(await client.get(f"/api/v1/uploads/{uuid.uuid4()}", headers=auth), 404, "not_found")
    assert (await upload_row(ticket["upload_id"]))["status"] == "uploading"  # the other tenant changed nothing


async def test_get_upload_shows_tus_rows_and_confirm_refuses_them(client, auth):
    ticket = await ticket_for(client, auth)  # borrow the tenant id from a presigned row
    tenant = (await upload_row(ticket["upload_id"]))["tenant"]
    tus = UploadRow(tenant=tenant, method="tus", profile="video_response", status="uploading",
                    original_name="a.mp4", content_type="video/mp4", offset=1234, length=5000,
                    storage_key="x/y/original.mp4")
    await tus.save()
    view = (await client.get(f"/api/v1/uploads/{tus.id}", headers=auth)).json()
    assert (view["method"], view["offset"], view["length"]) == ("tus", 1234, 5000)
    assert_envelope(await client.post(f"/api/v1/uploads/{tus.id}/confirm", headers=auth), 409, "conflict")
    assert_envelope(await client.post(f"/api/v1/uploads/{tus.id}/abort", headers=auth), 409, "conflict")


# --- S3 backend (SeaweedFS) ---------------------------------------------------------------------------------------


@pytest.fixture
async def s3_app(make_settings, s3_server: S3Server):  # noqa: F811
    storage = {f"storage.{k.removeprefix('MEDIASVC_STORAGE__').lower()}": v for k, v in s3_server.env().items()}
    app = create_app(make_settings(**storage))
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"s3-{uuid.uuid4().hex[:8]}")
        yield app, http, {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def s3_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield http


async def test_s3_presigned_put_and_confirm(s3_app, s3_http, s3_server):  # noqa: F811
    _app, client, auth = s3_app
    ticket = await ticket_for(client, auth)
    assert ticket["mode"] == "single"
    assert ticket["url"].startswith(s3_server.endpoint) and "X-Amz-Signature=" in ticket["url"]
    assert ticket["headers"] == {"Content-Type": "video/mp4"}
    put = await s3_http.put(ticket["url"], content=MP4, headers=ticket["headers"])  # plain HTTP, no SDK
    assert put.status_code == 200, put.text
    confirmed = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    assert confirmed.status_code == 200, confirmed.text
    asset = await AssetRow.select().where(AssetRow.id == uuid.UUID(ticket["asset_id"])).first()
    assert (asset["size_bytes"], asset["sha256"]) == (len(MP4), hashlib.sha256(MP4).hexdigest())
    stored = await obstore.get_async(s3_server.store(), asset["storage_key"])
    assert bytes(await stored.bytes_async()) == MP4


async def test_s3_tampered_and_expired_urls_are_refused(s3_app, s3_http, s3_server):  # noqa: F811
    app, client, auth = s3_app
    ticket = await ticket_for(client, auth)
    signature = dict(parse_qsl(urlsplit(ticket["url"]).query))["X-Amz-Signature"]
    tampered = with_query(ticket["url"], **{"X-Amz-Signature": flip_last_char(signature)})
    assert (await s3_http.put(tampered, content=MP4, headers=ticket["headers"])).status_code == 403
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert await app.state.services.storage.head(key) is None

    short = await ticket_for(client, auth, expires_in=1)
    await asyncio.sleep(2.1)
    assert (await s3_http.put(short["url"], content=MP4, headers=short["headers"])).status_code == 403
    assert await app.state.services.storage.head((await upload_row(short["upload_id"]))["storage_key"]) is None


async def test_s3_confirm_rejects_a_wrong_size_and_removes_the_object(s3_app, s3_http):
    app, client, auth = s3_app
    ticket = await ticket_for(client, auth)
    assert (await s3_http.put(ticket["url"], content=MP4 + b"extra bytes", headers=ticket["headers"])).is_success
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert await app.state.services.storage.head(key) is not None
    assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                    422, "validation_failed")
    assert await app.state.services.storage.head(key) is None
    assert (await upload_row(ticket["upload_id"]))["status"] == "failed"


async def test_s3_confirm_rejects_png_bytes_named_mp4(s3_app, s3_http):
    app, client, auth = s3_app
    ticket = await ticket_for(client, auth, PNG)
    assert (await s3_http.put(ticket["url"], content=PNG, headers=ticket["headers"])).is_success
    assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth),
                    415, "unsupported_media_type")
    assert await app.state.services.storage.head((await upload_row(ticket["upload_id"]))["storage_key"]) is None


async def test_s3_presigned_multipart(s3_app, s3_http, monkeypatch):
    _app, client, auth = s3_app
    monkeypatch.setattr(presigned, "MULTIPART_THRESHOLD_BYTES", 6 * MiB)
    monkeypatch.setattr(presigned, "MULTIPART_PART_BYTES", 5 * MiB)
    data = MP4 + os.urandom(12 * MiB)
    ticket = await ticket_for(client, auth, data)
    assert ticket["mode"] == "multipart" and ticket["url"] is None
    assert [p["part_number"] for p in ticket["parts"]] == [1, 2, 3]
    assert sum(p["length"] for p in ticket["parts"]) == len(data)
    first, *rest = ticket["parts"]
    assert (await s3_http.put(first["url"], content=data[first["offset"]:first["offset"] + first["length"]]))\
        .status_code == 200
    # a part URL is bound to its part number and upload id
    forged = with_query(first["url"], partNumber="2")
    assert (await s3_http.put(forged, content=b"x" * 10)).status_code == 403
    assert_envelope(await client.post(f"/api/v1/uploads/{ticket['upload_id']}/complete-multipart", headers=auth),
                    409, "conflict")  # parts 2 and 3 are missing
    for part in rest:
        chunk = data[part["offset"]:part["offset"] + part["length"]]
        assert (await s3_http.put(part["url"], content=chunk)).status_code == 200
    completed = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/complete-multipart", headers=auth)
    assert completed.status_code == 200, completed.text
    confirmed = await client.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert confirmed.json()["size_bytes"] == len(data)


async def test_s3_multipart_abort_discards_the_parts(s3_app, s3_http, monkeypatch):
    app, client, auth = s3_app
    monkeypatch.setattr(presigned, "MULTIPART_THRESHOLD_BYTES", 6 * MiB)
    monkeypatch.setattr(presigned, "MULTIPART_PART_BYTES", 5 * MiB)
    data = MP4 + os.urandom(7 * MiB)
    ticket = await ticket_for(client, auth, data)
    first = ticket["parts"][0]
    assert (await s3_http.put(first["url"], content=data[:first["length"]])).status_code == 200
    assert (await client.post(f"/api/v1/uploads/{ticket['upload_id']}/abort", headers=auth)).status_code == 200
    row = await upload_row(ticket["upload_id"])
    s3 = presigned.S3Multipart.for_storage(app.state.services.storage)
    assert await s3.list_parts(row["storage_key"], row["metadata"]["multipart"]["upload_id"]) is None
    second = ticket["parts"][1]
    response = await s3_http.put(second["url"], content=data[second["offset"]:])
    assert response.status_code == 404  # NoSuchUpload: the part URLs are dead


async def test_s3_object_rewritten_after_abort_is_swept_after_expiry(s3_app, s3_http):
    app, client, auth = s3_app
    ticket = await ticket_for(client, auth)
    assert (await client.post(f"/api/v1/uploads/{ticket['upload_id']}/abort", headers=auth)).status_code == 200
    # S3 cannot revoke a presigned URL: a PUT after the abort still lands...
    assert (await s3_http.put(ticket["url"], content=MP4, headers=ticket["headers"])).is_success
    key = (await upload_row(ticket["upload_id"]))["storage_key"]
    assert await app.state.services.storage.head(key) is not None
    result = await presigned.expire_presigned_uploads({"storage": app.state.services.storage})
    assert await app.state.services.storage.head(key) is not None  # (not before the URL has expired)
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    await UploadRow.update({UploadRow.expires_at: past}).where(UploadRow.id == uuid.UUID(ticket["upload_id"]))
    result = await presigned.expire_presigned_uploads({"storage": app.state.services.storage})
    assert result["swept"] >= 1
    assert await app.state.services.storage.head(key) is None  # ...and is removed once the URL is dead
    row = await upload_row(ticket["upload_id"])
    assert row["status"] == "aborted" and row["metadata"]["swept"] is True
