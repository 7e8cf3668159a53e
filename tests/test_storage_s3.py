"""The s3 backend against a real SeaweedFS (signatures checked), and the object-store settings errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import obstore
import pytest
from mediasvc_storage.object_stores import AzureBackend, GCSBackend, S3Backend
from obstore.exceptions import PermissionDeniedError

from mediasvc.errors import BadRequest, ConfigurationError, NotFound, ServiceUnavailable
from mediasvc.settings import Settings, load_settings
from tests.s3_server import S3Server, s3_server  # noqa: F401 (the fixture)

MiB = 1024 * 1024


@pytest.fixture
def s3(s3_server: S3Server) -> S3Backend:  # noqa: F811
    return S3Backend.from_settings(s3_server.settings())


@pytest.fixture
def prefix() -> str:
    """Tests share one bucket: each works under its own prefix."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- data path ----------------------------------------------------------------------------------------------


async def test_streamed_multipart_put_and_get(s3: S3Backend, prefix: str, s3_server: S3Server) -> None:  # noqa: F811
    key = f"{prefix}/video/original.mp4"
    data = os.urandom(12 * MiB + 777)
    info = await s3.put(key, chunked(data, 1 * MiB), content_type="video/mp4")
    assert info.size == len(data)
    assert info.etag and "-" in info.etag  # S3 multipart etags end in -<parts>
    chunks = [chunk async for chunk in s3.get_stream(key)]
    assert len(chunks) > 1
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()
    stored = await obstore.get_async(s3_server.store(), key)
    assert stored.attributes.get("Content-Type") == "video/mp4"


async def test_small_put_is_a_single_request(s3: S3Backend, prefix: str) -> None:
    data = os.urandom(100_000)
    streamed = await s3.put(f"{prefix}/streamed", chunked(data, 30_000))
    whole = await s3.put(f"{prefix}/whole", data)
    assert streamed.etag == whole.etag == f'"{hashlib.md5(data).hexdigest()}"'  # plain PUT etag is the MD5
    empty = await s3.put(f"{prefix}/empty", chunked(b"", 1))
    assert empty.size == 0 and await s3.get_bytes(f"{prefix}/empty") == b""


SIZE = 300_000


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 1), (1000, 2000), (SIZE - 1, None), (SIZE - 10, SIZE + 500), (SIZE, None),
     (SIZE + 5, SIZE + 10), (4, 4)],
)
async def test_ranged_get(s3: S3Backend, prefix: str, start: int, end: int | None) -> None:
    data = os.urandom(SIZE)
    await s3.put(f"{prefix}/obj", data)
    got = b"".join([chunk async for chunk in s3.get_stream(f"{prefix}/obj", start=start, end=end)])
    assert got == data[start:end]


async def test_missing_key(s3: S3Backend, prefix: str) -> None:
    with pytest.raises(NotFound):
        await s3.get_bytes(f"{prefix}/missing")
    with pytest.raises(NotFound):
        await s3.get_bytes(f"{prefix}/missing", start=10, end=20)
    assert await s3.head(f"{prefix}/missing") is None
    await s3.delete(f"{prefix}/missing")


async def test_list_head_delete(s3: S3Backend, prefix: str) -> None:
    sizes = {f"{prefix}/video/a/x": 1, f"{prefix}/video/ab/y": 2, f"{prefix}/image/z": 3}
    for key, size in sizes.items():
        await s3.put(key, os.urandom(size))
    assert {i.key: i.size async for i in s3.list(prefix)} == sizes
    expected = {f"{prefix}/video/a/x", f"{prefix}/video/ab/y"}
    assert {i.key async for i in s3.list(f"{prefix}/video/a")} == expected
    assert {i.key async for i in s3.list(f"{prefix}/video/a/")} == {f"{prefix}/video/a/x"}
    head = await s3.head(f"{prefix}/image/z")
    assert head is not None and head.size == 3 and head.etag and head.last_modified is not None
    await s3.delete(f"{prefix}/image/z")
    assert await s3.head(f"{prefix}/image/z") is None
    assert {i.key async for i in s3.list(prefix)} == set(sizes) - {f"{prefix}/image/z"}


async def test_failed_stream_leaves_no_object(s3: S3Backend, prefix: str) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await s3.put(f"{prefix}/partial", broken())
    assert await s3.head(f"{prefix}/partial") is None


async def test_bad_keys_never_reach_the_server(s3: S3Backend) -> None:
    for key in ("../x", "/x", "a//b", "a\\b"):
        with pytest.raises(BadRequest):
            await s3.put(key, b"x")
        with pytest.raises(BadRequest):
            await s3.presign(key)


# --- presigned URLs -----------------------------------------------------------------------------------------


