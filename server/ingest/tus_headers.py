"""tus 1.0.0 protocol constants and header parsing (https://tus.io/protocols/resumable-upload).

Everything here is pure: it reads header strings and returns values or raises the error the protocol names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import msgspec

from mediasvc.errors import BadRequest, UnsupportedMediaType
from mediasvc.ingest.tus_errors import PreconditionFailed
from mediasvc.text_rules import check_text

TUS_VERSION = "1.0.0"
SUPPORTED_VERSIONS = (TUS_VERSION,)
EXTENSIONS = (
    "creation", "creation-with-upload", "creation-defer-length", "termination", "checksum", "expiration",
    "concatenation",
)
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
ASSET_ID_HEADER = "Mediasvc-Asset-Id"

CHECKSUM_ALGORITHMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": hashlib.md5,
}

_METADATA_KEY = re.compile(r"^[^\s,]+$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")


class Checksum(msgspec.Struct, frozen=True):
    algorithm: str
    digest: bytes

    def new_hasher(self) -> Any:
        return CHECKSUM_ALGORITHMS[self.algorithm]()


class Concat(msgspec.Struct, frozen=True):
    kind: Literal["partial", "final"]
    partials: tuple[UUID, ...] = ()
    urls: tuple[str, ...] = ()


def require_tus_resumable(headers: Mapping[str, str]) -> None:
    """Every request but OPTIONS must say which protocol version it speaks (412 otherwise)."""
    version = (headers.get("tus-resumable") or "").strip()
    if version not in SUPPORTED_VERSIONS:
        raise PreconditionFailed(
            f"tus version {version!r} is not supported" if version else "Tus-Resumable: 1.0.0 is required",
            details={"tus_resumable": version, "supported": list(SUPPORTED_VERSIONS)},
            headers={"Tus-Version": ",".join(SUPPORTED_VERSIONS)},
        )


def require_offset_content_type(headers: Mapping[str, str]) -> None:
    content_type = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type != OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(
            f"Content-Type must be {OFFSET_CONTENT_TYPE}",
            details={"content_type": content_type, "expected": OFFSET_CONTENT_TYPE},
        )


def parse_non_negative(name: str, value: str | None, *, required: bool = False) -> int | None:
    """A header holding a non-negative integer (digits only, no sign, no spaces inside)."""
    if value is None or value.strip() == "":
        if required:
            raise BadRequest(f"The {name} header is required", details={"header": name})
        return None
    value = value.strip()
    if not _DIGITS.match(value):
        raise BadRequest(f"{name} must be a non-negative integer",
                         details={"header": name, "value": value[:40]})
    return int(value)


def parse_metadata(raw: str | None) -> dict[str, str | None]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (a value may be absent), unique keys. A key or
    value holding a control character is a 422 (``mediasvc.text_rules``)."""
    pairs: dict[str, str | None] = {}
    if not raw or not raw.strip():
        return pairs
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        encoded = encoded.strip()
        if not _METADATA_KEY.match(key) or " " in encoded:
            raise BadRequest("Upload-Metadata must be comma-separated 'key base64value' pairs",
                             details={"pair": item[:80]})
        check_text(key, "Upload-Metadata")
        if key in pairs:
            raise BadRequest(f"Upload-Metadata key {key!r} appears twice", details={"key": key})
        if not encoded:
            pairs[key] = None
            continue
        try:
            value = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64",
                             details={"key": key}) from None
        pairs[key] = check_text(value.decode("utf-8", errors="replace"), f"Upload-Metadata.{key}")
    return pairs


def parse_checksum(raw: str | None) -> Checksum | None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; an unsupported algorithm is a 400 (tus checksum)."""
    if raw is None or not raw.strip():
        return None
    algorithm, _, encoded = raw.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise BadRequest(f"Checksum algorithm {algorithm!r} is not supported",
                         details={"algorithm": algorithm, "supported": sorted(CHECKSUM_ALGORITHMS)})
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Upload-Checksum digest is not base64", details={"algorithm": algorithm}) from None
    if len(digest) != CHECKSUM_ALGORITHMS[algorithm]().digest_size:
        raise BadRequest(f"Upload-Checksum digest has the wrong length for {algorithm}",
                         details={"algorithm": algorithm})
    return Checksum(algorithm, digest)


def parse_concat(raw: str | None) -> Concat | None:
    """``Upload-Concat: partial`` or ``final;<url> <url> ...`` (absolute URLs or paths of our uploads)."""
    if raw is None or not raw.strip():
        return None
    value = raw.strip()
    if value == "partial":
        return Concat("partial")
    kind, sep, rest = value.partition(";")
    if kind.strip() != "final" or not sep:
        raise BadRequest("Upload-Concat must be 'partial' or 'final;<url> <url> ...'",
                         details={"value": value[:80]})
    urls = tuple(rest.split())
    if not urls:
        raise BadRequest("Upload-Concat: final needs at least one partial upload URL")
    partials = []
    for url in urls:
        segments = [s for s in urlsplit(url).path.split("/") if s]
        try:
            if len(segments) < 2 or segments[-2] != "tus":
                raise ValueError(url)
            partials.append(UUID(segments[-1]))
        except ValueError:
            raise BadRequest(f"{url[:200]!r} is not the URL of a tus upload on this server",
                             details={"url": url[:200]}) from None
    return Concat("final", tuple(partials), urls)


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate: ``Wed, 25 Nov 2026 19:48:10 GMT``."""
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)

