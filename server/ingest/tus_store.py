"""Where a tus upload's bytes go, and the rule that they are durable before the offset moves.

Two layouts, chosen by the storage backend:

* **Local directory** (``backend.local_path`` gives a file): the request body is written straight into the
  file of the asset's final key at ``Upload-Offset`` and fsynced before the caller commits the new offset. The
  file may hold bytes past the committed offset only after a crash between the write and the commit; the next
  PATCH cuts them off before writing, so what counts is always exactly what the database says.
* **Object store** (S3, GCS, Azure, memory): objects cannot be appended to, and obstore's multipart writer
  lives in one process's memory (the next PATCH may reach another instance). So each PATCH is spooled to a
  temporary file and then stored as one *segment* object (``<tenant>/tus/<upload id>/seg-<offset>``) with an
  S3 multipart upload in ``part_size`` parts read from that file. The segment list is committed with the
  offset. On completion the segments are streamed, in order, into the final key (one multipart upload, sha256
  computed on the way) and deleted. A PATCH that carries the whole file goes straight to the final key.

Memory stays bounded whatever the file size: a write batch of ``WRITE_BATCH`` bytes in flight on the local
disk, the obstore part buffers for object stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from litestar.exceptions import ClientException, InternalServerException

from mediasvc.contracts import StorageBackend
from mediasvc.errors import MediaServiceError, PayloadTooLarge
from mediasvc.ingest.tus_errors import ChecksumMismatch
from mediasvc.ingest.tus_headers import Checksum
from mediasvc.ingest.tus_settings import spool_dir, tus_settings
from mediasvc.settings import Settings

log = logging.getLogger("mediasvc.tus")

WRITE_BATCH = 1024 * 1024  # bytes gathered before one write (pwritev) is handed to a thread
MAX_IOVECS = 512  # stay well under IOV_MAX (1024) per pwritev
READ_CHUNK = 1024 * 1024
HASH_STATES = 1024  # uploads whose running sha256 this process remembers

# Blocking file work (writes, fsync, hashing) runs on threads of its own, never queued behind whatever else
# uses the event loop's default executor.
_io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mediasvc-tus-io")


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_io, functools.partial(fn, *args, **kwargs))


class Segment(msgspec.Struct, array_like=True):
    """One stored run of an upload on an object store: bytes [offset, offset + size) live at ``key``."""

    offset: int
    size: int
    key: str


@dataclass
class Appended:
    received: int  # bytes of this request now durably stored (0 when nothing counts)
    cut: bool  # the body ended before its Content-Length: the client went away
    segments: list[Segment] | None = None  # object stores: the segment list to commit with the new offset
    sha_state: Any = field(default=None, repr=False)  # running sha256 of [0, new offset), when known


class BodyTooLarge(Exception):
    """The body went past what the upload may still receive."""


def tus_prefix(storage_key: str, upload_id: UUID) -> str:
    """Working keys of an upload: ``<tenant>/tus/<upload id>/`` (the tenant is any key's first segment)."""
    return f"{storage_key.split('/', 1)[0]}/tus/{upload_id}/"


def partial_key(tenant_slug: str, upload_id: UUID) -> str:
    """Where a partial upload (concatenation) keeps its bytes: it never becomes an asset by itself."""
    return f"{tenant_slug}/tus/{upload_id}/data"


def segments_of(tus_state: dict[str, Any]) -> list[Segment]:
    return [Segment(*item) for item in tus_state.get("segments", [])]


# --- the running sha256 -------------------------------------------------------------------------------------
# The sha256 of the whole upload is computed as the bytes arrive when the PATCHes of an upload reach the same
# process in order; the state is remembered only after the offset is committed and only used for that exact
# offset. Otherwise (another instance took a PATCH, a restart) the stored bytes are hashed once at completion.

_hash_states: OrderedDict[UUID, tuple[int, Any]] = OrderedDict()


def _sha_state_at(upload_id: UUID, offset: int) -> Any:
    if offset == 0:
        return hashlib.sha256()
    found = _hash_states.get(upload_id)
    return found[1].copy() if found is not None and found[0] == offset else None


def remember_sha_state(upload_id: UUID, offset: int, state: Any) -> None:
    """Call after ``offset`` is committed: the state hashes exactly the bytes [0, offset)."""
    if state is None:
        _hash_states.pop(upload_id, None)
        return
    _hash_states[upload_id] = (offset, state)
    _hash_states.move_to_end(upload_id)
    while len(_hash_states) > HASH_STATES:
        _hash_states.popitem(last=False)


def forget_sha_state(upload_id: UUID) -> None:
    _hash_states.pop(upload_id, None)


def _known_sha(upload_id: UUID, length: int) -> str | None:
    found = _hash_states.get(upload_id)
    return found[1].hexdigest() if found is not None and found[0] == length else None


# --- receiving a body ---------------------------------------------------------------------------------------


def _file_writer(fd: int, position: int, hashers: list[Any]) -> Callable[[list[bytes]], None]:
    """A function, run in a worker thread, that writes a batch of chunks at the running position and hashes
    them. pwritev and hashlib release the GIL: the event loop keeps receiving meanwhile, and concurrent
    uploads hash on as many cores as there are (hashing in the loop would put every upload's sha256 on the
    loop's one core)."""
    where = [position]

    def write(chunks: list[bytes]) -> None:
        size = sum(len(chunk) for chunk in chunks)
        written = os.pwritev(fd, chunks, where[0])
        if written < size:  # short write (rare on regular files): finish it the plain way
            rest = b"".join(chunks)[written:]
            while rest:
                n = os.pwrite(fd, rest, where[0] + written)
                written += n
                rest = rest[n:]
        for hasher in hashers:
            for chunk in chunks:
                hasher.update(chunk)
        where[0] += size

    return write


async def receive_body(stream: AsyncIterator[bytes], write: Callable[[list[bytes]], None], *, max_bytes: int,
                       content_length: int | None) -> tuple[int, bool]:
    """Pump ``stream`` into ``write``, one batch in a thread while the next is received. Returns the bytes
    written and whether the client went away first. Raises ``BodyTooLarge`` past ``max_bytes``; every batch
    handed out has been written when this returns or raises."""
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    batch_size = total = 0
    cut = False
    try:
        try:
            async for chunk in stream:
                if not chunk:
                    continue
                total += len(chunk)
                if total > max_bytes:
                    raise BodyTooLarge(total)
                batch.append(chunk)
                batch_size += len(chunk)
                if batch_size >= WRITE_BATCH or len(batch) >= MAX_IOVECS:
                    if pending is not None:
                        await pending
                    pending = loop.run_in_executor(_io, write, batch)
                    batch, batch_size = [], 0
        except (InternalServerException, ClientException, ConnectionError):
            # Litestar raises InternalServerException("client disconnected prematurely") on http.disconnect.
            cut = True
        if pending is not None:
            done, pending = pending, None
            await done
        if batch:
            await loop.run_in_executor(_io, write, batch)
    finally:
        if pending is not None:  # error or cancellation: the write in flight lands before the caller cleans
            with contextlib.suppress(BaseException):
                await pending
    if content_length is not None and total < content_length:
        cut = True
    return total, cut


def _too_large(max_bytes: int, offset: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The data goes past the {offset + max_bytes} bytes this upload may hold; none of it was kept",
        details={"upload_offset": offset, "max_bytes": offset + max_bytes},
    )


def _check_chunk(checksum: Checksum | None, checker: Any, cut: bool) -> bool:
    """Whether the received bytes may count. Raises 460 on a mismatch of a complete body."""
    if checksum is None:
        return True
    if cut:
        return False  # a cut body cannot be verified against its checksum: none of it counts
    if checker.digest() != checksum.digest:
        raise ChecksumMismatch(
            f"The {checksum.algorithm} checksum of the data does not match Upload-Checksum; it was discarded",
            details={"algorithm": checksum.algorithm},
        )
    return True


# --- the two layouts ----------------------------------------------------------------------------------------


class TusStore:
    """Bytes of uploads on one storage backend. ``row`` arguments are ``uploads`` rows (dicts)."""

    def __init__(self, backend: StorageBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings

    async def append(self, row: dict[str, Any], stream: AsyncIterator[bytes], *, offset: int, max_bytes: int,
                     content_length: int | None, checksum: Checksum | None) -> Appended:
        raise NotImplementedError

    async def read_head(self, row: dict[str, Any], size: int) -> bytes:
        raise NotImplementedError

    async def finalize(self, row: dict[str, Any]) -> tuple[str, list[Segment] | None]:
        """Make the final key hold the whole upload; return its sha256 and the segment list to commit."""
        raise NotImplementedError

    async def concat(self, row: dict[str, Any], partials: list[dict[str, Any]]) -> Any:
        """Write the partial uploads, in order, to ``row``'s key (durably); return the sha256 hasher."""
        raise NotImplementedError

    async def cleanup(self, row: dict[str, Any]) -> None:
        """Remove working objects (segments) that the final key no longer needs."""

    async def discard(self, row: dict[str, Any]) -> None:
        """Remove every byte of the upload."""
        raise NotImplementedError


class LocalTusStore(TusStore):
    """Appends to the final file of a local directory backend."""

    def path(self, row: dict[str, Any]) -> Path:
        path = self.backend.local_path(row["storage_key"])
        assert path is not None
        return path

    async def append(self, row: dict[str, Any], stream: AsyncIterator[bytes], *, offset: int, max_bytes: int,
                     content_length: int | None, checksum: Checksum | None) -> Appended:
        path = self.path(row)
        fd = await _in_thread(_open_at, path, offset)
        try:
            checker = checksum.new_hasher() if checksum else None
            sha = _sha_state_at(row["id"], offset)
            hashers = [h for h in (checker, sha) if h is not None]
            try:
                received, cut = await receive_body(stream, _file_writer(fd, offset, hashers),
                                                   max_bytes=max_bytes, content_length=content_length)
            except BodyTooLarge:
                await _in_thread(os.ftruncate, fd, offset)
                raise _too_large(max_bytes, offset) from None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, offset)
                raise
            try:
                keep = _check_chunk(checksum, checker, cut)
            except ChecksumMismatch:
                await _in_thread(os.ftruncate, fd, offset)
                raise
            if not keep:
                await _in_thread(os.ftruncate, fd, offset)
                return Appended(0, cut)
            await _in_thread(os.fsync, fd)  # durable before the caller moves the offset
            return Appended(received, cut, sha_state=sha)
        finally:
            os.close(fd)

    async def read_head(self, row: dict[str, Any], size: int) -> bytes:
        return await _in_thread(_read_head, self.path(row), size)

    async def finalize(self, row: dict[str, Any]) -> tuple[str, list[Segment] | None]:
        known = _known_sha(row["id"], row["length"])
        if known is not None:
            return known, None
        return await _in_thread(_hash_file, self.path(row)), None

    async def concat(self, row: dict[str, Any], partials: list[dict[str, Any]]) -> Any:
        sources = [self.path(partial) for partial in partials]
        return await _in_thread(_concat_files, self.path(row), sources)

    async def discard(self, row: dict[str, Any]) -> None:
        path = self.path(row)
        await _in_thread(_remove_file, path, getattr(self.backend, "root", path.parent))


class ObjectTusStore(TusStore):
    """Segments on an object store, assembled into the final key at completion."""

    def __init__(self, backend: StorageBackend, settings: Settings) -> None:
        super().__init__(backend, settings)
        self.part_size = tus_settings(settings).part_size

    async def append(self, row: dict[str, Any], stream: AsyncIterator[bytes], *, offset: int, max_bytes: int,
                     content_length: int | None, checksum: Checksum | None) -> Appended:
        segments = segments_of(row["metadata"].get("tus", {}))
        fd, name = await _in_thread(tempfile.mkstemp, prefix="chunk-", dir=spool_dir(self.settings))
        try:
            checker = checksum.new_hasher() if checksum else None
            sha = _sha_state_at(row["id"], offset)
            hashers = [h for h in (checker, sha) if h is not None]
            try:
                received, cut = await receive_body(stream, _file_writer(fd, 0, hashers), max_bytes=max_bytes,
                                                   content_length=content_length)
            except BodyTooLarge:
                raise _too_large(max_bytes, offset) from None
            if not _check_chunk(checksum, checker, cut) or received == 0:
                return Appended(0, cut, segments)
            os.close(fd)
            fd = -1
            whole = offset == 0 and row["length"] is not None and received == row["length"]
            prefix = tus_prefix(row["storage_key"], row["id"])
            key = row["storage_key"] if whole else f"{prefix}seg-{offset:020d}"
            await self._put_file(key, Path(name), received)
            return Appended(received, cut, [*segments, Segment(offset, received, key)], sha_state=sha)
        finally:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)

    async def _put_file(self, key: str, path: Path, size: int) -> None:
        """One object from a spooled file: an S3 multipart upload in ``part_size`` parts once it is bigger
        than a part, read from the file by obstore (no Python buffering); any other backend through ``put``.
        """
        store = getattr(self.backend, "store", None)
        validate = getattr(self.backend, "validate_key", None)
        if store is not None and validate is not None:
            import obstore

            await obstore.put_async(store, validate(key), path, use_multipart=size > self.part_size,
                                    chunk_size=self.part_size, max_concurrency=2)
            return
        await self.backend.put(key, _file_chunks(path))

    def _iter(self, segments: list[Segment]) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for segment in segments:
                async for chunk in self.backend.get_stream(segment.key, end=segment.size):
                    yield chunk

        return chunks()

    async def read_head(self, row: dict[str, Any], size: int) -> bytes:
        head = bytearray()
        for segment in segments_of(row["metadata"].get("tus", {})):
            head += await self.backend.get_bytes(segment.key, end=min(segment.size, size - len(head)))
            if len(head) >= size:
                break
        return bytes(head)

    async def finalize(self, row: dict[str, Any]) -> tuple[str, list[Segment] | None]:
        segments = segments_of(row["metadata"].get("tus", {}))
        key = row["storage_key"]
        if len(segments) == 1 and segments[0].key == key:
            known = _known_sha(row["id"], row["length"])
            return known or await self._hash(segments), None
        sha = await self._assemble(key, segments)
        return sha.hexdigest(), [Segment(0, row["length"], key)]

    async def concat(self, row: dict[str, Any], partials: list[dict[str, Any]]) -> Any:
        segments = [s for partial in partials for s in segments_of(partial["metadata"].get("tus", {}))]
        return await self._assemble(row["storage_key"], segments)

    async def _hash(self, segments: list[Segment]) -> str:
        sha = hashlib.sha256()
        async for chunk in self._iter(segments):
            await _update(sha, chunk)
        return sha.hexdigest()

    async def _assemble(self, key: str, segments: list[Segment]) -> Any:
        sha = hashlib.sha256()

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in self._iter(segments):
                await _update(sha, chunk)
                yield chunk

        await self.backend.put(key, hashed())
        return sha

    async def cleanup(self, row: dict[str, Any]) -> None:
        await self._delete_prefix(row, keep=row["storage_key"])

    async def discard(self, row: dict[str, Any]) -> None:
        await self.backend.delete(row["storage_key"])
        await self._delete_prefix(row, keep=None)

    async def _delete_prefix(self, row: dict[str, Any], keep: str | None) -> None:
        prefix = tus_prefix(row["storage_key"], row["id"])
        keys = [info.key async for info in self.backend.list(prefix) if info.key != keep]
        for key in keys:
            await self.backend.delete(key)


