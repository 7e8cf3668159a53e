"""Overview, the asset list and an asset's page with live processing progress and admin actions."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.params import Parameter
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from mediasvc import events
from mediasvc.api.assets import processing_status
from mediasvc.asset_jobs import PURGE_JOB
from mediasvc.dashboard import queries as dq
from mediasvc.dashboard.auth import Operator, admin_guard
from mediasvc.dashboard.previews import preview_context
from mediasvc.dashboard.queries_ops import queue_info
from mediasvc.dashboard.render import render, render_panels, wants_fragment
from mediasvc.errors import Conflict, NotFound
from mediasvc.processing import schedule_processing
from mediasvc.text_rules import check_query
from mediasvc.queue import enqueue_job
from mediasvc.tables import Asset, ProcessingJob

ASSET_STATUSES = ("pending", "uploading", "uploaded", "processing", "ready", "failed", "deleted")
BUSY = ("uploaded", "processing")


def operator_of(request: HTMXRequest) -> Operator:
    return request.state.operator


async def _asset_or_404(request: HTMXRequest, asset_id: UUID) -> dict[str, Any]:
    row = await dq.asset_detail(operator_of(request).tenant_id, asset_id)
    if row is None:
        raise NotFound(f"Asset {asset_id} not found")
    return row


async def processing_context(request: HTMXRequest, row: dict[str, Any]) -> dict[str, Any]:
    """What ``_asset_processing.html`` needs; ``live`` keeps it polling until every step is done."""
    if isinstance(row.get("metadata"), str):
        row = {**row, "metadata": json.loads(row["metadata"])}
    status = await processing_status(row, request.app.state.services.host.processors)
    live = row["status"] in BUSY or any(s.status in ("queued", "running") for s in status.steps)
    return {"asset": row, "processing": status, "live": live}


def scan_cache(request: HTMXRequest) -> dict[Any, Any]:
    """The app's cache for figures that need a full scan (overview counts, storage per bucket)."""
    state = request.app.state
    if "dashboard_scan_cache" not in state:
        state["dashboard_scan_cache"] = {}
    return state["dashboard_scan_cache"]


class OverviewController(Controller):
    path = "/dashboard"
    include_in_schema = False

    @get("/")
    async def overview(self, request: HTMXRequest) -> Template:
        tenant = operator_of(request).tenant_id
        if wants_fragment(request):
            counts = await dq.overview_counts(tenant, scan_cache(request))
            return render(request, "overview.html", "_overview_stats.html", counts=counts)
        services = request.app.state.services
        # The two full scans (counts, storage per bucket) run side by side when their caches are cold.
        counts, storage, failures, queue = await asyncio.gather(
            dq.overview_counts(tenant, scan_cache(request)), dq.storage_by_bucket(tenant, scan_cache(request)),
            dq.recent_failures(tenant), queue_info(services.queue))
        return render(request, "overview.html", "_overview_stats.html", counts=counts, storage=storage,
                      failures=failures, queue=queue, panels=render_panels(request), statuses=ASSET_STATUSES)


class AssetsController(Controller):
    path = "/dashboard/assets"
    include_in_schema = False

    @get("/")
    async def list_assets(self, request: HTMXRequest, search: Annotated[str, Parameter(query="q")] = "", status: str = "", profile: str = "",
                          kind: str = "", cursor: str | None = None) -> Template:
        check_query(q=search, status=status, profile=profile, kind=kind, cursor=cursor)
        rows, next_cursor = await dq.list_assets(operator_of(request).tenant_id, q=search, status=status,
                                                profile=profile, kind=kind, cursor=cursor)
        filters = {"q": search, "status": status, "profile": profile, "kind": kind}
        profiles = sorted(request.app.state.services.settings.profiles)
        return render(request, "assets.html", "_asset_table.html", assets=rows, next_cursor=next_cursor,
                      filters=filters, statuses=ASSET_STATUSES, profiles=profiles, cursor=cursor,
                      kinds=("video", "audio", "image", "document"))

    @get("/{asset_id:uuid}")
    async def asset(self, request: HTMXRequest, asset_id: UUID) -> Template:
        row = await _asset_or_404(request, asset_id)
        context = await processing_context(request, row)
        if wants_fragment(request):  # the self-replacing processing panel polls this URL
            return render(request, "asset.html", "_asset_processing.html", **context)
        renditions = await dq.renditions(asset_id)
        previews = preview_context(request.app.state.services.settings, row, renditions,
                                   operator_of(request).email)
        return render(request, "asset.html", "_asset_processing.html", **context, **previews,
                      renditions=renditions, transcript=await dq.transcript_for(asset_id=asset_id),
                      panels=render_panels(request, asset=row))

    @get("/{asset_id:uuid}/progress")
    async def progress(self, request: HTMXRequest, asset_id: UUID) -> Template:
        """The compact progress bar of one list row (polls itself until the asset is done)."""
        row = await _asset_or_404(request, asset_id)
        row["progress"] = (await dq.progress_for([asset_id])).get(asset_id, 0.0)
        return Template(template_name="partials/_progress_cell.html", context={"a": row})

    @post("/{asset_id:uuid}/reprocess", guards=[admin_guard], status_code=200)
    async def reprocess(self, request: HTMXRequest, asset_id: UUID) -> Response[Any]:
        """Run every step of the profile again, or only ``step`` (retry of a failed step)."""
        row = await _asset_or_404(request, asset_id)
        services = request.app.state.services
        form = await request.form()
        step = str(form.get("step") or "")
        if row["status"] in ("pending", "uploading", "deleted"):
            raise Conflict(f"A {row['status']} asset cannot be processed")
        profile = services.settings.profiles.get(row["profile"])
        steps = [step] if step else list(profile.steps if profile else [])
        unknown = [s for s in steps if s not in services.host.processors]
        if unknown or not steps:
            raise Conflict(f"No processor installed for {', '.join(unknown) or 'this profile'}")
        active = await ProcessingJob.count().where(ProcessingJob.asset == asset_id,
                                                   ProcessingJob.status.is_in(["queued", "running"]))
        if active:
            raise Conflict("The asset is being processed; try again when it is done")
        await schedule_processing(services.queue, services.settings, services.host, asset_id, steps=steps)
        if wants_fragment(request):
            return render(request, "asset.html", "_asset_processing.html",
                          **await processing_context(request, await _asset_or_404(request, asset_id)))
        return Redirect(f"/dashboard/assets/{asset_id}", status_code=303)

    @post("/{asset_id:uuid}/delete", guards=[admin_guard], status_code=303)
    async def delete(self, request: HTMXRequest, asset_id: UUID) -> Response[Any]:
        """Soft delete, as the API does: status ``deleted``, event ``media.deleted``, files purged by a job."""
        row = await _asset_or_404(request, asset_id)
        services = request.app.state.services
        now = datetime.now(timezone.utc)
        async with Asset._meta.db.transaction():
            await Asset.update({Asset.status: "deleted", Asset.deleted_at: now, Asset.updated_at: now}).where(
                Asset.id == asset_id)
            await events.emit(events.MEDIA_DELETED, {"asset_id": str(asset_id), "profile": row["profile"],
                                                     "kind": row["kind"]}, tenant_id=row["tenant"])
        await enqueue_job(services.queue, services.settings, PURGE_JOB, asset_id=str(asset_id))
        await events.kick(services.queue)
        if wants_fragment(request):
            return Response("", status_code=200, headers={"HX-Redirect": "/dashboard/assets"})
        return Redirect("/dashboard/assets", status_code=303)
