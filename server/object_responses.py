"""A stored object as an HTTP response: one byte range (206), ETag / Last-Modified and conditional requests (304),
streamed from the local file or the object store. Used by ``/media/serve`` (``mediasvc.api.media``) and the HLS
proxy (``mediasvc.delivery.hls``); content types by file name for both.

Every response carrying stored bytes sends :data:`STORED_BYTES_HEADERS`: ``nosniff`` (a browser never second-guesses
the type, so ``x.php.jpg`` stays an image) and ``Content-Security-Policy: sandbox`` (a file opened as a page gets an
opaque origin and no scripts; media, images and PDFs still display, and players fetching it are unaffected)."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from litestar import Request, Response
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_206_PARTIAL_CONTENT, HTTP_304_NOT_MODIFIED

from mediasvc.contracts import ObjectInfo
from mediasvc.errors import MediaServiceError, NotFound
from mediasvc.text_rules import CONTROL, clean_name

READ_SIZE = 256 * 1024
EXTRA_TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t", ".m4s": "video/iso.segment",
               ".vtt": "text/vtt", ".webp": "image/webp", ".avif": "image/avif", ".wav": "audio/wav"}
STORED_BYTES_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


class RangeNotSatisfiable(MediaServiceError):
    status_code, code = 416, "range_not_satisfiable"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987), without bidi controls,
    invisible format characters or control characters (names stored before ``mediasvc.text_rules`` may hold them)."""
    name = CONTROL.sub("_", clean_name(name))
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def content_type_for(key: str) -> str:
    suffix = Path(key).suffix.lower()
    return EXTRA_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range as [start, end) clipped to ``size``; None when the header should be ignored (several
    ranges, other units). Raises RangeNotSatisfiable for a range that starts past the end."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":  # suffix range: the last N bytes
            length = int(last)
            if length <= 0:
                raise RangeNotSatisfiable("Empty suffix range", headers={"Content-Range": f"bytes */{size}"})
            return max(size - length, 0), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        raise RangeNotSatisfiable(f"Range starts past the end ({size} bytes)",
                                  headers={"Content-Range": f"bytes */{size}"})
    return start, min(end, size)


def _etag(info: ObjectInfo) -> str:
    if info.etag:
        return info.etag if info.etag.startswith(('"', 'W/"')) else f'"{info.etag}"'
    raw = f"{info.key}:{info.size}:{info.last_modified}".encode()
    return f'"{hashlib.sha1(raw).hexdigest()}"'


async def _file_chunks(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        await handle.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = await handle.read(min(READ_SIZE, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


async def _object_info(services: Any, key: str) -> tuple[ObjectInfo, Path | None]:
    path = services.storage.local_path(key)
    if path is not None:
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("No such object", details={"key": key}) from None
        modified = datetime.fromtimestamp(int(stat.st_mtime), timezone.utc)
        etag = f'"{stat.st_size:x}-{int(stat.st_mtime_ns):x}"'
        return ObjectInfo(key=key, size=stat.st_size, etag=etag, last_modified=modified), path
    info = await services.storage.head(key)
    if info is None:
        raise NotFound("No such object", details={"key": key})
    return info, None


def _not_modified(request: Request[Any, Any, Any], etag: str, modified: datetime | None) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        return etag in [tag.strip() for tag in if_none_match.split(",")] or if_none_match.strip() == "*"
    since = request.headers.get("if-modified-since")
    if since and modified:
        try:
            return modified <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
    return False


def _range_applies(request: Request[Any, Any, Any], etag: str, modified: datetime | None) -> bool:
    """If-Range: the range is honoured only while the representation is unchanged."""
    if_range = request.headers.get("if-range")
    if if_range is None:
        return True
    if if_range.startswith(('"', "W/")):
        return if_range == etag
    try:
        return modified is not None and modified <= parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False


async def respond_with_object(request: Request[Any, Any, Any], services: Any, key: str, *,
                              cache_control: str = "private, max-age=300",
                              extra_headers: dict[str, str] | None = None) -> Response[Any]:
    """The object's bytes with Range (206), ETag/Last-Modified and conditional requests (304)."""
    info, path = await _object_info(services, key)
    etag = _etag(info)
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": cache_control, **STORED_BYTES_HEADERS,
               **(extra_headers or {})}
    if info.last_modified:
        headers["Last-Modified"] = format_datetime(info.last_modified, usegmt=True)
    if _not_modified(request, etag, info.last_modified):
        return Response(b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    start, end, status = 0, info.size, HTTP_200_OK
    range_header = request.headers.get("range")
    if range_header and _range_applies(request, etag, info.last_modified):
        byte_range = parse_range(range_header, info.size)
        if byte_range:
            start, end = byte_range
            status = HTTP_206_PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    download_name = request.query_params.get("dl")
    if download_name:
        headers["Content-Disposition"] = content_disposition(download_name)
    body = _file_chunks(path, start, end) if path else services.storage.get_stream(key, start=start, end=end)
    if request.method == "HEAD":
        return Response(b"", status_code=status, headers=headers, media_type=content_type_for(key))
    return Stream(body, status_code=status, headers=headers, media_type=content_type_for(key))
