"""``create_app(settings)``: the Litestar app, built in one small ``_configure_*`` step per concern."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from saq import Worker

from mediasvc import __version__
from mediasvc.api.assets import AssetController
from mediasvc.api.devices import DeviceController
from mediasvc.api.media import MEDIA_ROUTES
from mediasvc.api.ops import OpsController, StatsController
from mediasvc.api.plugins import PluginController
from mediasvc.dashboard.render import WEB_DIR
from mediasvc.api.sessions import SessionController
from mediasvc.api.tus import TusController
from mediasvc.api.uploads import PUBLIC_UPLOAD_ROUTES, UploadController
from mediasvc.api.validate import ValidateController
from mediasvc.delivery.api import PlaybackController
from mediasvc.delivery.embed import embed_player
from mediasvc.delivery.fast_path import hls_fast_path
from mediasvc.delivery.hls import HLS_ROUTES
from mediasvc.auth import api_key_guard, provide_principal
from mediasvc.cors import cors_middleware
from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
from mediasvc.draining import DrainState
from mediasvc.errors import exception_handler
from mediasvc.metrics import Metrics
from mediasvc.middleware import observability_middleware
from mediasvc.openapi_doc import openapi_config
from mediasvc.allow_header import allow_header_middleware
from mediasvc.plugins import PluginHost
from mediasvc.queue import create_queue
from mediasvc.services import Services, provide_services
from mediasvc.settings import Settings, ensure_secret_key, load_settings
from mediasvc.tables import CORE_TABLES
from mediasvc.worker_options import worker_options

log = logging.getLogger("mediasvc.app")


def create_app(settings: Settings | None = None, *, extra_plugins: Sequence[object] = ()) -> Litestar:
    """Build the app. ``extra_plugins`` are registered beside the entry-point plugins (tests, embedding)."""
    settings = ensure_secret_key(settings or load_settings())
    host = _configure_plugins(settings, extra_plugins)
    services = _configure_services(settings, host)
    app = Litestar(
        route_handlers=_configure_routes(settings, host),
        dependencies={"services": Provide(provide_services, sync_to_thread=False),
                      "principal": Provide(provide_principal, sync_to_thread=False)},
        exception_handlers={Exception: exception_handler},
        middleware=[observability_middleware, allow_header_middleware],
        lifespan=[_lifespan],
        openapi_config=_configure_openapi(),
        plugins=_configure_dashboard(host),
        state=State({"services": services, "drain": DrainState.from_environment()}),
        logging_config=None,  # logging is configured once by the CLI (JSON lines with request ids)
        request_max_body_size=settings.max_json_body_bytes,
        debug=False,
    )
    app.asgi_handler = hls_fast_path(app, app.asgi_handler)  # HLS bytes before routing, where it is safe
    app.asgi_handler = cors_middleware(settings.cors, app.asgi_handler)  # outermost: preflights need no key
    return app


def _configure_plugins(settings: Settings, extra_plugins: Sequence[object]) -> PluginHost:
    host = PluginHost(settings, extra_plugins)
    host.validate()
    return host


def _configure_services(settings: Settings, host: PluginHost) -> Services:
    engine = engine_for(settings.database_url)
    bind_tables(engine, CORE_TABLES)
    return Services(settings=settings, host=host, engine=engine, storage=host.create_storage(),
                    queue=create_queue(settings), metrics=Metrics())


def _configure_routes(settings: Settings, host: PluginHost) -> list[Any]:
    api = Router(
        path="/api/v1",
        guards=[api_key_guard],
        route_handlers=[AssetController, StatsController, PluginController, SessionController, DeviceController,
                        TusController, UploadController, ValidateController, PlaybackController],
    )
    routes: list[Any] = [api, OpsController, *MEDIA_ROUTES, *HLS_ROUTES, embed_player, *PUBLIC_UPLOAD_ROUTES,
                         *host.routes()]
    static_dir = WEB_DIR / "static"
    if static_dir.is_dir():
        routes.append(create_static_files_router(path="/static", directories=[static_dir], name="static",
                                                 include_in_schema=False))
    return routes


def _configure_dashboard(host: PluginHost) -> list[Any]:
    """Operator dashboard: Jinja templates, htmx (on the dashboard router only) and the /dashboard routes."""
    from mediasvc.dashboard import dashboard_plugins

    return dashboard_plugins(host)


def _configure_openapi() -> OpenAPIConfig:
    """The document is finished (error envelope, security, tus/multipart/form bodies) in mediasvc.openapi_doc."""
    return openapi_config(__version__)


async def _call_hooks(results: list[Any]) -> None:
    for result in results:
        if inspect.isawaitable(result):
            await result


@asynccontextmanager
async def _lifespan(app: Litestar) -> AsyncIterator[None]:
    services: Services = app.state.services
    settings = services.settings
    bind_tables(services.engine, CORE_TABLES)  # the last app started in a process owns the tables (tests)
    await open_pool(services.engine)
    await services.queue.connect()
    await _call_hooks(services.host.hook.startup(app=app))
    worker_task = None
    if settings.run_worker_in_app:
        worker_task = await _start_in_app_worker(services)
    try:
        yield
    finally:
        if services.worker is not None:
            await services.worker.stop()
        if worker_task is not None:
            worker_task.cancel()
        await _call_hooks(services.host.hook.shutdown(app=app))
        await services.storage.close()
        await services.queue.disconnect()
        await close_pool(services.engine)


async def _start_in_app_worker(services: Services) -> asyncio.Task[None]:
    options = worker_options(services.settings, services.host, services.queue, services.metrics,
                             engine=services.engine, storage=services.storage)
    services.worker = Worker(**options)
    services.worker.SIGNALS = []  # the server owns SIGINT/SIGTERM; SAQ would take them over and stop only itself
    log.info("worker running inside the API process")
    return asyncio.create_task(services.worker.start())
