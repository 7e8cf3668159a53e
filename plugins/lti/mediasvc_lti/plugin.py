"""Hook implementations of mediasvc-lti (the ``lti`` entry point)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mediasvc_lti.settings import SECTION, LtiSettings
from mediasvc_lti.tables import LTI_TABLES
from mediasvc.plugin import Tenant, bind_tables, hookimpl

if TYPE_CHECKING:
    from litestar import Litestar

    from mediasvc.plugin import Settings


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, LtiSettings)]


@hookimpl
def piccolo_apps() -> list[str]:
    return ["mediasvc_lti.piccolo_app"]


@hookimpl
def register_routes(settings: Settings) -> list[Any]:
    from mediasvc_lti.routes import lti_routes

    return lti_routes(settings)


@hookimpl
def startup(app: Litestar | None) -> None:
    # Our tables use the engine the core tables were just bound to (the app's, or the worker's when app is None).
    engine = app.state.services.engine if app is not None else Tenant._meta.db
    bind_tables(engine, LTI_TABLES)
