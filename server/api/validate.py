"""``POST /api/v1/validate``: check a file against a profile without storing it.

The multipart body (``profile`` field, or ``?profile=``, and a ``file`` field) is parsed as it streams: the first
bytes are kept for sniffing, the size is counted and reading stops as soon as it passes the profile's limit. Media
within the limit whose sniffed type an installed media prober reads (``register_media_probers``: the video plugin's
reads audio, video and images) is spooled to a temporary file under ``<data_dir>/tmp``, described by that prober and
deleted before the response; nothing reaches storage. Without such a prober the probe is skipped (``probe`` is
null, as for documents) with a log line; the size and type checks still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.exceptions import InternalServerException
from litestar.params import FromQuery
from litestar.status_codes import HTTP_200_OK
from multipart import ParserError, PushMultipartParser, parse_options_header

from mediasvc.auth import PrincipalDep
from mediasvc.contracts import MediaProber, MediaUnreadable
from mediasvc.errors import BadRequest, UnsupportedMediaType, ValidationFailed
from mediasvc.ingest.validation import SNIFF_BYTES, get_profile, problems_for, sanitize_filename, sniff
from mediasvc.openapi_doc import form_body, openapi_opt
from mediasvc.services import ServicesDep

PROBE_TIMEOUT_SECONDS = 20.0
MAX_FIELD_BYTES = 4096  # any form field other than the file
MAX_SEGMENTS = 8
SPOOL_FLUSH_BYTES = 1024 * 1024

log = logging.getLogger("mediasvc.validate")


class Problem(msgspec.Struct):
    code: str
    message: str


class ValidationReport(msgspec.Struct):
    profile: str
    file_name: str
    sniffed_type: str
    size_bytes: int  # bytes read; when size_exceeded, reading stopped here (the file is bigger)
    size_exceeded: bool
    ok: bool
    problems: list[Problem]
    probe: dict[str, Any] | None  # None for documents, files over the limit, unsniffable content or no prober


class _Received(msgspec.Struct):
    profile: str | None = None
    file_name: str | None = None
    head: bytes = b""
    size: int = 0
    exceeded: bool = False
    spool: str | None = None  # temp file path


VALIDATE_DOC = openapi_opt(errors=[413, 415], body=form_body(
    {"profile": {"type": "string", "description": "The profile to check against (or ?profile=); before the file"},
     "file": {"type": "string", "format": "binary"}}, required=["file"], multipart=True))


class ValidateController(Controller):
    path = "/validate"
    tags = ["uploads"]

    @post("/", status_code=HTTP_200_OK, request_max_body_size=None, opt=VALIDATE_DOC,
          summary="Check a file against a profile without storing it (multipart: profile, file)")
    async def validate_file(self, request: Request[Any, Any, Any], services: ServicesDep, principal: PrincipalDep,
                            profile: FromQuery[str | None] = None) -> ValidationReport:
        settings = services.settings
        if profile is not None:
            get_profile(settings, profile)  # unknown: 422 before reading the body
        received = _Received(profile=profile)
        spool_dir = Path(settings.data_dir) / "tmp"
        try:
            await _read_form(request, received, settings, spool_dir, services.host.media_prober)
            if not received.profile:
                raise ValidationFailed("profile is required: a form field before the file, or ?profile=")
            profile_obj = get_profile(settings, received.profile)
            if received.file_name is None:
                raise ValidationFailed("file is required (a multipart field named 'file')")
            name = sanitize_filename(received.file_name)
            sniffed, problems = problems_for(received.profile, profile_obj, name, received.size, received.head)
            probe = None
            prober = services.host.media_prober(sniffed.mime)
            if prober is None and sniffed.kind in ("video", "audio", "image"):
                log.info("no media prober reads %s (install mediasvc-video): probe skipped", sniffed.mime)
            if received.spool is not None and not received.exceeded and prober is not None:
                probe = await _probe(prober, Path(received.spool), sniffed.mime)
                if "error" in probe:
                    problems.append({"code": "unreadable", "message": f"The file could not be read as "
                                                                      f"{sniffed.mime}: {probe['error']}"})
            return ValidationReport(
                profile=received.profile, file_name=name, sniffed_type=sniffed.mime, size_bytes=received.size,
                size_exceeded=received.exceeded, ok=not problems,
                problems=[Problem(**p) for p in problems], probe=probe,
            )
        finally:
            if received.spool is not None:
                with contextlib.suppress(OSError):
                    os.unlink(received.spool)


class _FileSink:
    """The ``file`` field's bytes: the head kept for sniffing, the size counted, media spooled for the probe."""

    def __init__(self, received: _Received, spool_dir: Path, limit: Any,
                 prober_for: Callable[[str], MediaProber | None]) -> None:
        self.received, self.spool_dir, self.limit, self.prober_for = received, spool_dir, limit, prober_for
        self.head = bytearray()
        self.early: list[bytes] = []  # chunks before the head is complete (whether to spool is not known yet)
        self.decided = False
        self.spool: Any = None
        self.pending: list[bytes] = []
        self.pending_size = 0

    async def feed(self, data: bytes) -> bool:
        """Take a chunk; False once the size is over the limit (stop reading)."""
        received = self.received
        if len(self.head) < SNIFF_BYTES:
            self.head += data[: SNIFF_BYTES - len(self.head)]
            received.head = bytes(self.head)
        received.size += len(data)
        if received.size > self.limit():
            received.exceeded = True
            return False
        if not self.decided:
            self.early.append(data)
            if len(self.head) >= SNIFF_BYTES:
                await self._decide()
        elif self.spool is not None:
            await self._write(data)
        return True

    async def finish(self) -> None:
        if not self.decided:
            await self._decide()
        await self._flush()

    async def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    async def _decide(self) -> None:
        self.decided = True
        early, self.early = self.early, []
        if self.prober_for(sniff(bytes(self.head)).mime) is not None:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            fd, self.received.spool = tempfile.mkstemp(prefix="validate-", dir=self.spool_dir)
            self.spool = os.fdopen(fd, "wb")
            for chunk in early:
                await self._write(chunk)

    async def _write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= SPOOL_FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self.spool is not None and self.pending:
            data = b"".join(self.pending)
            self.pending, self.pending_size = [], 0
            await asyncio.to_thread(self.spool.write, data)


