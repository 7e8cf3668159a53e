"""mediasvc's testing kit: what a plugin's tests import beside ``mediasvc.plugin`` (public, versioned with
it; docs/plugins.md, step 6 and the reference).

Everything runs on the real components: PostgreSQL (``MEDIASVC_TEST_PG``, an admin URL, default
``postgresql://postgres@127.0.0.1:5432/postgres``), Redis (``MEDIASVC_TEST_REDIS``) and local storage in a
temp folder. Two levels:

- **A processor on its own** (no database): ``run_processor(processor, source, kind=...)`` stores ``source``
  (a path or bytes) in real local storage, runs the processor with a ``KitContext`` (a ``ProcessorContext``
  that records progress values, emitted events and renditions published early) under its timeout, and returns a
  ``ProcessorRun``: the ``ProcessorResult``, the progress values, the events and the context (to read what was
  stored; ``context.published``).
  ``make_context`` gives the context alone, to prepare storage or run a processor twice.
- **A whole app**: ``running_app(settings, plugins=...)`` serves ``mediasvc.app.create_app`` in the test's
  event loop with its worker, and yields an ``AppUnderTest``: an httpx client, an API key (of a fresh
  tenant), ``upload()``, ``wait_for_asset()`` and ``events``, a sink that records every event delivered.

As a pytest plugin (``pytest_plugins = ["mediasvc.testing"]``, or ``-p mediasvc.testing``) it adds the
fixtures ``mediasvc_database_url`` (a scratch database for the session, migrated by ``mediasvc migrate``,
dropped at the end), ``mediasvc_settings`` (a factory of settings on a temp data folder) and ``mediasvc_app``
(a factory of ``running_app`` on the scratch database). The fixtures are synchronous: any async runner works.

PYTEST_DONT_REWRITE: the kit states its failures itself; a test module may import it before pytest loads it.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from mediasvc.contracts import Event, Processor, ProcessorResult, RenditionOut
from mediasvc.hookspecs import hookimpl
from mediasvc.settings import Settings, load_settings

__all__ = [
    "AppUnderTest", "EmittedEvent", "EventCollector", "KitContext", "ProcessorRun", "kit_settings",
    "make_context", "migrated_database", "run_processor", "running_app",
]

PG_ADMIN_URL = os.environ.get("MEDIASVC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDIASVC_TEST_REDIS", "redis://127.0.0.1:6379/0")
TENANT_SLUG = "testing"


def kit_settings(*, data_dir: str | os.PathLike[str] | None = None, database_url: str | None = None,
                 **overrides: Any) -> Settings:
    """Settings for a test: nothing read from the environment; local storage under ``data_dir`` (a new temp
    folder when None), Redis at ``MEDIASVC_TEST_REDIS`` on a queue of its own, fast event retries.
    ``overrides`` use the dotted keys of ``load_settings``: ``**{"storage.backend": "memory"}``,
    ``plugins={...}``, ``profiles={...}``."""
    base: dict[str, Any] = {
        "data_dir": str(data_dir or _temp_dir()),
        "secret_key": "mediasvc-testing-secret",
        "queue.url": REDIS_URL,
        "queue.name": f"mediasvc-testing-{uuid.uuid4().hex[:8]}",
        "events.retry_base_seconds": 0.2,
        "events.retry_max_interval_seconds": 1.0,
    }
    if database_url:
        base["database_url"] = database_url
    return load_settings(env={}, **(base | overrides))


def _temp_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="mediasvc-testing-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


# --- a processor on its own ---------------------------------------------------------------------------------


class EmittedEvent(NamedTuple):
    """An event a processor emitted while it ran, with the keys stored under the asset's folder at that moment
    (so a test can check that what an event announces was already there)."""

    type: str
    data: dict[str, Any]
    stored: frozenset[str]


class PublishedRendition(NamedTuple):
    """A rendition a processor recorded while it ran (``ctx.publish_rendition``), with the keys stored under the
    asset's folder at that moment."""

    rendition: RenditionOut
    stored: frozenset[str]


class KitContext:
    """A ``ProcessorContext`` on real storage that records instead of writing job rows and outbox events:
    ``progress_seen`` (every value reported) and ``events`` (``EmittedEvent`` each)."""

    def __init__(self, asset: dict[str, Any], settings: Settings, storage: Any, host: Any) -> None:
        self.asset_id: uuid.UUID = asset["id"]
        self.asset = asset
        self.settings = settings
        self.storage = storage
        self.host = host
        self.progress_seen: list[float] = []
        self.events: list[EmittedEvent] = []
        self.published: list[PublishedRendition] = []

    @property
    def folder(self) -> str:
        """The asset's storage folder (``testing/<kind>/<asset id>``): renditions go beside the original."""
        return self.asset["storage_key"].rsplit("/", 1)[0]

    async def progress(self, percent: float, message: str = "") -> None:
        self.progress_seen.append(percent)

    async def emit(self, event_type: str, data: dict[str, Any]) -> None:
        stored = frozenset([info.key async for info in self.storage.list(self.folder + "/")])
        self.events.append(EmittedEvent(event_type, data, stored))

    async def publish_rendition(self, rendition: RenditionOut) -> None:
        stored = frozenset([info.key async for info in self.storage.list(self.folder + "/")])
        self.published.append(PublishedRendition(rendition, stored))

    async def stored_keys(self, under: str = "") -> set[str]:
        """Keys now stored under the asset's folder (or ``under`` inside it, e.g. ``"hls/"``)."""
        return {info.key async for info in self.storage.list(f"{self.folder}/{under}")}


