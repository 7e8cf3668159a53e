"""``/api/v1`` endpoints: analyze-image (upload or asset), batch, extract-attributes, similar, stored results.

Mounted by ``register_routes`` in a router of their own behind the core's API-key guard; a key sees only its
tenant's assets (another tenant's asset is a 404).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Router, get, post
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from mediasvc.plugin import (
    NotFound, PrincipalDep, ServicesDep, ValidationFailed, api_key_guard, get_asset_row, kick_events,
)

from mediasvc_analysis import openapi
from mediasvc_analysis.colors import dominant_colors
from mediasvc_analysis.config import AnalysisSettings, analysis_settings
from mediasvc_analysis.forms import is_multipart, read_json, read_upload
from mediasvc_analysis.jobs import ANALYZE_JOB
from mediasvc_analysis.phash import hex64
from mediasvc_analysis.pipeline import analyze_asset
from mediasvc_analysis.schemas import (
    AnalyzeRequest,
    AnalyzeResponse,
    AttributesRequest,
    BatchJob,
    BatchRequest,
    BatchResponse,
    ProductAttributes,
    SimilarAsset,
    SimilarResponse,
)
from mediasvc_analysis.service import analyze_bytes, check_limits, resolve_types
from mediasvc_analysis.source import check_asset, read_original
from mediasvc_analysis.store import stored_results
from mediasvc_analysis.store import similar_assets as find_similar

JSON_LIMIT = 64 * 1024
ATTRIBUTE_TYPES = ("labels", "text", "objects")


def _options(services: Any) -> AnalysisSettings:
    return services.host.plugin_settings.get("analysis") or analysis_settings(services.settings)


def _analyzers(services: Any) -> Any:
    return services.host.analyzers


class AnalysisController(Controller):
    tags = ["analysis"]

    @post("/analyze-image", status_code=HTTP_200_OK, request_max_body_size=None, opt=openapi.ANALYZE,
          summary="Analyse an image: multipart 'file' upload, or JSON {asset_id}")
    async def analyze_image(self, request: Request[Any, Any, Any], services: ServicesDep,
                            principal: PrincipalDep) -> AnalyzeResponse:
        options, analyzers = _options(services), _analyzers(services)
        if is_multipart(request):
            form = await read_upload(request, options.max_upload_bytes)
            types = resolve_types(form.types(), analyzers, options)
            max_labels, min_confidence = check_limits(form.number("max_labels", int),
                                                      form.number("min_confidence", float), options)
            response, _ = await asyncio.to_thread(analyze_bytes, form.data, analyzers, types, max_labels=max_labels,
                                                  min_confidence=min_confidence, options=options, with_hashes=False)
            return response
        body: AnalyzeRequest = await read_json(request, AnalyzeRequest, JSON_LIMIT)
        types = resolve_types(body.analysis_types, analyzers, options)
        max_labels, min_confidence = check_limits(body.max_labels, body.min_confidence, options)
        asset = await get_asset_row(body.asset_id, principal)
        response = await analyze_asset(asset, services.storage, analyzers, types, max_labels=max_labels,
                                       min_confidence=min_confidence, options=options)
        await kick_events(services.queue)
        return response

    @post("/analyze-image/batch", status_code=HTTP_202_ACCEPTED, opt=openapi.BATCH,
          summary="Analyse stored image assets in the background: one job per asset")
    async def analyze_batch(self, request: Request[Any, Any, Any], services: ServicesDep,
                            principal: PrincipalDep) -> BatchResponse:
        options, analyzers = _options(services), _analyzers(services)
        body: BatchRequest = await read_json(request, BatchRequest, JSON_LIMIT)
        if not body.asset_ids or len(body.asset_ids) > options.max_batch:
            raise ValidationFailed(f"asset_ids must list 1 to {options.max_batch} assets",
                                   details={"count": len(body.asset_ids), "max_batch": options.max_batch})
        types = resolve_types(body.analysis_types, analyzers, options)
        max_labels, min_confidence = check_limits(body.max_labels, body.min_confidence, options)
        assets = [await get_asset_row(asset_id, principal) for asset_id in dict.fromkeys(body.asset_ids)]
        for asset in assets:  # every asset checked before any job is queued
            check_asset(asset, options)
        jobs = []
        for asset in assets:
            job = await services.queue.enqueue(
                ANALYZE_JOB, key=f"{ANALYZE_JOB}:{asset['id']}:{uuid.uuid4().hex}",
                timeout=options.job_timeout_seconds, retries=2, retry_delay=1.0, retry_backoff=True,
                asset_id=str(asset["id"]), analysis_types=types, max_labels=max_labels,
                min_confidence=min_confidence)
            jobs.append(BatchJob(asset_id=asset["id"], job_id=job.id if job else ""))
        return BatchResponse(jobs=jobs, analysis_types=types)

    @post("/extract-attributes", status_code=HTTP_200_OK, request_max_body_size=None, opt=openapi.ATTRIBUTES,
          summary="Product attributes: dominant colours, text, top labels and objects, dimensions")
    async def extract_attributes(self, request: Request[Any, Any, Any], services: ServicesDep,
                                 principal: PrincipalDep) -> ProductAttributes:
        options, analyzers = _options(services), _analyzers(services)
        types = [t for t in ATTRIBUTE_TYPES if t in analyzers]
        asset_id = None
        if is_multipart(request):
            form = await read_upload(request, options.max_upload_bytes)
            data = form.data
            max_labels, _ = check_limits(form.number("max_labels", int) or 5, None, options)
        else:
            body: AttributesRequest = await read_json(request, AttributesRequest, JSON_LIMIT)
            asset = await get_asset_row(body.asset_id, principal)
            data = await read_original(services.storage, asset, options)
            max_labels, _ = check_limits(body.max_labels or 5, None, options)
            asset_id = asset["id"]
        started = time.perf_counter()
        response, decoded = await asyncio.to_thread(analyze_bytes, data, analyzers, types, max_labels=max_labels,
                                                    min_confidence=0.0, options=options, with_hashes=False)
        colours = await asyncio.to_thread(dominant_colors, decoded.image)
        w, h = decoded.width, decoded.height
        return ProductAttributes(
            width=w, height=h, aspect_ratio=round(w / h, 4),
            orientation="square" if abs(w - h) <= 0.02 * max(w, h) else ("landscape" if w > h else "portrait"),
            dominant_colors=colours, text=[t.text for t in response.text], labels=response.labels,
            objects=response.objects, asset_id=asset_id, analysis_types=types,
            processing_time_ms=round((time.perf_counter() - started) * 1000, 2))

    @get("/assets/{asset_id:uuid}/similar", summary="Near-duplicate images in the tenant (pHash Hamming distance)")
    async def similar(self, asset_id: FromPath[uuid.UUID], principal: PrincipalDep, services: ServicesDep,
                      max_distance: Annotated[int | None, QueryParameter(ge=0, le=32)] = None,
                      limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50) -> SimilarResponse:
        asset = await get_asset_row(asset_id, principal)
        distance = _options(services).similar_max_distance if max_distance is None else max_distance
        row = await stored_results(asset["id"])
        if row is None or row["phash"] is None:
            raise NotFound(f"Asset {asset_id} has not been analysed yet (no perceptual hash): add the 'analyze' "
                           f"step to its profile or POST /api/v1/analyze-image with its asset_id",
                           details={"asset_id": str(asset_id)})
        rows = await find_similar(principal.tenant_id, asset["id"], row["phash"], distance, limit)
        return SimilarResponse(asset_id=asset["id"], max_distance=distance, items=[
            SimilarAsset(asset_id=r["asset"], distance=int(r["distance"]), original_name=r["original_name"],
                         phash=hex64(r["phash"]) or "") for r in rows])

    @get("/assets/{asset_id:uuid}/analysis", summary="The latest stored analysis of an asset")
    async def stored(self, asset_id: FromPath[uuid.UUID], principal: PrincipalDep) -> AnalyzeResponse:
        asset = await get_asset_row(asset_id, principal)
        row = await stored_results(asset["id"])
        if row is None:
            raise NotFound(f"Asset {asset_id} has not been analysed yet", details={"asset_id": str(asset_id)})
        return msgspec.convert(row["results"], AnalyzeResponse)


def analysis_router() -> Router:
    return Router(path="/api/v1", guards=[api_key_guard], route_handlers=[AnalysisController])