async def _read_form(request: Request[Any, Any, Any], received: _Received, settings: Any, spool_dir: Path,
                     prober_for: Callable[[str], MediaProber | None]) -> None:
    media_type, options = parse_options_header(request.headers.get("content-type", ""))
    if media_type != "multipart/form-data" or not options.get("boundary"):
        raise UnsupportedMediaType("Send multipart/form-data with a 'file' field (and 'profile')",
                                   details={"content_type": media_type})

    def limit() -> int:  # the profile's, once known; until then the largest any profile allows
        profile = settings.profiles.get(received.profile or "")
        return profile.max_bytes if profile else max(p.max_bytes for p in settings.profiles.values())

    parser = PushMultipartParser(options["boundary"], max_segment_count=MAX_SEGMENTS)
    sink = _FileSink(received, spool_dir, limit, prober_for)
    current: str | None = None  # "file", "profile" or "other"
    field = bytearray()
    try:
        async for chunk in _body(request):
            for event in parser.parse(chunk):
                if isinstance(event, bytes):
                    if current == "file":
                        if not await sink.feed(event):
                            return  # over the limit: the answer is known, read no further
                    else:
                        field.extend(event)
                        if len(field) > MAX_FIELD_BYTES:
                            raise BadRequest(f"Form fields other than 'file' are limited to {MAX_FIELD_BYTES} bytes")
                elif event is None:
                    if current == "file":
                        await sink.finish()
                    elif current == "profile" and not received.profile:
                        received.profile = field.decode("utf-8", "replace").strip()
                    current, field = None, bytearray()
                elif event.name == "file" and event.filename is not None:
                    if received.file_name is not None:
                        raise BadRequest("Send one file at a time")
                    received.file_name = event.filename or "upload"
                    current = "file"
                else:
                    current = "profile" if event.name == "profile" else "other"
        parser.close()
    except ParserError as exc:
        raise BadRequest(f"Malformed multipart body: {exc}") from None
    finally:
        await sink.close()


async def _body(request: Request[Any, Any, Any]) -> Any:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
        yield b""  # end of input for the parser
    except InternalServerException as exc:  # client disconnected
        raise BadRequest("The client disconnected before the whole body arrived") from exc


async def _probe(prober: MediaProber, path: Path, mime: str) -> dict[str, Any]:
    """The prober's summary as the report's ``probe``, or ``{"error": reason}``."""
    try:
        info = await asyncio.wait_for(asyncio.to_thread(prober.describe, path, mime), PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"error": f"probe took longer than {PROBE_TIMEOUT_SECONDS:g}s"}
    except MediaUnreadable as exc:
        return {"error": str(exc) or "unreadable"}
    return msgspec.to_builtins(info)
