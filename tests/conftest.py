"""Shared fixtures: a fresh PostgreSQL database migrated by `mediasvc migrate`, real Redis, real apps."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.settings import Settings, load_settings
from tests.webhook_receiver import Receiver

PG_ADMIN_URL = os.environ.get("MEDIASVC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDIASVC_TEST_REDIS", "redis://127.0.0.1:6379/0")
RUN_ID = uuid.uuid4().hex[:8]


def database_url_for(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real `mediasvc` command in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "mediasvc.cli", *args], env=full_env, capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).resolve().parent.parent)


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return database_url_for(name)


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """One database for the whole run, migrated by the real CLI (so migrations are exercised every run)."""
    name = f"mediasvc_test_{RUN_ID}"
    url = await create_database(name)
    result = run_cli("migrate", env={"MEDIASVC_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    yield url
    await drop_database(name)


@pytest.fixture(scope="session")
def queue_name() -> str:
    return f"mediasvc-test-{RUN_ID}"


@pytest.fixture
def make_settings(database_url: str, queue_name: str, tmp_path_factory: pytest.TempPathFactory):
    """Settings for a test app: real Postgres and Redis, local storage in a temp dir, fast event retries."""

    def make(**overrides: Any) -> Settings:
        data_dir = tmp_path_factory.mktemp("data")
        base: dict[str, Any] = {
            "database_url": database_url,
            "queue.url": REDIS_URL,
            "queue.name": queue_name,
            "data_dir": str(data_dir),
            "secret_key": "test-secret-key",
            "events.retry_base_seconds": 0.2,
            "events.retry_max_interval_seconds": 1.0,
        }
        base.update(overrides)
        return load_settings(env={}, **base)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
async def app(settings: Settings) -> Litestar:
    return create_app(settings)


@asynccontextmanager
async def serve_in_process(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run in the test's own event loop (Litestar's AsyncTestClient runs it in a
    portal thread, whose loop the database pool would then belong to)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run_lifespan() -> None:  # one task enters and exits the lifespan (anyio cancel scopes need it)
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run_lifespan())
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # start-up failed: raise its error
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        stop.set()
        await task


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(app) as http:
        yield http


@pytest.fixture
async def api_key(client: httpx.AsyncClient) -> str:
    """A key for a fresh tenant (the client fixture has opened the app's database pool)."""
    key, _ = await create_api_key(f"tenant-{uuid.uuid4().hex[:8]}")
    return key


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
def sample_plugin_installed() -> Iterator[None]:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="mediasvc")}
    if "sample" not in names:
        pytest.fail("the sample plugin (tests/sample_plugin) is not installed: run `uv sync` with the dev group")
    yield


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on loopback that records webhook requests."""
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
