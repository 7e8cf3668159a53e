"""Recording sessions with their chunk strip, the queue, the event outbox and deliveries, the loaded plugins."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from mediasvc import events
from mediasvc.dashboard import queries as dq
from mediasvc.dashboard import queries_ops as ops
from mediasvc.dashboard.auth import admin_guard
from mediasvc.dashboard.render import render, wants_fragment
from mediasvc.dashboard.views_assets import operator_of
from mediasvc.errors import Forbidden, NotFound
from mediasvc.text_rules import check_query

SESSION_STATUSES = ("active", "completed", "failed", "deleted")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class SessionsController(Controller):
    path = "/dashboard/sessions"
    include_in_schema = False

    @get("/")
    async def list_sessions(self, request: HTMXRequest, status: str = "", q: str = "",
                            cursor: str | None = None) -> Template:
        check_query(status=status, q=q, cursor=cursor)
        rows, next_cursor = await ops.list_sessions(operator_of(request).tenant_id, status=status, q=q.strip(),
                                                    cursor=cursor)
        return render(request, "sessions.html", "_session_table.html", sessions=rows, next_cursor=next_cursor,
                      filters={"status": status, "q": q}, statuses=SESSION_STATUSES, cursor=cursor)

    @get("/{session_id:uuid}")
    async def session(self, request: HTMXRequest, session_id: UUID) -> Template:
        row = await ops.session_detail(operator_of(request).tenant_id, session_id)
        if row is None:
            raise NotFound(f"Recording session {session_id} not found")
        strip = await ops.chunk_strip(row)
        live = row["status"] == "active"
        if wants_fragment(request):  # the chunk strip polls this URL while the session is active
            return render(request, "session.html", "_chunk_strip.html", session=row, strip=strip, live=live)
        return render(request, "session.html", "_chunk_strip.html", session=row, strip=strip, live=live,
                      transcript=await dq.transcript_for(session_id=session_id))


class QueueController(Controller):
    path = "/dashboard/queue"
    include_in_schema = False

    @get("/")
    async def queue_page(self, request: HTMXRequest) -> Template:
        operator = operator_of(request)
        services = request.app.state.services
        # job arguments name assets of every tenant: only operators without a tenant scope see the job list
        info, failed = await ops.gather_queue(services.queue, operator.tenant_id, jobs=operator.tenant_id is None)
        return render(request, "queue.html", "_queue_depth.html", queue=info, failed=failed,
                      queue_name=services.settings.queue.name)

    @get("/depth")
    async def depth(self, request: HTMXRequest) -> Template:
        """The live queue figures (overview and queue page)."""
        info = await ops.queue_info(request.app.state.services.queue)
        return Template(template_name="partials/_queue_depth.html", context={"queue": info})

    @post("/jobs/{key:str}/{action:str}", guards=[admin_guard], status_code=303)
    async def job_action(self, request: HTMXRequest, key: str, action: str) -> Response[Any]:
        if operator_of(request).tenant_id is not None:
            raise Forbidden("Queue jobs are shared by every tenant: only an operator without a tenant scope can act")
        if action not in ("retry", "abort"):
            raise NotFound(f"Unknown action {action!r}")
        queue, job = await ops.find_job(request.app.state.services.queue, key)  # either queue of the pair
        if job is None:
            raise NotFound(f"Job {key} not found (it may have finished)")
        if action == "abort":
            await queue.abort(job, "aborted from the dashboard")
        else:
            await queue.retry(job, "retried from the dashboard")
        if wants_fragment(request):
            return Response("", status_code=200, headers={"HX-Refresh": "true"})
        return Redirect("/dashboard/queue", status_code=303)


class EventsController(Controller):
    path = "/dashboard/events"
    include_in_schema = False

    @get("/")
    async def list_events(self, request: HTMXRequest, type: str = "", delivery: str = "",
                          cursor: str | None = None) -> Template:
        check_query(type=type, delivery=delivery, cursor=cursor)
        rows, next_cursor = await ops.list_events(operator_of(request).tenant_id, type_=type, delivery=delivery,
                                                  cursor=cursor)
        event_types = request.app.state.services.host.event_types  # the core's and those plugins declare
        return render(request, "events.html", "_event_table.html", events=rows, next_cursor=next_cursor,
                      filters={"type": type, "delivery": delivery}, event_types=event_types,
                      delivery_statuses=DELIVERY_STATUSES, cursor=cursor)

    @post("/deliveries/{delivery_id:uuid}/redeliver", guards=[admin_guard], status_code=200)
    async def redeliver(self, request: HTMXRequest, delivery_id: UUID) -> Response[Any]:
        """Back to ``pending``, due now, and a dispatcher kicked: one more attempt, whatever the status was."""
        tenant = operator_of(request).tenant_id
        if await ops.delivery(tenant, delivery_id) is None:
            raise NotFound(f"Delivery {delivery_id} not found")
        await ops.redeliver(delivery_id)
        await events.kick(request.app.state.services.queue)
        if wants_fragment(request):
            return Template(template_name="partials/_delivery.html",
                            context={"d": await ops.delivery(tenant, delivery_id), "operator": operator_of(request)})
        return Redirect("/dashboard/events", status_code=303)


class PluginsController(Controller):
    path = "/dashboard/plugins"
    include_in_schema = False

    @get("/")
    async def plugins(self, request: HTMXRequest) -> Template:
        host = request.app.state.services.host
        return render(request, "plugins.html", None, plugins=host.plugin_infos(),
                      processors=sorted(host.processors), sinks=sorted(host.event_sinks))
