"""Asset records: create, list (filters + cursor pagination in a stable order), detail, soft delete."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Annotated, Any
from uuid import UUID, uuid4

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from mediasvc import events
from mediasvc.asset_jobs import PURGE_JOB, skip_open_steps
from mediasvc.auth import PrincipalDep
from mediasvc.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from mediasvc.media_urls import rendition_urls, serve_url
from mediasvc.openapi_doc import openapi_opt
from mediasvc.pagination import decode_cursor, encode_cursor
from mediasvc.processing import schedule_processing
from mediasvc.progress import etas as step_etas
from mediasvc.progress import overall as overall_progress
from mediasvc.queue import enqueue_job
from mediasvc.schemas import (
    Asset,
    AssetCreate,
    AssetDetail,
    AssetProcessingStatus,
    AssetStatus,
    Page,
    RenditionOut,
    ReprocessRequest,
    StepStatus,
)
from mediasvc.services import ServicesDep
from mediasvc.storage_keys import original_key
from mediasvc.tables import Asset as AssetRow
from mediasvc.tables import ProcessingJob, Rendition
from mediasvc.text_rules import check_text, clean_name


def to_asset(row: dict[str, Any]) -> Asset:
    return msgspec.convert({k: row[k] for k in Asset.__struct_fields__ if k in row}, Asset, from_attributes=True)


async def get_asset_row(asset_id: FromPath[UUID], principal: PrincipalDep, *, include_deleted: bool = False) -> dict[str, Any]:
    """The asset if it belongs to the caller's tenant; another tenant's asset is a 404, like a missing one."""
    query = AssetRow.select().where(AssetRow.id == asset_id, AssetRow.tenant == principal.tenant_id)
    row = await query.output(load_json=True).first()
    if row is None or (row["status"] == "deleted" and not include_deleted):
        raise NotFound(f"Asset {asset_id} not found", details={"asset_id": str(asset_id)})
    return row


async def step_statuses(asset_id: UUID) -> list[StepStatus]:
    rows = await ProcessingJob.select().where(ProcessingJob.asset == asset_id).order_by(ProcessingJob.created_at)
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:  # a reprocess adds rows: show the newest run of each step
        latest[row["step"]] = row
    return [msgspec.convert(row, StepStatus, from_attributes=True) for row in latest.values()]


async def processing_status(row: dict[str, Any], processors: dict[str, Any] | None = None) -> AssetProcessingStatus:
    """Each step's newest run, with overall progress and ETAs weighted by the processors' ``cost`` (each step
    counts 1 without ``processors``)."""
    steps = await step_statuses(row["id"])
    plain = [msgspec.structs.asdict(s) for s in steps]
    if plain:
        progress = overall_progress(plain, processors or {}, row)
        left, eta = step_etas(plain, processors or {}, row)
        steps = [msgspec.structs.replace(s, eta_seconds=None if v is None else round(v, 1))
                 for s, v in zip(steps, left)]
    else:
        progress, eta = (100.0 if row["status"] == "ready" else 0.0), None
    return AssetProcessingStatus(asset_id=row["id"], status=row["status"], error=row["error"],
                                 progress=round(progress, 1), steps=steps, eta_seconds=eta)


class AssetController(Controller):
    path = "/assets"
    tags = ["assets"]

    @post("/", status_code=HTTP_201_CREATED, opt=openapi_opt(errors=[413, 415]),
          summary="Create an asset record (bytes arrive through an upload)")
    async def create_asset(self, data: JSONBody[AssetCreate], principal: PrincipalDep, services: ServicesDep) -> Asset:
        profile = services.settings.profiles.get(data.profile)
        if profile is None:
            raise ValidationFailed(f"Unknown profile {data.profile!r}",
                                   details={"profile": data.profile, "available": sorted(services.settings.profiles)})
        name = clean_name(PurePosixPath(data.original_name.replace("\\", "/")).name).strip()
        extension = PurePosixPath(name).suffix.lower().lstrip(".")
        if not name or len(name) > 255:
            raise ValidationFailed("original_name must be a file name of 1-255 characters")
        if not profile.allows_format(extension):
            raise UnsupportedMediaType(
                f"Profile {data.profile!r} does not accept .{extension or '(none)'} files",
                details={"allowed": profile.formats},
            )
        if data.size_bytes is not None and data.size_bytes > profile.max_bytes:
            raise PayloadTooLarge(
                f"{data.size_bytes} bytes is over the {data.profile!r} limit of {profile.max_bytes} bytes",
                details={"max_bytes": profile.max_bytes},
            )
        if data.size_bytes is not None and data.size_bytes < 0:
            raise ValidationFailed("size_bytes must not be negative")
        asset_id = uuid4()
        row = AssetRow(
            id=asset_id, tenant=principal.tenant_id, owner=data.owner, profile=data.profile, kind=profile.kind,
            original_name=name, content_type=data.content_type or "application/octet-stream",
            size_bytes=data.size_bytes or 0, bucket=profile.bucket,
            storage_key=original_key(principal.tenant_slug, profile.kind, asset_id, extension),
            status="pending", metadata=data.metadata,
        )
        await row.save()
        return await self._fetch(asset_id, principal)

    @get("/", summary="List assets, newest first",
         opt=openapi_opt(text_query=("kind", "profile", "owner", "cursor")))
    async def list_assets(
        self,
        principal: PrincipalDep,
        kind: FromQuery[str | None] = None,
        status: FromQuery[AssetStatus | None] = None,
        profile: FromQuery[str | None] = None,
        owner: FromQuery[str | None] = None,
        created_after: FromQuery[datetime | None] = None,
        created_before: FromQuery[datetime | None] = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> Page[Asset]:
        for field, value in (("kind", kind), ("profile", profile), ("owner", owner), ("cursor", cursor)):
            check_text(value, field)
        where = [AssetRow.tenant == principal.tenant_id]
        where.append(AssetRow.status == status if status else AssetRow.status != "deleted")
        if kind:
            where.append(AssetRow.kind == kind)
        if profile:
            where.append(AssetRow.profile == profile)
        if owner:
            where.append(AssetRow.owner == owner)
        if created_after:
            where.append(AssetRow.created_at >= created_after)
        if created_before:
            where.append(AssetRow.created_at < created_before)
        query = AssetRow.select().where(*where)
        if cursor:
            created, last_id = decode_cursor(cursor)
            query = query.where(
                (AssetRow.created_at < created) | ((AssetRow.created_at == created) & (AssetRow.id < last_id))
            )
        rows = await query.order_by(AssetRow.created_at, AssetRow.id, ascending=False).limit(limit + 1).output(
            load_json=True
        )
        items = [to_asset(r) for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1]["created_at"], rows[limit - 1]["id"]) if len(rows) > limit \
            else None
        return Page(items=items, next_cursor=next_cursor)

    @get("/{asset_id:uuid}", summary="One asset with its renditions and processing steps")
    async def get_asset(self, asset_id: FromPath[UUID], principal: PrincipalDep,
                        services: ServicesDep) -> AssetDetail:
        row = await get_asset_row(asset_id, principal)
        renditions = rendition_urls(services.settings, await Rendition.select().where(
            Rendition.asset == asset_id).order_by(Rendition.kind).order_by(Rendition.name).output(load_json=True))
        asset = to_asset(row)
        return AssetDetail(**msgspec.structs.asdict(asset),
                           renditions=[msgspec.convert(r, RenditionOut, from_attributes=True) for r in renditions],
                           steps=await step_statuses(asset_id))

    @get("/{asset_id:uuid}/download", status_code=302, opt=openapi_opt(errors=[409]),
         summary="302 to a signed URL for the original, as an "
         "attachment with its file name")
    async def download(self, asset_id: FromPath[UUID], principal: PrincipalDep, services: ServicesDep) -> Redirect:
        row = await get_asset_row(asset_id, principal)
        if row["status"] in ("pending", "uploading"):
            raise Conflict("The asset has no original yet", details={"status": row["status"]})
        if services.storage.local_path(row["storage_key"]) is None:
            url = await services.storage.presign(row["storage_key"], method="GET",
                                                 expires_in=services.settings.storage.signed_url_ttl_seconds)
        else:
            url = serve_url(services.settings, row["storage_key"], download_name=row["original_name"] or None)
        return Redirect(url, status_code=302, headers={"Cache-Control": "no-store"})

    @get("/{asset_id:uuid}/status", summary="Processing status and progress of each step")
    async def get_status(self, asset_id: FromPath[UUID], principal: PrincipalDep,
                         services: ServicesDep) -> AssetProcessingStatus:
        return await processing_status(await get_asset_row(asset_id, principal), services.host.processors)

    @post("/{asset_id:uuid}/reprocess", status_code=HTTP_202_ACCEPTED, opt=openapi_opt(errors=[409]),
          summary="Run all (or the named) processing steps again; renditions are replaced, not duplicated")
    async def reprocess(self, asset_id: FromPath[UUID], principal: PrincipalDep, services: ServicesDep,
                        data: JSONBody[ReprocessRequest | None] = None) -> AssetProcessingStatus:
        row = await get_asset_row(asset_id, principal)
        if row["status"] in ("pending", "uploading"):
            raise Conflict("The asset has no original yet", details={"status": row["status"]})
        if (row.get("metadata") or {}).get("original_deleted_at"):
            raise Conflict("The original was deleted after its profile's retention period",
                           details={"original_deleted_at": row["metadata"]["original_deleted_at"]})
        profile_steps = services.settings.profiles[row["profile"]].steps
        steps = data.steps if data and data.steps else profile_steps
        unknown = [s for s in steps if s not in services.host.processors]
        if unknown:
            raise ValidationFailed(f"No processor for {unknown}", details={"available": sorted(services.host.processors)})
        active = await ProcessingJob.count().where(ProcessingJob.asset == asset_id,
                                                   ProcessingJob.status.is_in(["queued", "running"]))
        if active:
            raise Conflict("The asset is being processed; try again when it is done", details={"active_steps": active})
        await schedule_processing(services.queue, services.settings, services.host, asset_id, steps=steps)
        return await processing_status(await get_asset_row(asset_id, principal), services.host.processors)

    @delete("/{asset_id:uuid}", status_code=HTTP_202_ACCEPTED,
             summary="Soft-delete an asset; its files are removed by a background job")
    async def delete_asset(self, asset_id: FromPath[UUID], principal: PrincipalDep, services: ServicesDep) -> Asset:
        row = await get_asset_row(asset_id, principal)
        now = datetime.now(timezone.utc)
        async with AssetRow._meta.db.transaction():
            await AssetRow.update(
                {AssetRow.status: "deleted", AssetRow.deleted_at: now, AssetRow.updated_at: now}
            ).where(AssetRow.id == asset_id)
            await skip_open_steps(asset_id)
            await events.emit(events.MEDIA_DELETED, {"asset_id": str(asset_id), "profile": row["profile"],
                                                     "kind": row["kind"]}, tenant_id=principal.tenant_id)
        await enqueue_job(services.queue, services.settings, PURGE_JOB, asset_id=str(asset_id))
        await events.kick(services.queue)
        return await self._fetch(asset_id, principal, include_deleted=True)

    async def _fetch(self, asset_id: FromPath[UUID], principal: PrincipalDep, *, include_deleted: bool = False) -> Asset:
        return to_asset(await get_asset_row(asset_id, principal, include_deleted=include_deleted))

