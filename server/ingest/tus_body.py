"""Receiving a tus request body: batches written (and hashed) in threads while the next batch arrives, the
``Upload-Checksum`` of the chunk, and the running sha256 of the whole upload."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID

from litestar.exceptions import ClientException, InternalServerException

from mediasvc.errors import PayloadTooLarge
from mediasvc.ingest.tus_errors import ChecksumMismatch
from mediasvc.ingest.tus_headers import Checksum
from mediasvc.ingest.tus_io import IO_POOL

WRITE_BATCH = 1024 * 1024  # bytes gathered before one write (pwritev) is handed to a thread
MAX_IOVECS = 512  # stay well under IOV_MAX (1024) per pwritev
HASH_STATES = 1024  # uploads whose running sha256 this process remembers


class BodyTooLarge(Exception):
    """The body went past what the upload may still receive."""


# --- the running sha256 -------------------------------------------------------------------------------------
# The sha256 of the whole upload is computed as the bytes arrive when the PATCHes of an upload reach the same
# process in order; the state is remembered only after the offset is committed and only used for that exact
# offset. Otherwise (another instance took a PATCH, a restart) the stored bytes are hashed once at completion.

_hash_states: OrderedDict[UUID, tuple[int, Any]] = OrderedDict()


def sha_state_at(upload_id: UUID, offset: int) -> Any:
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


def known_sha(upload_id: UUID, length: int) -> str | None:
    found = _hash_states.get(upload_id)
    return found[1].hexdigest() if found is not None and found[0] == length else None


# --- receiving a body ---------------------------------------------------------------------------------------


def file_writer(fd: int, position: int, hashers: list[Any]) -> Callable[[list[bytes]], None]:
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
                    pending = loop.run_in_executor(IO_POOL, write, batch)
                    batch, batch_size = [], 0
        except (InternalServerException, ClientException, ConnectionError):
            # Litestar raises InternalServerException("client disconnected prematurely") on http.disconnect.
            cut = True
        if pending is not None:
            done, pending = pending, None
            await done
        if batch:
            await loop.run_in_executor(IO_POOL, write, batch)
    finally:
        if pending is not None:  # error or cancellation: the write in flight lands before the caller cleans
            with contextlib.suppress(BaseException):
                await pending
    if content_length is not None and total < content_length:
        cut = True
    return total, cut


def too_large(max_bytes: int, offset: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The data goes past the {offset + max_bytes} bytes this upload may hold; none of it was kept",
        details={"upload_offset": offset, "max_bytes": offset + max_bytes},
    )


def check_chunk(checksum: Checksum | None, checker: Any, cut: bool) -> bool:
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
