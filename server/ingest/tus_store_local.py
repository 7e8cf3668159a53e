"""The local directory layout of tus uploads: the body is written straight into the file of the asset's final key
at ``Upload-Offset`` and fsynced before the caller commits the new offset (``mediasvc.ingest.tus_store``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mediasvc.ingest.tus_body import (
    BodyTooLarge,
    check_chunk,
    file_writer,
    known_sha,
    receive_body,
    sha_state_at,
    too_large,
)
from mediasvc.ingest.tus_errors import ChecksumMismatch
from mediasvc.ingest.tus_headers import Checksum
from mediasvc.ingest.tus_io import concat_files, hash_file, in_thread, open_at, read_head_of_file, remove_file
from mediasvc.ingest.tus_store_base import Appended, Segment, TusStore


class LocalTusStore(TusStore):
    """Appends to the final file of a local directory backend."""

    def path(self, row: dict[str, Any]) -> Path:
        path = self.backend.local_path(row["storage_key"])
        assert path is not None
        return path

    async def append(self, row: dict[str, Any], stream: AsyncIterator[bytes], *, offset: int, max_bytes: int,
                     content_length: int | None, checksum: Checksum | None) -> Appended:
        path = self.path(row)
        fd = await in_thread(open_at, path, offset)
        try:
            checker = checksum.new_hasher() if checksum else None
            sha = sha_state_at(row["id"], offset)
            hashers = [h for h in (checker, sha) if h is not None]
            try:
                received, cut = await receive_body(stream, file_writer(fd, offset, hashers),
                                                   max_bytes=max_bytes, content_length=content_length)
            except BodyTooLarge:
                await in_thread(os.ftruncate, fd, offset)
                raise too_large(max_bytes, offset) from None
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, offset)
                raise
            try:
                keep = check_chunk(checksum, checker, cut)
            except ChecksumMismatch:
                await in_thread(os.ftruncate, fd, offset)
                raise
            if not keep:
                await in_thread(os.ftruncate, fd, offset)
                return Appended(0, cut)
            await in_thread(os.fsync, fd)  # durable before the caller moves the offset
            return Appended(received, cut, sha_state=sha)
        finally:
            os.close(fd)

    async def read_head(self, row: dict[str, Any], size: int) -> bytes:
        return await in_thread(read_head_of_file, self.path(row), size)

    async def finalize(self, row: dict[str, Any]) -> tuple[str, list[Segment] | None]:
        known = known_sha(row["id"], row["length"])
        if known is not None:
            return known, None
        return await in_thread(hash_file, self.path(row)), None

    async def concat(self, row: dict[str, Any], partials: list[dict[str, Any]]) -> Any:
        sources = [self.path(partial) for partial in partials]
        return await in_thread(concat_files, self.path(row), sources)

    async def discard(self, row: dict[str, Any]) -> None:
        path = self.path(row)
        await in_thread(remove_file, path, getattr(self.backend, "root", path.parent))
