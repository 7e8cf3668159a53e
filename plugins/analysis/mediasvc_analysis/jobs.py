"""``analysis.analyze_asset``: one SAQ job per image of an ``analyze-image/batch`` request."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from mediasvc.plugin import Asset, MediaServiceError, kick_events

from mediasvc_analysis.config import analysis_settings
from mediasvc_analysis.pipeline import analyze_asset

ANALYZE_JOB = "analysis.analyze_asset"


async def analyze_asset_job(ctx: dict[str, Any], *, asset_id: str, analysis_types: list[str], max_labels: int,
                            min_confidence: float) -> dict[str, Any]:
    settings = ctx["settings"]
    options = analysis_settings(settings)
    analyzers = ctx["host"].analyzers
    asset = await Asset.select().where(Asset.id == UUID(asset_id)).output(load_json=True).first()
    if asset is None or asset["status"] == "deleted":
        return {"asset_id": asset_id, "skipped": "asset deleted"}
    try:
        response = await analyze_asset(asset, ctx["storage"], analyzers, analysis_types, max_labels=max_labels,
                                       min_confidence=min_confidence, options=options)
    except MediaServiceError as exc:  # bad input or a missing model: the job ends with the reason, no retry loop
        return {"asset_id": asset_id, "error": exc.code, "message": exc.message}
    await kick_events(ctx["queue"])
    return {"asset_id": asset_id, "analysis_types": response.analysis_types,
            "flagged": bool(response.moderation and response.moderation.flagged)}
