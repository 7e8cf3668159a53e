"""The course page: a course's media for learners, with instructor extras (every status, add and remove)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Request, get, post
from litestar.response import Template

from mediasvc_lti import claims as c
from mediasvc_lti.runtime import LtiRuntime
from mediasvc_lti.session import FORM_FIELD, load_session
from mediasvc_lti.tables import ContextAsset
from mediasvc_lti import openapi
from mediasvc.plugin import Asset, BadRequest, Forbidden, NotFound, Rendition, serve_url

AVAILABLE_LIMIT = 100


async def course_items(context_id: UUID | None, *, instructor: bool) -> list[dict[str, Any]]:
    """Assets placed in the course, oldest first; learners see only ready ones."""
    if context_id is None:
        return []
    query = ContextAsset.select(
        ContextAsset.asset.id.as_alias("id"), ContextAsset.asset.original_name.as_alias("name"),
        ContextAsset.asset.kind.as_alias("kind"), ContextAsset.asset.status.as_alias("status"),
        ContextAsset.asset.storage_key.as_alias("storage_key"),
    ).where(ContextAsset.context == context_id, ContextAsset.asset.status != "deleted").order_by(
        ContextAsset.created_at)
    if not instructor:
        query = query.where(ContextAsset.asset.status == "ready")
    return await query


async def ready_assets(tenant_id: UUID, exclude: set[UUID]) -> list[dict[str, Any]]:
    rows = await Asset.select(Asset.id, Asset.original_name.as_alias("name"), Asset.kind).where(
        Asset.tenant == tenant_id, Asset.status == "ready").order_by(Asset.created_at, ascending=False).limit(
        AVAILABLE_LIMIT)
    return [row for row in rows if row["id"] not in exclude]


async def with_urls(lti: LtiRuntime, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A signed URL per ready asset: its MP4 rendition when there is one, else the original."""
    ids = [item["id"] for item in items if item["status"] == "ready"]
    mp4 = {}
    if ids:
        rows = await Rendition.select(Rendition.asset, Rendition.storage_key).where(
            Rendition.asset.is_in(ids), Rendition.kind == "mp4")
        mp4 = {row["asset"]: row["storage_key"] for row in rows}
    for item in items:
        key = mp4.get(item["id"]) or item["storage_key"]
        item["url"] = serve_url(lti.settings, key) if item["status"] == "ready" and key else None
    return items


async def render_course(lti: LtiRuntime, launch: dict[str, Any], *, focus: UUID | None = None,
                        notice: str = "") -> Template:
    instructor = launch["role"] == c.INSTRUCTOR
    items = await with_urls(lti, await course_items(launch["context"], instructor=instructor))
    available = await ready_assets(launch["tenant"], {i["id"] for i in items}) if instructor else []
    return Template(template_name="lti/course.html", context={
        "launch": launch, "instructor": instructor, "items": items, "available": available,
        "focus": next((i for i in items if i["id"] == focus), None), "session_field": FORM_FIELD,
        "notice": notice,
    }, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@get("/course", name="lti_course", opt=openapi.COURSE)
async def course_page(request: Request[Any, Any, Any], lti: LtiRuntime) -> Template:
    """The course page again (cookie, or ``?lti_session=`` where third-party cookies are blocked)."""
    launch = await load_session(lti, request, token=request.query_params.get(FORM_FIELD))
    return await render_course(lti, launch)


@post("/course/assets", name="lti_course_assets", status_code=200, opt=openapi.COURSE_ASSETS)
async def change_course_assets(request: Request[Any, Any, Any], lti: LtiRuntime) -> Template:
    """Instructors add (``action=add``) or remove (``action=remove``) one of the tenant's assets."""
    form = await request.form()
    launch = await load_session(lti, request, token=form.get(FORM_FIELD), cookie_allowed=False)
    if launch["role"] != c.INSTRUCTOR:
        raise Forbidden("Only instructors change a course's media")
    if launch["context"] is None:
        raise BadRequest("This launch has no course to change")
    asset_id = parse_asset_id(form.get("asset_id"))
    action = form.get("action")
    if action == "add":
        await tenant_asset(launch["tenant"], asset_id)
        await add_to_course(launch["context"], asset_id, launch["user"])
        notice = "Added to the course."
    elif action == "remove":
        await ContextAsset.delete().where(ContextAsset.context == launch["context"], ContextAsset.asset == asset_id)
        notice = "Removed from the course."
    else:
        raise BadRequest("action must be 'add' or 'remove'")
    return await render_course(lti, launch, notice=notice)


def parse_asset_id(value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise BadRequest("asset_id must be an asset id") from None


async def tenant_asset(tenant_id: UUID, asset_id: UUID, *, ready: bool = False) -> dict[str, Any]:
    row = await Asset.select(Asset.id, Asset.original_name, Asset.kind, Asset.status).where(
        Asset.id == asset_id, Asset.tenant == tenant_id, Asset.status != "deleted").first()
    if row is None or (ready and row["status"] != "ready"):
        raise NotFound(f"Asset {asset_id} not found{' or not ready' if ready else ''}",
                       details={"asset_id": str(asset_id)})
    return row


async def add_to_course(context_id: UUID, asset_id: UUID, user_id: UUID | None) -> None:
    await ContextAsset.raw(
        "INSERT INTO lti_context_assets (id, context, asset, added_by, created_at) "
        "VALUES (gen_random_uuid(), {}, {}, {}, now()) ON CONFLICT (context, asset) DO NOTHING",
        context_id, asset_id, user_id)