async def test_presigned_get(s3: S3Backend, prefix: str, http: httpx.AsyncClient) -> None:
    key = f"{prefix}/poster.jpg"
    data = os.urandom(200_000)
    await s3.put(key, data, content_type="image/jpeg")
    url = await s3.presign(key, expires_in=60)
    assert url.startswith(f"{s3.settings.storage.endpoint}/{s3.settings.storage.bucket}/{key}?")
    response = await http.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"

    ranged = await http.get(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == data[10:20]


async def test_tampered_presigned_urls_are_refused(
    s3: S3Backend, prefix: str, http: httpx.AsyncClient
) -> None:
    await s3.put(f"{prefix}/a", b"secret a")
    await s3.put(f"{prefix}/b", b"secret b")
    url = await s3.presign(f"{prefix}/a", expires_in=60)
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    for tampered in (
        with_query(url, **{"X-Amz-Signature": flipped}),
        url.replace(f"{prefix}/a?", f"{prefix}/b?"),  # another key with a's signature
        with_query(url, **{"X-Amz-Expires": "600"}),  # a longer lifetime
    ):
        response = await http.get(tampered)
        assert response.status_code == 403, tampered
        assert b"secret" not in response.content


async def test_expired_presigned_url_is_refused(s3: S3Backend, prefix: str, http: httpx.AsyncClient) -> None:
    await s3.put(f"{prefix}/a", b"x")
    url = await s3.presign(f"{prefix}/a", expires_in=1)
    assert (await http.get(url)).status_code == 200
    await asyncio.sleep(2.1)
    assert (await http.get(url)).status_code == 403


async def test_presigned_put_uploads(s3: S3Backend, prefix: str, http: httpx.AsyncClient) -> None:
    key = f"{prefix}/upload.bin"
    data = os.urandom(1 * MiB + 3)
    url = await s3.presign(key, method="PUT", expires_in=60, content_type="application/octet-stream")
    response = await http.put(url, content=data, headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert await s3.get_bytes(key) == data

    as_get = await http.get(url)  # a PUT signature does not allow reading
    assert as_get.status_code == 403
    other = await http.put(with_query(url, **{"X-Amz-Date": "20200101T000000Z"}), content=b"nope")
    assert other.status_code == 403
    assert await s3.get_bytes(key) == data


# --- health and credentials ---------------------------------------------------------------------------------


async def test_check_passes_against_the_server(s3: S3Backend) -> None:
    await s3.check()


@pytest.mark.parametrize(
    "env",
    [{"MEDIASVC_STORAGE__SECRET_ACCESS_KEY": "wrong-secret"}, {"MEDIASVC_STORAGE__BUCKET": "no-such-bucket"}],
)
async def test_check_fails_on_bad_credentials_or_bucket(s3_server: S3Server, env: dict[str, str]) -> None:  # noqa: F811
    backend = S3Backend.from_settings(s3_server.settings(env))
    with pytest.raises(ServiceUnavailable):
        await backend.check()


async def test_wrong_secret_cannot_write(s3_server: S3Server, prefix: str) -> None:  # noqa: F811
    backend = S3Backend.from_settings(s3_server.settings({"MEDIASVC_STORAGE__SECRET_ACCESS_KEY": "wrong"}))
    with pytest.raises(PermissionDeniedError):
        await backend.put(f"{prefix}/x", b"x")
    with pytest.raises(PermissionDeniedError):  # an auth failure is not "missing"
        await backend.head(f"{prefix}/x")
    assert await S3Backend.from_settings(s3_server.settings()).head(f"{prefix}/x") is None


async def test_check_times_out_on_an_unreachable_endpoint(s3_server: S3Server) -> None:  # noqa: F811
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    backend = S3Backend.from_settings(
        s3_server.settings({"MEDIASVC_STORAGE__ENDPOINT": f"http://127.0.0.1:{closed_port}"})
    )
    backend.check_timeout_seconds = 0.5
    with pytest.raises(ServiceUnavailable):
        await backend.check()


# --- settings errors (no server needed) ---------------------------------------------------------------------


def settings_for(**storage: object) -> Settings:
    return load_settings(env={}, secret_key="x", **{f"storage.{k}": v for k, v in storage.items()})


@pytest.mark.parametrize("backend_cls", [S3Backend, GCSBackend, AzureBackend])
def test_bucket_is_required(backend_cls: type) -> None:
    expected = f"MEDIASVC_STORAGE__BUCKET is required for the {backend_cls.name} backend"
    with pytest.raises(ConfigurationError, match=expected):
        backend_cls.from_settings(settings_for(backend=backend_cls.name))


@pytest.mark.parametrize(
    ("storage", "named"),
    [
        ({"endpoint": "http://127.0.0.1:9000"}, "MEDIASVC_STORAGE__ALLOW_HTTP"),
        ({"endpoint": "127.0.0.1:9000"}, "MEDIASVC_STORAGE__ENDPOINT"),
        ({"access_key_id": "only-the-id"}, "MEDIASVC_STORAGE__SECRET_ACCESS_KEY"),
        ({"secret_access_key": "only-the-secret"}, "MEDIASVC_STORAGE__ACCESS_KEY_ID"),
        ({"options": {"not_an_s3_option": "1"}}, "MEDIASVC_STORAGE__OPTIONS"),
    ],
)
def test_s3_configuration_errors_name_the_setting(storage: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        S3Backend.from_settings(settings_for(backend="s3", bucket="b", **storage))


def test_options_reach_the_store_and_client() -> None:
    backend = S3Backend.from_settings(
        settings_for(backend="s3", bucket="b", region="eu-west-1", path_style=False,
                     options={"timeout": "5s", "server_side_encryption": "AES256"})
    )
    config = backend.store.config
    assert config["region"] == "eu-west-1"
    assert config["virtual_hosted_style_request"] in (True, "true")
    assert config["server_side_encryption"] == "AES256"
    assert backend.store.client_options["timeout"] == "5s"


def test_azure_and_gcs_build_from_settings() -> None:
    azure = AzureBackend.from_settings(
        settings_for(backend="azure", bucket="media", access_key_id="account", secret_access_key="a2V5")
    )
    assert azure.store.config["account_name"] == "account"
    gcs = GCSBackend.from_settings(settings_for(backend="gcs", bucket="media"))
    assert gcs.store.config["bucket"] == "media"
