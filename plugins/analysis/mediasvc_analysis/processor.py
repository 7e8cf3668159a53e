"""The ``analyze`` processing step (image assets): the default analysis types, results stored per asset."""

from __future__ import annotations

import asyncio
from typing import Any

from mediasvc.plugin import EventOut, MediaServiceError, PermanentProcessingError, ProcessorResult

from mediasvc_analysis.config import analysis_settings
from mediasvc_analysis.service import analyze_bytes, resolve_types, summary
from mediasvc_analysis.source import read_original
from mediasvc_analysis.store import IMAGE_ANALYZED, analyzed_payload, save_results


class AnalyzeProcessor:
    name = "analyze"
    kinds = frozenset({"image"})
    needs = frozenset({"image"})  # an image the image step rejects (a bomb, not an image) is not analyzed

    def __init__(self, timeout_seconds: int = 300) -> None:
        self.timeout_seconds = timeout_seconds

    async def run(self, ctx: Any) -> ProcessorResult:
        options = analysis_settings(ctx.settings)
        analyzers = ctx.host.analyzers
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
        await save_results(ctx.asset, response, decoded, emit_analyzed=False)
        await ctx.progress(100, "analysed")
        analyzed = EventOut(type=IMAGE_ANALYZED, data=analyzed_payload(ctx.asset["id"], response))
        return ProcessorResult(metadata={"analysis": summary(response)}, events=[analyzed])
