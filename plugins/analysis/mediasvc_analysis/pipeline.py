"""Analyse a stored asset end to end: read the original, analyse in a thread, store results and hashes, merge a
summary into the asset's metadata (the dashboard panel reads it). Used by the API, the batch job and the step."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from mediasvc.plugin import Analyzer, Asset

from mediasvc_analysis.config import AnalysisSettings
from mediasvc_analysis.schemas import AnalyzeResponse
from mediasvc_analysis.service import analyze_bytes, summary
from mediasvc_analysis.source import read_original
from mediasvc_analysis.store import save_results


async def analyze_asset(asset: dict[str, Any], storage: Any, analyzers: Mapping[str, Analyzer], types: list[str], *,
                        max_labels: int, min_confidence: float, options: AnalysisSettings,
                        merge_metadata: bool = True) -> AnalyzeResponse:
    data = await read_original(storage, asset, options)
    response, decoded = await asyncio.to_thread(analyze_bytes, data, analyzers, types, max_labels=max_labels,
                                                min_confidence=min_confidence, options=options)
    response.asset_id = asset["id"]
    await save_results(asset, response, decoded)
    if merge_metadata:
        await merge_summary(asset["id"], summary(response))
    return response


async def merge_summary(asset_id: Any, value: dict[str, Any]) -> None:
    """Merge ``{"analysis": ...}`` into the asset's metadata (keys merged, never a whole-document overwrite)."""
    await Asset.raw("UPDATE assets SET metadata = metadata || {}::jsonb WHERE id = {}",
                    json.dumps({"analysis": value}), asset_id)
