"""A sample third-party mediasvc plugin: one processor, shipped as its own distribution (`mediasvc-sample`).

It exists to prove that discovery works end to end through the `mediasvc` entry-point group with no core change.
"""

from __future__ import annotations

import hashlib

from mediasvc.contracts import ProcessorContext, RenditionOut
from mediasvc.hookspecs import hookimpl


class ChecksumProcessor:
    """Reads the original and records its sha256 and byte count (a rendition-free processor)."""

    name = "sample_checksum"
    kinds = frozenset({"video", "audio", "image", "document"})
    timeout_seconds = 60

    async def run(self, ctx: ProcessorContext) -> list[RenditionOut]:
        digest = hashlib.sha256()
        size = 0
        async for chunk in ctx.storage.get_stream(ctx.asset["storage_key"]):
            digest.update(chunk)
            size += len(chunk)
            await ctx.progress(50.0)
        ctx.asset.setdefault("metadata", {})["sample_checksum"] = {"sha256": digest.hexdigest(), "bytes": size}
        return []


@hookimpl
def register_processors(settings):
    return [ChecksumProcessor()]
