"""What handlers need from the running app, built once in create_app and shared through ``app.state``."""

from __future__ import annotations

import dataclasses
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from piccolo.engine.postgres import PostgresEngine
from saq import Queue

from mediasvc.contracts import StorageBackend
from mediasvc.metrics import Metrics
from mediasvc.plugins import PluginHost
from mediasvc.settings import Settings


@dataclasses.dataclass
class Services:
    settings: Settings
    host: PluginHost
    engine: PostgresEngine
    storage: StorageBackend
    queue: Queue
    metrics: Metrics
    worker: Any = None  # the in-app SAQ worker (`mediasvc dev`), else None


def provide_services(request: Request[Any, Any, Any]) -> Services:
    return request.app.state.services


ServicesDep = NamedDependency[Services]
