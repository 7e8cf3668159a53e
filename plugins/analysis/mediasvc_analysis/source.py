"""The original bytes of an image asset, within the analysis byte limit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mediasvc.plugin import Conflict, NotFound, PayloadTooLarge, UnsupportedMediaType

from mediasvc_analysis.config import AnalysisSettings

READABLE = ("uploaded", "processing", "ready", "failed")


def check_asset(asset: dict[str, Any], options: AnalysisSettings) -> None:
    if asset["kind"] != "image":
        raise UnsupportedMediaType(f"Asset {asset['id']} is a {asset['kind']}, not an image",
                                   details={"asset_id": str(asset["id"]), "kind": asset["kind"]})
    if asset["status"] not in READABLE:
        raise Conflict(f"Asset {asset['id']} has no uploaded original yet (status {asset['status']})",
                       details={"asset_id": str(asset["id"]), "status": asset["status"]})
    if (asset.get("size_bytes") or 0) > options.max_upload_bytes:
        raise PayloadTooLarge(f"Asset {asset['id']} is {asset['size_bytes']} bytes, over the analysis limit of "
                              f"{options.max_upload_bytes} bytes", details={"max_bytes": options.max_upload_bytes})


async def read_original(storage: Any, asset: dict[str, Any], options: AnalysisSettings) -> bytes:
    check_asset(asset, options)
    key = asset["storage_key"]
    path = storage.local_path(key)
    try:
        if path is not None:
            data = await asyncio.to_thread(_read_capped, Path(path), options.max_upload_bytes)
        else:
            data = await storage.get_bytes(key, end=options.max_upload_bytes + 1)
    except (FileNotFoundError, NotFound) as exc:
        raise Conflict(f"The original of asset {asset['id']} is missing from storage",
                       details={"asset_id": str(asset["id"])}) from exc
    if len(data) > options.max_upload_bytes:
        raise PayloadTooLarge(f"Asset {asset['id']} is over the analysis limit of {options.max_upload_bytes} bytes",
                              details={"max_bytes": options.max_upload_bytes})
    return data


def _read_capped(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit + 1)
