"""The operator dashboard: server-rendered Jinja pages under /dashboard, live through htmx 2 fragments.

``dashboard_plugins(host)`` gives what ``create_app`` registers: the htmx plugin (request class set on the
dashboard router only, so the API keeps Litestar's plain Request) and an init plugin adding the template engine
(web/templates plus each plugin's ``templates/`` folder) and the dashboard routes behind the operator guard.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.config.app import AppConfig
from litestar.datastructures import ResponseHeader
from litestar.plugins import InitPluginProtocol
from litestar.plugins.htmx import HTMXConfig, HTMXPlugin, HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from mediasvc.dashboard.auth import LoginRequired, operator_guard
from mediasvc.dashboard.render import TEMPLATE_DIR, configure_engine, plugin_template_dirs
from mediasvc.dashboard.views_assets import AssetsController, OverviewController
from mediasvc.dashboard.views_auth import AuthController, login_redirect
from mediasvc.dashboard.views_ops import (
    EventsController,
    PluginsController,
    QueueController,
    SessionsController,
)


def dashboard_router() -> Router:
    return Router(
        path="/",
        route_handlers=[AuthController, OverviewController, AssetsController, SessionsController, QueueController,
                        EventsController, PluginsController],
        guards=[operator_guard],
        request_class=HTMXRequest,
        exception_handlers={LoginRequired: login_redirect},
        include_in_schema=False,
        response_headers=[ResponseHeader(name="Cache-Control", value="no-store")],
    )


class DashboardPlugin(InitPluginProtocol):
    def __init__(self, host: Any) -> None:
        self.host = host

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.template_config = TemplateConfig(
            directory=[TEMPLATE_DIR, *plugin_template_dirs(self.host)],
            engine=JinjaTemplateEngine,
            engine_callback=configure_engine,
        )
        app_config.route_handlers.append(dashboard_router())
        return app_config


def dashboard_plugins(host: Any) -> list[Any]:
    return [HTMXPlugin(HTMXConfig(set_request_class_globally=False)), DashboardPlugin(host)]