def store_for(backend: StorageBackend, settings: Settings) -> TusStore:
    try:
        local = backend.local_path("probe") is not None
    except MediaServiceError:
        local = False
    return LocalTusStore(backend, settings) if local else ObjectTusStore(backend, settings)


# --- blocking helpers (run in threads) ----------------------------------------------------------------------


class StorageInconsistent(MediaServiceError):
    status_code, code = 500, "internal_error"


def _open_at(path: Path, offset: int) -> int:
    """Open the upload's file for writing at ``offset``, cutting off bytes past it (never committed)."""
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640)
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            raise StorageInconsistent(f"the stored file holds {size} bytes, fewer than the offset {offset}",
                                      details={"stored": size, "offset": offset})
        if size > offset:
            os.ftruncate(fd, offset)
        if created:
            _fsync_dir(path.parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _read_head(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:  # an empty upload never created its file
        return b""


def _hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _concat_files(target: Path, sources: list[Path]) -> Any:
    target.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    with open(target, "wb") as out:
        for source in sources:
            with open(source, "rb") as f:
                while block := f.read(READ_CHUNK):
                    sha.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    _fsync_dir(target.parent)
    return sha


def _remove_file(path: Path, root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    parent = path.parent
    while parent != root and parent.is_relative_to(root):  # drop directories the upload left empty
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await _in_thread(open, path, "rb")
    try:
        while block := await _in_thread(f.read, READ_CHUNK):
            yield block
    finally:
        f.close()


async def _update(hasher: Any, chunk: bytes) -> None:
    if len(chunk) >= 256 * 1024:
        await _in_thread(hasher.update, chunk)
    else:
        hasher.update(chunk)
