"""Shared helpers: per-plugin settings, a local file for the original, and output keys."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mediasvc.plugin import scratch_dir

DEFAULTS: dict[str, Any] = {
    "avif": False,  # also write large.avif
    "max_pixels": 50_000_000,  # Image.MAX_IMAGE_PIXELS; past it decoding is refused
    "max_side": 20_000,  # absurd dimensions (a 1 x 40 000 strip) are refused even under the pixel limit
    "pdf_max_pixels": 12_000_000,  # cap on one rendered PDF page (a giant MediaBox cannot blow memory)
}


def plugin_settings(settings: Any) -> dict[str, Any]:
    configured = (getattr(settings, "plugins", None) or {}).get("images") or {}
    return {**DEFAULTS, **configured}


def asset_folder(storage_key: str) -> str:
    return storage_key.rsplit("/", 1)[0] if "/" in storage_key else ""


def output_key(storage_key: str, filename: str) -> str:
    folder = asset_folder(storage_key)
    return f"{folder}/{filename}" if folder else filename


@asynccontextmanager
async def local_original(ctx: Any, suffix: str = "") -> AsyncIterator[Path]:
    """The original as a local file: the backend's own file when it has one, else a copy in the step's scratch
    folder (removed after). Media is only ever opened from a local path, never from a URL."""
    key = ctx.asset["storage_key"]
    path = ctx.storage.local_path(key)
    if path is not None:
        yield Path(path)
        return
    fd, name = tempfile.mkstemp(prefix="in-", suffix=suffix, dir=scratch_dir(ctx))
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in ctx.storage.get_stream(key):
                fh.write(chunk)
        yield Path(name)
    finally:
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
