"""Results per asset (``image_analyses``) and the review flag, with ``asset.flagged`` in the same transaction
(and ``image.analyzed``, unless the ``analyze`` step returns it with its result)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from mediasvc.plugin import Asset, emit_event

from mediasvc_analysis.imaging import DecodedImage
from mediasvc_analysis.schemas import AnalyzeResponse, to_dict
from mediasvc_analysis.tables import ANALYSIS_TABLES, ImageAnalysis

IMAGE_ANALYZED = "image.analyzed"
ASSET_FLAGGED = "asset.flagged"


def bind() -> None:
    """Use whatever engine the core tables use right now (the app's or the worker's pool)."""
    for table in ANALYSIS_TABLES:
        table._meta.db = Asset._meta.db


UPSERT = """
INSERT INTO image_analyses (asset, tenant, results, phash, dhash, width, height, moderation_score, flagged)
VALUES ({}, {}, {}::jsonb, {}, {}, {}, {}, {}, {})
ON CONFLICT (asset) DO UPDATE SET results = EXCLUDED.results, phash = EXCLUDED.phash, dhash = EXCLUDED.dhash,
    width = EXCLUDED.width, height = EXCLUDED.height, moderation_score = EXCLUDED.moderation_score,
    flagged = EXCLUDED.flagged, updated_at = now()
"""


def analyzed_payload(asset_id: Any, response: AnalyzeResponse) -> dict[str, Any]:
    """The ``image.analyzed`` event's data."""
    moderation = response.moderation
    return {"asset_id": str(asset_id), "analysis_types": response.analysis_types,
            "labels": [label.name for label in response.labels[:5]], "faces": len(response.faces),
            "text": [t.text for t in response.text[:10]], "moderation": moderation.scores if moderation else None,
            "flagged": bool(moderation and moderation.flagged)}


async def save_results(asset: dict[str, Any], response: AnalyzeResponse, decoded: DecodedImage, *,
                       emit_analyzed: bool = True) -> bool:
    """Store the latest results and hashes; emit ``asset.flagged`` when the asset becomes flagged and, with
    ``emit_analyzed``, ``image.analyzed``. Returns whether the asset is flagged."""
    bind()
    moderation = response.moderation
    score = moderation.scores.get("nsfw") if moderation else None
    flagged = bool(moderation and moderation.flagged)
    tenant: UUID = asset["tenant"]
    async with ImageAnalysis._meta.db.transaction():
        before = await ImageAnalysis.select(ImageAnalysis.flagged).where(ImageAnalysis.asset == asset["id"]).first()
        await ImageAnalysis.raw(UPSERT, asset["id"], tenant, json.dumps(to_dict(response)), decoded.phash,
                                decoded.dhash, response.width, response.height, score, flagged)
        if emit_analyzed:
            await emit_event(IMAGE_ANALYZED, analyzed_payload(asset["id"], response), tenant_id=tenant)
        # asset.flagged marks this row's change to flagged, which a re-run would not see again: same transaction
        if flagged and not (before and before["flagged"]):
            await emit_event(ASSET_FLAGGED, {"asset_id": str(asset["id"]), "reason": "moderation",
                                             "score": score, "threshold": moderation.threshold},
                             tenant_id=tenant)
    return flagged


async def stored_results(asset_id: UUID) -> dict[str, Any] | None:
    bind()
    return await ImageAnalysis.select().where(ImageAnalysis.asset == asset_id).output(load_json=True).first()


SIMILAR = """
SELECT a.asset, a.phash, s.original_name,
       bit_count((a.phash # {})::bit(64)) AS distance
FROM image_analyses a JOIN assets s ON s.id = a.asset
WHERE a.tenant = {} AND a.asset <> {} AND a.phash IS NOT NULL AND s.status <> 'deleted'
  AND bit_count((a.phash # {})::bit(64)) <= {}
ORDER BY distance, s.created_at DESC
LIMIT {}
"""


async def similar_assets(tenant: UUID, asset_id: UUID, hash_value: int, max_distance: int,
                         limit: int) -> list[dict[str, Any]]:
    bind()
    return await ImageAnalysis.raw(SIMILAR, hash_value, tenant, asset_id, hash_value, max_distance, limit)