async def make_context(source: Path | bytes, *, kind: str, profile: str | None = None,
                       settings: Settings | None = None, extension: str | None = None,
                       metadata: dict[str, Any] | None = None, host: Any = None) -> KitContext:
    """Store ``source`` as an asset's original (``testing/<kind>/<id>/original.<ext>``, the extension from the
    path or ``extension``) with the storage backend ``settings`` select, and return its context. ``profile``
    defaults to the first profile of that kind in the settings."""
    from mediasvc.plugins import PluginHost
    from mediasvc.storage_keys import original_key

    settings = settings or kit_settings()
    host = host or PluginHost(settings)
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    ext = extension or (Path(source).suffix.lstrip(".") if not isinstance(source, bytes) else "") or "bin"
    asset_id = uuid.uuid4()
    key = original_key(TENANT_SLUG, kind, asset_id, ext)
    storage = host.create_storage()
    await storage.put(key, data)
    profile = profile or next((name for name, p in settings.profiles.items() if p.kind == kind), kind)
    asset = {"id": asset_id, "tenant": uuid.uuid4(), "owner": "", "profile": profile, "kind": kind,
             "original_name": f"original.{ext}", "content_type": "application/octet-stream",
             "size_bytes": len(data), "sha256": "", "storage_key": key, "status": "processing",
             "metadata": dict(metadata or {}), "error": None}
    return KitContext(asset, settings, storage, host)


class ProcessorRun(NamedTuple):
    result: ProcessorResult
    progress: list[float]
    events: list[EmittedEvent]
    context: KitContext


async def run_processor(processor: Processor, source: Path | bytes | KitContext, *, kind: str | None = None,
                        profile: str | None = None, settings: Settings | None = None,
                        extension: str | None = None, metadata: dict[str, Any] | None = None) -> ProcessorRun:
    """Run ``processor`` as the worker would (its ``kinds`` checked, under its ``timeout_seconds``) on
    ``source`` (stored first, see ``make_context``; or a context made before). A bare list returned (plugin
    API 0.x) is wrapped the way the worker wraps it, with its DeprecationWarning."""
    from mediasvc.processing import _as_result

    if not isinstance(processor, Processor):
        raise TypeError(f"{processor!r} is not a Processor: it needs name, kinds, timeout_seconds, run(ctx)")
    if isinstance(source, KitContext):
        ctx = source
    else:
        if kind is None:
            raise TypeError("run_processor needs kind= (video, audio, image or document) for a new source")
        ctx = await make_context(source, kind=kind, profile=profile, settings=settings, extension=extension,
                                 metadata=metadata)
    if ctx.asset["kind"] not in processor.kinds:
        raise ValueError(f"processor {processor.name!r} does not accept {ctx.asset['kind']!r} "
                         f"(its kinds: {sorted(processor.kinds)}): the worker would skip it")
    before = copy.deepcopy(ctx.asset.get("metadata"))
    outputs = await asyncio.wait_for(processor.run(ctx), timeout=processor.timeout_seconds)
    result = _as_result(outputs, processor, before, ctx.asset.get("metadata"))
    return ProcessorRun(result, list(ctx.progress_seen), list(ctx.events), ctx)


# --- a whole app --------------------------------------------------------------------------------------------


class EventCollector:
    """An event sink that records every event the app delivers. Register it as an extra plugin
    (``running_app`` does): it is its own ``register_event_sinks`` hook."""

    name = "testing:collector"

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def register_event_sinks(self, settings: Settings) -> list[Any]:
        return [self]

    def accepts(self, event_type: str) -> bool:
        return True

    async def deliver(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, event_type: str, **data: Any) -> list[Event]:
        """Delivered events of ``event_type`` whose data has these values (``asset_id=str(...)``)."""
        return [event for event in self.events
                if event.type == event_type and all(event.data.get(k) == v for k, v in data.items())]

    async def wait_for(self, event_type: str, *, timeout: float = 30.0, **data: Any) -> Event:
        deadline = time.monotonic() + timeout
        while not (found := self.of_type(event_type, **data)):
            if time.monotonic() > deadline:
                seen = [e.type for e in self.events]
                raise AssertionError(f"no {event_type!r} event with {data} delivered in {timeout}s: {seen}")
            await asyncio.sleep(0.05)
        return found[0]


