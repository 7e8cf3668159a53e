"""Reading an analyze request: a multipart upload (``file`` + fields) or a JSON body, within the byte limit.

The body is streamed and counted: a declared or actual size over the limit is a 413 before anything is decoded.
"""

from __future__ import annotations

import io
from typing import Any

import msgspec
from litestar import Request
from multipart import MultipartError, MultipartParser, parse_options_header

from mediasvc.plugin import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and small fields on top of the image


class UploadForm(msgspec.Struct):
    data: bytes
    filename: str
    fields: dict[str, list[str]]

    def one(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None

    def types(self) -> list[str] | None:
        values = self.fields.get("analysis_types")
        if not values:
            return None
        return [t.strip() for value in values for t in value.split(",") if t.strip()]

    def number(self, name: str, kind: type) -> Any:
        value = self.one(name)
        if value is None or value == "":
            return None
        try:
            return kind(value)
        except ValueError:
            raise ValidationFailed(f"{name} must be a number, got {value!r}") from None


def is_multipart(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


async def read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body of {declared} bytes is over the limit of {limit} bytes",
                              details={"max_bytes": limit})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body is over the limit of {limit} bytes", details={"max_bytes": limit})
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: Request[Any, Any, Any], max_image_bytes: int) -> UploadForm:
    body = await read_body(request, max_image_bytes + FORM_OVERHEAD)
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get("boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary")
    fields: dict[str, list[str]] = {}
    data: bytes | None = None
    filename = ""
    try:
        for part in MultipartParser(io.BytesIO(body), boundary, content_length=len(body), strict=True,
                                    memory_limit=max_image_bytes + FORM_OVERHEAD,
                                    mem_limit=max_image_bytes + FORM_OVERHEAD):
            if part.name == "file":
                data, filename = part.raw, part.filename or ""
            else:
                fields.setdefault(part.name, []).append(part.value)
    except MultipartError as exc:
        raise BadRequest(f"Malformed multipart body: {exc}") from exc
    if data is None:
        raise ValidationFailed("file is required (a multipart field named 'file')")
    if len(data) > max_image_bytes:
        raise PayloadTooLarge(f"The image is {len(data)} bytes, over the limit of {max_image_bytes} bytes",
                              details={"max_bytes": max_image_bytes})
    return UploadForm(data=data, filename=filename, fields=fields)


async def read_json(request: Request[Any, Any, Any], kind: type, limit: int) -> Any:
    content_type = request.headers.get("content-type", "").lower()
    if content_type and not content_type.startswith("application/json"):
        raise UnsupportedMediaType("Send multipart/form-data with a 'file' field, or JSON",
                                   details={"content_type": content_type})
    body = await read_body(request, limit)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(f"Invalid request: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"Malformed JSON body: {exc}") from exc
