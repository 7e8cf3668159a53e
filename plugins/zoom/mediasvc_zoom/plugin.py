"""Hook implementations of mediasvc-zoom: settings, tables, routes, the webhook job, dashboard panel and link."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mediasvc_zoom.api import live_sessions_router
from mediasvc_zoom.client import close_client
from mediasvc_zoom.dashboard import BASE, dashboard_router
from mediasvc_zoom.jobs import process_event
from mediasvc_zoom.settings import SECTION, ZoomSettings
from mediasvc_zoom.tables import bind_to_core_engine
from mediasvc_zoom.webhook import PROCESS_JOB, zoom_webhook
from mediasvc.plugin import MenuLink, Panel, hookimpl

if TYPE_CHECKING:
    from litestar import Litestar, Request

    from mediasvc.plugin import Settings


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, ZoomSettings)]


@hookimpl
def piccolo_apps() -> list[str]:
    return ["mediasvc_zoom.piccolo_app"]


@hookimpl
def register_routes(settings: Settings) -> list[Any]:
    return [live_sessions_router(), zoom_webhook, dashboard_router()]


@hookimpl
def register_jobs() -> list[tuple[str, Callable[..., Any]]]:
    return [(PROCESS_JOB, process_event)]


@hookimpl
def startup(app: Litestar | None) -> None:
    bind_to_core_engine()  # the core tables are bound to this app's (or worker's) pool by now


@hookimpl
def shutdown(app: Litestar | None) -> Any:
    if app is not None:
        return close_client(app.state.services.host)
    return None


@hookimpl
def dashboard_panels(request: Request[Any, Any, Any]) -> list[Panel]:
    return [Panel(title="In a live session now", template="partials/_zoom_live_panel.html", order=50)]


@hookimpl
def menu_links(request: Request[Any, Any, Any]) -> list[MenuLink]:
    return [MenuLink(label="Live sessions", href=BASE, order=50)]


@hookimpl
def register_event_types() -> list[str]:
    from mediasvc_zoom.jobs import ATTENDANCE_UPDATED

    return [ATTENDANCE_UPDATED]
