"""The object-store layout of tus uploads (S3, GCS, Azure, memory): each PATCH is spooled to a temporary file and
stored as one segment object; the segments are assembled into the final key at completion
(``mediasvc.ingest.tus_store``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mediasvc.contracts import StorageBackend
from mediasvc.ingest.tus_body import (
    BodyTooLarge,
    check_chunk,
    file_writer,
    known_sha,
    receive_body,
    sha_state_at,
    too_large,
)
from mediasvc.ingest.tus_headers import Checksum
from mediasvc.ingest.tus_io import file_chunks, in_thread, update_hash
from mediasvc.ingest.tus_settings import spool_dir, tus_settings
from mediasvc.ingest.tus_store_base import Appended, Segment, TusStore, segments_of, tus_prefix
from mediasvc.settings import Settings


class ObjectTusStore(TusStore):
    """Segments on an object store, assembled into the final key at completion."""

    def __init__(self, backend: StorageBackend, settings: Settings) -> None:
        super().__init__(backend, settings)
        self.part_size = tus_settings(settings).part_size

    async def append(self, row: dict[str, Any], stream: AsyncIterator[bytes], *, offset: int, max_bytes: int,
                     content_length: int | None, checksum: Checksum | None) -> Appended:
        segments = segments_of(row["metadata"].get("tus", {}))
        fd, name = await in_thread(tempfile.mkstemp, prefix="chunk-", dir=spool_dir(self.settings))
        try:
            checker = checksum.new_hasher() if checksum else None
            sha = sha_state_at(row["id"], offset)
            hashers = [h for h in (checker, sha) if h is not None]
            try:
                received, cut = await receive_body(stream, file_writer(fd, 0, hashers), max_bytes=max_bytes,
                                                   content_length=content_length)
            except BodyTooLarge:
                raise too_large(max_bytes, offset) from None
            if not check_chunk(checksum, checker, cut) or received == 0:
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
            import obstore  # deferred: it comes with the storage plugin (a backend with a `store`)

            await obstore.put_async(store, validate(key), path, use_multipart=size > self.part_size,
                                    chunk_size=self.part_size, max_concurrency=2)
            return
        await self.backend.put(key, file_chunks(path))

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
            known = known_sha(row["id"], row["length"])
            return known or await self._hash(segments), None
        sha = await self._assemble(key, segments)
        return sha.hexdigest(), [Segment(0, row["length"], key)]

    async def concat(self, row: dict[str, Any], partials: list[dict[str, Any]]) -> Any:
        segments = [s for partial in partials for s in segments_of(partial["metadata"].get("tus", {}))]
        return await self._assemble(row["storage_key"], segments)

    async def _hash(self, segments: list[Segment]) -> str:
        sha = hashlib.sha256()
        async for chunk in self._iter(segments):
            await update_hash(sha, chunk)
        return sha.hexdigest()

    async def _assemble(self, key: str, segments: list[Segment]) -> Any:
        sha = hashlib.sha256()

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in self._iter(segments):
                await update_hash(sha, chunk)
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