@dataclass
class AppUnderTest:
    app: Any  # litestar.Litestar
    client: httpx.AsyncClient
    api_key: str
    events: EventCollector = field(default_factory=EventCollector)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def settings(self) -> Settings:
        return self.app.state.services.settings

    @property
    def storage(self) -> Any:
        return self.app.state.services.storage

    async def upload(self, data: bytes, *, profile: str, file_name: str,
                     content_type: str = "application/octet-stream") -> uuid.UUID:
        """Upload through the public API (presigned PUT, then confirm), as a client would; returns the asset
        id. Processing of the profile's steps starts on its own."""
        ticket = await self._ok(self.client.post("/api/v1/uploads", headers=self.headers, json={
            "file_name": file_name, "profile": profile, "content_type": content_type,
            "size_bytes": len(data)}))
        url = urlsplit(ticket["url"])
        await self._ok(self.client.put(urlunsplit(("", "", url.path, url.query, "")), content=data,
                                       headers=ticket["headers"]))
        confirm = f"/api/v1/uploads/{ticket['upload_id']}/confirm"
        await self._ok(self.client.post(confirm, headers=self.headers))
        return uuid.UUID(ticket["asset_id"])

    async def wait_for_asset(self, asset_id: uuid.UUID, *, timeout: float = 60.0) -> dict[str, Any]:
        """``GET /api/v1/assets/{id}`` once the asset is ``ready`` or ``failed`` (renditions and steps)."""
        deadline = time.monotonic() + timeout
        while True:
            asset = await self._ok(self.client.get(f"/api/v1/assets/{asset_id}", headers=self.headers))
            if asset["status"] in ("ready", "failed"):
                return asset
            if time.monotonic() > deadline:
                raise AssertionError(f"asset {asset_id} still {asset['status']} after {timeout}s: "
                                     f"{asset['steps']}")
            await asyncio.sleep(0.1)

    @staticmethod
    async def _ok(request: Any) -> Any:
        response = await request
        if response.status_code >= 300:
            raise AssertionError(f"{response.request.method} {response.request.url.path}: "
                                 f"{response.status_code} {response.text}")
        return response.json()


@asynccontextmanager
async def running_app(settings: Settings, *, plugins: Sequence[object] = ()) -> AsyncIterator[AppUnderTest]:
    """``create_app(settings, extra_plugins=[*plugins, collector])`` served in this event loop (lifespan,
    database pool and in-app worker included), with an API key of a fresh tenant. The database must be
    migrated (``migrated_database``)."""
    from mediasvc.app import create_app
    from mediasvc.auth import create_api_key

    collector = EventCollector()
    app = create_app(settings, extra_plugins=[*plugins, collector])
    started, stop = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:  # one task enters and exits the lifespan (anyio cancel scopes need it)
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # start-up failed: raise its error
    try:
        key, _ = await create_api_key(f"testing-{uuid.uuid4().hex[:8]}")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield AppUnderTest(app, http, key, collector)
    finally:
        stop.set()
        await task


# --- a scratch database -------------------------------------------------------------------------------------


@asynccontextmanager
async def _admin(admin_url: str) -> AsyncIterator[Any]:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        yield conn
    finally:
        await conn.close()


def migrated_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A generator for a fixture: a new database on the server of ``admin_url``, migrated by the real
    ``mediasvc migrate`` (in a subprocess, as an operator runs it), yielded as its URL, then dropped."""
    name = f"mediasvc_testing_{uuid.uuid4().hex[:10]}"
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    env["MEDIASVC_DATABASE_URL"] = url
    done = subprocess.run([sys.executable, "-m", "mediasvc.cli", "migrate"], env=env, capture_output=True,
                          text=True, timeout=300)  # creates the database, then migrates the core and plugins
    if done.returncode != 0:
        raise RuntimeError(f"mediasvc migrate failed on {url}:\n{done.stderr}")
    try:
        yield url
    finally:
        _run_async(_drop(admin_url, name))


async def _drop(admin_url: str, name: str) -> None:
    async with _admin(admin_url) as conn:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run_async(coro: Any) -> Any:
    """Run a coroutine to the end on a loop of its own (never touching the test runner's loop)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# --- pytest fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mediasvc_database_url() -> Iterator[str]:
    """A scratch database for the test session, migrated by ``mediasvc migrate`` (core and every installed
    plugin's migrations), dropped at the end."""
    yield from migrated_database()


@pytest.fixture
def mediasvc_settings(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    """``make(**overrides) -> Settings`` (``kit_settings``) with a temp data folder; no database."""

    def make(**overrides: Any) -> Settings:
        return kit_settings(data_dir=tmp_path_factory.mktemp("mediasvc-data"), **overrides)

    return make


@pytest.fixture
def mediasvc_app(mediasvc_database_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Callable[..., AbstractAsyncContextManager[AppUnderTest]]:
    """``async with mediasvc_app(*plugins, **overrides) as app:`` an app on the scratch database with its
    worker running, the installed plugins plus ``plugins`` (objects or modules) loaded (``running_app``)."""

    def start(*plugins: object, **overrides: Any) -> AbstractAsyncContextManager[AppUnderTest]:
        settings = kit_settings(data_dir=tmp_path_factory.mktemp("mediasvc-app"),
                                database_url=mediasvc_database_url, run_worker_in_app=True, **overrides)
        return running_app(settings, plugins=plugins)

    return start
