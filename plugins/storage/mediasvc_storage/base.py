"""One ``StorageBackend`` over any obstore store; subclasses only build the store and sign URLs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError as ObstoreNotFound

from mediasvc_storage.keys import validate_key, validate_prefix
from mediasvc.plugin import BadRequest, NotFound, ObjectInfo, ServiceUnavailable, StorageBackend

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

MISSING = (FileNotFoundError, ObstoreNotFound)
PRESIGN_METHODS = frozenset({"GET", "PUT"})
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4's limit; applied everywhere for one behaviour


class ObstoreBackend(StorageBackend):
    """Streams through an obstore store. Subclasses implement ``from_settings`` and ``presign``."""

    supports_attributes: ClassVar[bool] = True  # LocalStore cannot store Content-Type
    part_size: ClassVar[int] = 5 * 1024 * 1024  # multipart part size; S3's minimum
    upload_concurrency: ClassVar[int] = 4  # parts in flight: bounds memory to about part_size * (this + 1)
    read_chunk_size: ClassVar[int] = 1024 * 1024
    check_timeout_seconds: ClassVar[float] = 5.0  # obstore retries an unreachable endpoint for minutes

    def __init__(self, store: Any, settings: Settings) -> None:
        self._store = store
        self.settings = settings

    @property
    def store(self) -> Any:
        """The obstore store (``LocalStore``, ``S3Store``...), for callers that need obstore directly."""
        return self._store

    def validate_key(self, key: str) -> str:
        return validate_key(key)

    # --- writing -------------------------------------------------------------------------------------------

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        key = self.validate_key(key)
        attributes = {"Content-Type": content_type} if content_type and self.supports_attributes else None
        if isinstance(data, (bytes, bytearray, memoryview)):
            return await self._put_buffer(key, data, attributes)
        if not isinstance(data, AsyncIterable):
            raise TypeError(f"put() takes bytes or an async iterable of bytes, not {type(data).__name__}")
        chunks = aiter(data)
        first_part, exhausted = await _read_up_to(chunks, self.part_size)
        if exhausted:  # small stream: one plain request, no multipart
            return await self._put_buffer(key, b"".join(first_part), attributes)
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            for chunk in first_part:
                size += len(chunk)
                yield chunk
            first_part.clear()  # let the buffered first part go once it is handed over
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        result = await obstore.put_async(
            self.store, key, counted(), attributes=attributes, use_multipart=True,
            chunk_size=self.part_size, max_concurrency=self.upload_concurrency,
        )
        return ObjectInfo(key=key, size=size, etag=result.get("e_tag"))

    async def _put_buffer(self, key: str, data: Any, attributes: Any | None) -> ObjectInfo:
        size = memoryview(data).nbytes
        result = await obstore.put_async(
            self.store, key, data, attributes=attributes, use_multipart=size > self.part_size,
            chunk_size=self.part_size, max_concurrency=self.upload_concurrency,
        )
        return ObjectInfo(key=key, size=size, etag=result.get("e_tag"))

    async def delete(self, key: str) -> None:
        key = self.validate_key(key)
        with contextlib.suppress(*MISSING):
            await obstore.delete_async(self.store, key)

    # --- reading -------------------------------------------------------------------------------------------

    async def get_stream(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield ``key``'s bytes in ``[start, end)``; an ``end`` past the end of the object is clipped and a
        ``start`` at or past it yields nothing (like slicing). ``NotFound`` is raised on first iteration."""
        key = self.validate_key(key)
        if start < 0 or (end is not None and end < 0):
            raise BadRequest("byte range offsets must not be negative", details={"start": start, "end": end})
        if end is not None and end <= start:
            await self._require(key)
            return
        options: dict[str, Any] = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self.store, key, options=options or None)
        except MISSING:
            raise NotFound(f"no object at {key!r}", details={"key": key}) from None
        except ObstoreError:
            # Stores refuse a range starting at or past the end; that is an empty read, not an error.
            if options and start >= (await self._require(key)).size:
                return
            raise
        size = self.read_chunk_size
        async for chunk in result.stream(min_chunk_size=size):
            if len(chunk) <= 2 * size:
                yield chunk
            else:  # the memory store hands back the whole object: keep chunks bounded for the caller
                for offset in range(0, len(chunk), size):
                    yield chunk[offset : offset + size]

    async def head(self, key: str) -> ObjectInfo | None:
        key = self.validate_key(key)
        try:
            meta = await obstore.head_async(self.store, key)
        except MISSING:
            return None
        return _object_info(meta)

    async def _require(self, key: str) -> ObjectInfo:
        info = await self.head(key)
        if info is None:
            raise NotFound(f"no object at {key!r}", details={"key": key})
        return info

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a plain string prefix, not only whole segments)."""
        prefix = validate_prefix(prefix)
        # obstore matches whole segments only: list the enclosing "directory" and filter by the string prefix.
        parent = prefix.rpartition("/")[0]
        async for batch in obstore.list(self.store, parent or None, chunk_size=500):
            for meta in batch:
                if meta["path"].startswith(prefix):
                    yield _object_info(meta)

    # --- lifecycle -----------------------------------------------------------------------------------------

    async def check(self) -> None:
        """List at most one object: proves the endpoint answers, credentials work and the bucket exists."""
        stream = obstore.list(self.store, chunk_size=1)
        try:
            async with asyncio.timeout(self.check_timeout_seconds):
                await anext(stream, None)
        except TimeoutError as exc:
            raise ServiceUnavailable(
                f"{self.name} storage did not answer within {self.check_timeout_seconds:g}s"
            ) from exc
        except ObstoreError as exc:
            raise ServiceUnavailable(f"{self.name} storage is not reachable: {_first_line(exc)}") from exc

    async def close(self) -> None:
        """obstore stores hold no open connections that need closing."""


def check_presign_args(key: str, method: str, expires_in: int) -> str:
    """Validate presign arguments for every backend; return the upper-cased method."""
    validate_key(key)
    method = method.upper()
    if method not in PRESIGN_METHODS:
        raise BadRequest(f"cannot presign {method}: only GET and PUT", details={"method": method})
    if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
        raise BadRequest(
            f"expires_in must be 1-{MAX_PRESIGN_SECONDS} seconds", details={"expires_in": expires_in}
        )
    return method


async def _read_up_to(chunks: AsyncIterator[bytes], limit: int) -> tuple[list[bytes], bool]:
    """Read chunks until more than ``limit`` bytes are buffered; return them and whether the stream ended."""
    buffered: list[bytes] = []
    total = 0
    async for chunk in chunks:
        if chunk:
            buffered.append(chunk)
            total += len(chunk)
        if total > limit:
            return buffered, False
    return buffered, True


def _object_info(meta: Any) -> ObjectInfo:
    return ObjectInfo(key=meta["path"], size=meta["size"], etag=meta.get("e_tag"),
                      last_modified=meta.get("last_modified"))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
