"""The ``analyze`` processing step (image assets): the default analysis types, results stored per asset."""

from __future__ import annotations

import asyncio
from typing import Any

from mediasvc.contracts import RenditionOut
from mediasvc.errors import MediaServiceError
from mediasvc.processing import PermanentProcessingError

from mediasvc_analysis.config import analysis_settings
from mediasvc_analysis.registry import analyzers_for
from mediasvc_analysis.service import analyze_bytes, resolve_types, summary
from mediasvc_analysis.source import read_original
from mediasvc_analysis.store import save_results


class AnalyzeProcessor:
    name = "analyze"
    kinds = frozenset({"image"})

    def __init__(self, timeout_seconds: int = 300) -> None:
        self.timeout_seconds = timeout_seconds

    async def run(self, ctx: Any) -> list[RenditionOut]:
        options = analysis_settings(ctx.settings)
        analyzers = analyzers_for(ctx.settings)
        try:
            types = resolve_types(None, analyzers, options)
            data = await read_original(ctx.storage, ctx.asset, options)
            await ctx.progress(10, "analysing")
            response, decoded = await asyncio.to_thread(
                analyze_bytes, data, analyzers, types, max_labels=options.max_labels,
                min_confidence=options.min_confidence, options=options)
        except MediaServiceError as exc:  # bad input, missing model, over a limit: retrying cannot help
            raise PermanentProcessingError(exc.message) from exc
        response.asset_id = ctx.asset["id"]
        await save_results(ctx.asset, response, decoded)
        metadata = ctx.asset.get("metadata")
        if not isinstance(metadata, dict):
            metadata = ctx.asset["metadata"] = {}
        metadata["analysis"] = summary(response)  # run_step merges keys a processor adds into the asset
        await ctx.progress(100, "analysed")
        return []
