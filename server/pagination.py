"""Keyset-pagination cursors: an opaque token for (created_at, id), the stable order every list uses."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID

import msgspec

from mediasvc.errors import BadRequest


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    raw = msgspec.json.encode([created_at.isoformat(), str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = msgspec.json.decode(raw, type=tuple[str, str])
        return datetime.fromisoformat(created), UUID(row_id)
    except (binascii.Error, msgspec.DecodeError, ValueError) as exc:
        raise BadRequest("Invalid cursor", details={"cursor": cursor}) from exc
