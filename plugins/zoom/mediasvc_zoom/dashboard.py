"""Dashboard pages under ``/dashboard/live-sessions`` (behind the operator guard) and the live panel's fragment.

The overview panel holds a fragment that replaces itself every few seconds (``/dashboard/live-sessions/now``):
who is in a meeting right now, as the webhook jobs write it. A session's page shows its attendance report, live
while the meeting runs, with JSON and CSV exports.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template

from mediasvc_zoom.reports import build_report, download_headers, report_csv
from mediasvc_zoom.settings import zoom_settings
from mediasvc_zoom.store import get_session_row
from mediasvc_zoom.tables import LiveSession
from mediasvc.plugin import LoginRequired, login_redirect, operator_guard, operator_of, render

BASE = "/dashboard/live-sessions"
POLL_SECONDS = 2


async def in_meeting_now(tenant_id: UUID | None) -> list[dict[str, Any]]:
    """Open intervals of sessions not yet ended: who is in a meeting right now. A session that never reported
    ``meeting.started`` stops counting an hour after its scheduled end (a lost ``meeting.ended`` cannot keep
    people in it for ever)."""
    sql = ("SELECT s.id AS session_id, s.name AS session_name, s.status, i.participant_key, i.name, i.email, "
           "i.joined_at, i.matched_user_name FROM zoom_participant_intervals i "
           "JOIN zoom_live_sessions s ON s.id = i.live_session "
           "WHERE i.left_at IS NULL AND (s.status = 'live' OR "
           "(s.status = 'scheduled' AND s.scheduled_end > now() - interval '1 hour'))")
    args: list[Any] = []
    if tenant_id is not None:
        sql += " AND s.tenant = {}"
        args.append(tenant_id)
    return await LiveSession.raw(sql + " ORDER BY s.scheduled_start, s.id, i.joined_at LIMIT 500", *args)


def group_by_session(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sessions: dict[UUID, dict[str, Any]] = {}
    for r in rows:
        entry = sessions.setdefault(r["session_id"], {"id": r["session_id"], "name": r["session_name"],
                                                      "status": r["status"], "people": []})
        entry["people"].append(r)
    return list(sessions.values())


class LiveSessionPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/")
    async def list_page(self, request: HTMXRequest) -> Template:
        query = LiveSession.select(LiveSession.all_columns(), LiveSession.tenant.slug.as_alias("tenant_slug"))
        tenant_id = operator_of(request).tenant_id
        if tenant_id is not None:
            query = query.where(LiveSession.tenant == tenant_id)
        rows = await query.order_by(LiveSession.scheduled_start, ascending=False).limit(200)
        return render(request, "zoom_live_sessions.html", live_sessions=rows)

    @get("/now")
    async def now(self, request: HTMXRequest) -> Template:
        """The live panel's self-replacing fragment."""
        rows = await in_meeting_now(operator_of(request).tenant_id)
        return Template(template_name="partials/_zoom_live_now.html",
                        context={"sessions": group_by_session(rows), "count": len(rows), "poll": POLL_SECONDS})

    @get("/{session_id:uuid}")
    async def session_page(self, request: HTMXRequest, session_id: FromPath[UUID]) -> Template:
        row = await get_session_row(session_id, operator_of(request).tenant_id)
        report = await build_report(row, zoom_settings(request.app.state.services.host))
        live = row["status"] in ("scheduled", "live")
        return render(request, "zoom_live_session.html", "_zoom_attendance.html", live_session=row, report=report,
                      live=live, poll=POLL_SECONDS)

    @get("/{session_id:uuid}/attendance.json")
    async def export_json(self, request: HTMXRequest, session_id: FromPath[UUID]) -> Response[Any]:
        row = await get_session_row(session_id, operator_of(request).tenant_id)
        report = await build_report(row, zoom_settings(request.app.state.services.host))
        return Response(report, headers=download_headers(report, "json"))

    @get("/{session_id:uuid}/attendance.csv")
    async def export_csv(self, request: HTMXRequest, session_id: FromPath[UUID]) -> Response[bytes]:
        row = await get_session_row(session_id, operator_of(request).tenant_id)
        report = await build_report(row, zoom_settings(request.app.state.services.host))
        return Response(report_csv(report), media_type="text/csv; charset=utf-8", headers=download_headers(report, "csv"))


def dashboard_router() -> Router:
    return Router(path=BASE, route_handlers=[LiveSessionPages], guards=[operator_guard], request_class=HTMXRequest,
                  exception_handlers={LoginRequired: login_redirect}, include_in_schema=False,
                  response_headers=[ResponseHeader(name="Cache-Control", value="no-store")])
