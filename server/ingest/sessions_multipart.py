"""Streaming ``multipart/form-data`` for chunk uploads: the file part goes to a temp file under the data dir while it
is hashed and counted; the body is never held in memory. Small text fields are collected (bounded).

Validation runs as early as the bytes allow: the file name's extension when the part starts, the sniffed content as
soon as its first bytes are in, the size limit the moment the count passes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar.exceptions import InternalServerException
from multipart import (
    MultipartError,
    MultipartSegment,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

from mediasvc.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from mediasvc.ingest.validation import SNIFF_BYTES

FILE_FIELD = "file"
MAX_FIELD_BYTES = 4096  # each text field
MAX_PARTS = 16
WRITE_BUFFER = 1024 * 1024  # bytes gathered before a write (done off the event loop)
MULTIPART_OVERHEAD = 16 * 1024  # boundaries, part headers and the text fields on top of the file itself


class ClientDisconnected(BadRequest):
    """The client went away before the body was complete."""


@dataclass
class ReceivedFile:
    path: Path
    filename: str
    content_type: str
    size: int = 0
    sha256: str = ""
    head: bytes = b""


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    file: ReceivedFile | None = None


def multipart_boundary(content_type: str | None) -> str:
    mime, options = parse_options_header(content_type or "")
    boundary = options.get("boundary")
    if mime != "multipart/form-data" or not boundary:
        raise UnsupportedMediaType("Expected a multipart/form-data body with a boundary",
                                   details={"content_type": content_type or ""})
    return boundary


def check_content_length(header: str | None, max_bytes: int) -> None:
    """413 before reading anything when the announced body cannot fit the limit."""
    if header is None:
        return
    try:
        length = int(header)
    except ValueError:
        raise BadRequest("Invalid Content-Length", details={"content_length": header}) from None
    if length > max_bytes + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"The body ({length} bytes) is over the limit of {max_bytes} bytes",
                              details={"max_bytes": max_bytes, "content_length": length})


class _FileSink:
    """A temp file being written, hashed and counted. Writing and hashing run in threads, side by side, for one
    buffer while the next one is being received (at most two buffers in memory)."""

    def __init__(self, directory: Path, segment: MultipartSegment, max_bytes: int,
                 check_head: Callable[[bytes], None]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix="chunk-", suffix=".part")
        self.handle = os.fdopen(fd, "wb")
        self.received = ReceivedFile(path=Path(name), filename=segment.filename or "",
                                     content_type=segment.content_type or "application/octet-stream")
        self.hasher = hashlib.sha256()
        self.buffer = bytearray()
        self.pending: asyncio.Future[Any] | None = None
        self.max_bytes = max_bytes
        self.check_head = check_head
        self.head_checked = False

    async def feed(self, data: bytes) -> None:
        self.received.size += len(data)
        if self.received.size > self.max_bytes:
            raise PayloadTooLarge(f"The file is over the limit of {self.max_bytes} bytes",
                                  details={"max_bytes": self.max_bytes})
        if len(self.received.head) < SNIFF_BYTES:
            self.received.head += bytes(data[: SNIFF_BYTES - len(self.received.head)])
        if not self.head_checked and len(self.received.head) >= SNIFF_BYTES:
            self.head_checked = True
            self.check_head(self.received.head)
        self.buffer += data
        if len(self.buffer) >= WRITE_BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            await pending
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            self.pending = asyncio.gather(asyncio.to_thread(self.hasher.update, data),
                                          asyncio.to_thread(self.handle.write, data))

    async def finish(self) -> ReceivedFile:
        if not self.head_checked:
            self.head_checked = True
            self.check_head(self.received.head)
        await self._flush()
        await self._flush()  # the last buffer's write
        await asyncio.to_thread(self._close)
        self.received.sha256 = self.hasher.hexdigest()
        return self.received

    def _close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    async def discard(self) -> None:
        try:
            if self.pending is not None:
                pending, self.pending = self.pending, None
                with contextlib.suppress(Exception):
                    await pending
        finally:
            with contextlib.suppress(OSError, ValueError):
                self.handle.close()
            with contextlib.suppress(OSError):
                self.received.path.unlink()


async def _body(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The request body; a transport that fails mid-body (Litestar's ``http.disconnect`` error, a reset
    connection) is a client that went away, not a server error."""
    try:
        async for data in stream:
            yield data
    except (InternalServerException, OSError) as exc:
        raise ClientDisconnected("The client disconnected before the body was complete") from exc


class _FormReader:
    """Turns parser events into fields and one streamed file."""

    def __init__(self, temp_dir: Path, max_bytes: int, check_name: Callable[[str], None],
                 check_head: Callable[[bytes], None]) -> None:
        self.temp_dir, self.max_bytes = temp_dir, max_bytes
        self.check_name, self.check_head = check_name, check_head
        self.form = ReceivedForm()
        self.sink: _FileSink | None = None
        self.current: MultipartSegment | None = None
        self.in_file = False
        self.text = bytearray()

    async def handle(self, event: MultipartSegment | bytes | None) -> None:
        if isinstance(event, MultipartSegment):
            self.current, self.text = event, bytearray()
            self.in_file = event.name == FILE_FIELD and event.filename is not None
            if self.in_file:
                if self.sink is not None:
                    raise BadRequest("Only one file part is allowed")
                self.check_name(event.filename or "")
                self.sink = _FileSink(self.temp_dir, event, self.max_bytes, self.check_head)
        elif event is None:  # the end of the current part
            if self.in_file and self.sink is not None:
                self.form.file = await self.sink.finish()
            elif self.current is not None and self.current.name:
                self.form.fields[self.current.name] = self.text.decode("utf-8", errors="replace").strip()
            self.current, self.in_file = None, False
        elif self.in_file and self.sink is not None:
            await self.sink.feed(event)
        else:
            self.text += event
            if len(self.text) > MAX_FIELD_BYTES:
                name = self.current.name if self.current else ""
                raise BadRequest(f"Form field {name!r} is over {MAX_FIELD_BYTES} bytes")


@contextlib.asynccontextmanager
async def receive_form(
    body: AsyncIterator[bytes],
    *,
    content_type: str | None,
    temp_dir: Path,
    max_bytes: int,
    check_name: Callable[[str], None],
    check_head: Callable[[bytes], None],
) -> AsyncIterator[ReceivedForm]:
    """Parse the body as it arrives. The temp file is removed when the block exits, whatever happens, and on any
    error while receiving (a client cut, a limit, a bad part)."""
    parser = PushMultipartParser(multipart_boundary(content_type), max_header_count=8,
                                 max_segment_count=MAX_PARTS)
    reader = _FormReader(temp_dir, max_bytes, check_name, check_head)
    try:
        async with contextlib.aclosing(_body(body)) as chunks:  # type: ignore[type-var]
            with parser:
                async for data in chunks:
                    for event in parser.parse(data):
                        await reader.handle(event)
                    if parser.closed:
                        break
    except BaseException as exc:
        if reader.sink is not None:
            await reader.sink.discard()
        if isinstance(exc, ParserLimitReached):
            raise BadRequest(f"Malformed multipart body: {exc}") from exc
        if isinstance(exc, MultipartError):
            raise BadRequest(f"Malformed or incomplete multipart body: {exc}") from exc
        raise
    try:
        yield reader.form
    finally:
        if reader.sink is not None:
            await reader.sink.discard()
