"""The local and memory storage backends: streaming, ranges, listing, key safety and signed serve URLs."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from mediasvc_storage import plugin
from mediasvc_storage.local import LocalBackend, MemoryBackend

from mediasvc.contracts import StorageBackend
from mediasvc.errors import BadRequest, ConfigurationError, NotFound, ServiceUnavailable
from mediasvc.settings import Settings, load_settings
from mediasvc.signing import verify_path

SECRET = "local-storage-test-secret"
BASE_URL = "https://media.example.test"
MiB = 1024 * 1024

BAD_KEYS = [
    "../escape", "a/../../escape", "/etc/passwd", "a\\b", "a\x00b", "", "a//b", "a/./b", "a/", "a/\nb",
]


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings(env={}, data_dir=str(data_dir), secret_key=SECRET, base_url=BASE_URL, **overrides)


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def local(local_settings: Settings) -> LocalBackend:
    return LocalBackend.from_settings(local_settings)


@pytest.fixture(params=["local", "memory"])
def backend(request: pytest.FixtureRequest, local_settings: Settings) -> StorageBackend:
    cls = {"local": LocalBackend, "memory": MemoryBackend}[request.param]
    return cls.from_settings(local_settings)


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


async def collect(backend: StorageBackend, key: str, **kwargs: int | None) -> bytes:
    return b"".join([chunk async for chunk in backend.get_stream(key, **kwargs)])


# --- registration -------------------------------------------------------------------------------------------


def test_plugin_registers_every_backend_by_name() -> None:
    classes = plugin.register_storage_backends()
    assert {cls.name: cls for cls in classes}.keys() == {"local", "memory", "s3", "gcs", "azure"}
    assert all(issubclass(cls, StorageBackend) for cls in classes)
    assert "mediasvc_storage.plugin" in {ep.value for ep in entry_points(group="mediasvc")}


# --- local files --------------------------------------------------------------------------------------------


async def test_default_root_is_data_dir_storage_created_on_first_use(tmp_path: Path) -> None:
    backend = LocalBackend.from_settings(make_settings(tmp_path / "data"))
    root = tmp_path / "data" / "storage"
    assert backend.root == root.resolve()
    assert not root.exists()  # building the backend touches nothing
    await backend.put("t1/video/a/original.mp4", b"hello", content_type="video/mp4")  # content type ignored
    assert (root / "t1/video/a/original.mp4").read_bytes() == b"hello"
    assert backend.local_path("t1/video/a/original.mp4") == (root / "t1/video/a/original.mp4").resolve()


async def test_configured_root_is_used(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", **{"storage.root": str(tmp_path / "r")})
    backend = LocalBackend.from_settings(settings)
    await backend.put("k", b"x")
    assert (tmp_path / "r" / "k").read_bytes() == b"x"


def test_root_that_is_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(ConfigurationError, match="MEDIASVC_STORAGE__ROOT"):
        LocalBackend.from_settings(make_settings(tmp_path, **{"storage.root": str(tmp_path / "file")}))


async def test_streamed_put_round_trips_multi_mib(backend: StorageBackend) -> None:
    data = os.urandom(12 * MiB + 12345)
    info = await backend.put("t1/video/big/original.mp4", chunked(data, 700 * 1024), content_type="video/mp4")
    assert info.key == "t1/video/big/original.mp4"
    assert info.size == len(data)
    chunks = [chunk async for chunk in backend.get_stream("t1/video/big/original.mp4")]
    assert len(chunks) > 1 and max(map(len, chunks)) < 4 * MiB  # streamed, not read whole
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()
    head = await backend.head("t1/video/big/original.mp4")
    assert head is not None and head.size == len(data) and head.etag


@pytest.mark.parametrize("payload_size", [0, 1, 5 * MiB, 5 * MiB + 1])
async def test_put_sizes_at_the_multipart_boundary(backend: StorageBackend, payload_size: int) -> None:
    data = os.urandom(payload_size)
    streamed = await backend.put("s/streamed", chunked(data, MiB))
    whole = await backend.put("s/whole", data)
    assert streamed.size == whole.size == payload_size
    assert await backend.get_bytes("s/streamed") == data
    assert await backend.get_bytes("s/whole") == data


async def test_put_replaces_existing_object(backend: StorageBackend) -> None:
    await backend.put("k/a", b"first version, longer")
    await backend.put("k/a", b"second")
    assert await backend.get_bytes("k/a") == b"second"
    assert (await backend.head("k/a")).size == 6  # type: ignore[union-attr]


async def test_failed_stream_leaves_no_object(backend: StorageBackend) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(6 * MiB)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await backend.put("k/partial", broken())
    assert await backend.head("k/partial") is None
    assert [info.key async for info in backend.list("k/")] == []


async def test_put_rejects_a_non_byte_source(backend: StorageBackend) -> None:
    with pytest.raises(TypeError):
        await backend.put("k", "text is not bytes")  # type: ignore[arg-type]


RANGE_SIZE = 100_000


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, None), (0, 1), (10, 20), (1, RANGE_SIZE), (RANGE_SIZE - 1, None),
        (RANGE_SIZE - 5, RANGE_SIZE + 100),
        (50_000, None), (RANGE_SIZE, None), (RANGE_SIZE + 10, RANGE_SIZE + 20), (7, 7), (9, 3),
    ],
)
async def test_ranged_reads_match_slicing(backend: StorageBackend, start: int, end: int | None) -> None:
    data = os.urandom(RANGE_SIZE)
    await backend.put("r/obj", data)
    assert await collect(backend, "r/obj", start=start, end=end) == data[start:end]


async def test_negative_range_is_bad_request(backend: StorageBackend) -> None:
    await backend.put("r/obj", b"abc")
    with pytest.raises(BadRequest):
        await collect(backend, "r/obj", start=-1)


@pytest.mark.parametrize(("start", "end"), [(0, None), (5, 10), (5, None), (3, 3)])
async def test_missing_key_raises_not_found(backend: StorageBackend, start: int, end: int | None) -> None:
    with pytest.raises(NotFound):
        await collect(backend, "no/such/key", start=start, end=end)
    assert await backend.head("no/such/key") is None
    await backend.delete("no/such/key")  # no error


async def test_head_list_delete(backend: StorageBackend) -> None:
    keys = {
        "t1/video/a/original.mp4": 3, "t1/video/ab/original.mp4": 4, "t1/image/c/original.png": 5, "t2/x": 6,
    }
    for key, size in keys.items():
        await backend.put(key, os.urandom(size))

    async def listed(prefix: str) -> dict[str, int]:
        return {info.key: info.size async for info in backend.list(prefix)}

    assert await listed("") == keys
    assert await listed("t1/video/a") == {"t1/video/a/original.mp4": 3, "t1/video/ab/original.mp4": 4}
    assert await listed("t1/video/a/") == {"t1/video/a/original.mp4": 3}
    assert await listed("t1/") == {k: v for k, v in keys.items() if k.startswith("t1/")}
    assert await listed("t3") == {}
    info = await backend.head("t2/x")
    assert info is not None and info.size == 6 and info.last_modified is not None

    await backend.delete("t1/video/a/original.mp4")
    assert await backend.head("t1/video/a/original.mp4") is None
    assert "t1/video/a/original.mp4" not in await listed("")
    await backend.delete("t1/video/a/original.mp4")  # deleting twice is fine


# --- key safety ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused_everywhere(backend: StorageBackend, key: str) -> None:
    with pytest.raises(BadRequest):
        await backend.put(key, b"x")
    with pytest.raises(BadRequest):
        await collect(backend, key)
    with pytest.raises(BadRequest):
        await backend.head(key)
    with pytest.raises(BadRequest):
        await backend.delete(key)
    with pytest.raises(BadRequest):
        await backend.presign(key)


@pytest.mark.parametrize("prefix", ["../", "/abs", "a/../b", "a\\b", "a//"])
async def test_bad_list_prefixes_are_refused(backend: StorageBackend, prefix: str) -> None:
    with pytest.raises(BadRequest):
        [info async for info in backend.list(prefix)]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_local_path_refuses_escaping_keys(local: LocalBackend, key: str) -> None:
    with pytest.raises(BadRequest):
        local.local_path(key)


async def test_local_path_refuses_symlinks_out_of_the_root(local: LocalBackend, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    await local.check()  # creates the root
    (local.root / "link").symlink_to(outside)
    with pytest.raises(BadRequest, match="escapes"):
        local.local_path("link/secret")


async def test_nothing_is_written_outside_the_root(local: LocalBackend, tmp_path: Path) -> None:
    for key in ("../escaped", "../../escaped"):
        with pytest.raises(BadRequest):
            await local.put(key, b"x")
    assert not any(path.name == "escaped" for path in tmp_path.rglob("*"))


async def test_local_refuses_keys_that_collide_with_staging_files(local: LocalBackend) -> None:
    with pytest.raises(BadRequest):
        await local.put("a/b#1", b"x")
    await local.put("a/b#x", b"fine")
    assert await local.get_bytes("a/b#x") == b"fine"


# --- signed serve URLs --------------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}", unquote(parts.path), dict(parse_qsl(parts.query))


async def test_presigned_url_verifies_and_tampering_does_not(backend: StorageBackend) -> None:
    await backend.put("t1/video/a/original.mp4", b"x")
    origin, path, query = split_url(await backend.presign("t1/video/a/original.mp4", expires_in=60))
    assert origin == BASE_URL
    assert path == "/media/serve/t1/video/a/original.mp4"
    assert verify_path(SECRET, path, query)
    assert not verify_path(SECRET, path, query, method="PUT")
    assert not verify_path("another-secret", path, query)
    assert not verify_path(SECRET, "/media/serve/t1/video/b/original.mp4", query)
    assert not verify_path(SECRET, path, {**query, "exp": str(int(query["exp"]) + 3600)})
    assert not verify_path(SECRET, path, {**query, "sig": query["sig"][:-2] + "AA"})
    assert not verify_path(SECRET, path, query, now=int(query["exp"]) + 1)  # expired


async def test_presigned_put_url_is_bound_to_put(backend: StorageBackend) -> None:
    _, path, query = split_url(await backend.presign("up/file.bin", method="put", expires_in=60))
    assert verify_path(SECRET, path, query, method="PUT")
    assert not verify_path(SECRET, path, query, method="GET")


async def test_presigned_url_percent_encodes_the_key(backend: StorageBackend) -> None:
    url = await backend.presign("t1/my file #2.mp4")
    assert "/media/serve/t1/my%20file%20%232.mp4?" in url
    _, path, query = split_url(url)
    assert verify_path(SECRET, path, query)


@pytest.mark.parametrize(("method", "expires_in"), [("DELETE", 60), ("GET", 0), ("GET", 8 * 24 * 3600)])
async def test_presign_refuses_bad_arguments(backend: StorageBackend, method: str, expires_in: int) -> None:
    with pytest.raises(BadRequest):
        await backend.presign("k", method=method, expires_in=expires_in)


async def test_presign_without_secret_key_is_a_configuration_error(tmp_path: Path) -> None:
    backend = LocalBackend.from_settings(load_settings(env={}, data_dir=str(tmp_path)))
    with pytest.raises(ConfigurationError, match="MEDIASVC_SECRET_KEY"):
        await backend.presign("k")


# --- health -------------------------------------------------------------------------------------------------


async def test_check_creates_the_root_and_leaves_it_empty(local: LocalBackend) -> None:
    assert not local.root.exists()
    await local.check()
    assert local.root.is_dir() and list(local.root.iterdir()) == []


async def test_check_fails_when_the_root_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("blocks the directory")
    settings = make_settings(tmp_path, **{"storage.root": str(tmp_path / "file/sub")})
    backend = LocalBackend.from_settings(settings)
    with pytest.raises(ServiceUnavailable):
        await backend.check()


async def test_memory_backend_is_not_local_and_checks_fine(local_settings: Settings) -> None:
    backend = MemoryBackend.from_settings(local_settings)
    await backend.check()
    assert backend.local_path("k") is None
    await backend.close()
