"""The `mediasvc` command as a user runs it: help, API keys, migrations, and `mediasvc dev` end to end."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, drop_database, run_cli

ROOT = Path(__file__).resolve().parent.parent


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("dev", "serve", "worker", "migrate", "plugins", "apikey"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    for command in ("dev", "serve"):
        options = run_cli(command, "--help").stdout
        assert "--host" in options and "--port" in options and "--data-dir" in options


def test_bad_setting_stops_with_the_key_named(database_url):
    result = run_cli("plugins", env={"MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__CONCURRENCY": "x"})
    assert result.returncode != 0
    assert "MEDIASVC_QUEUE__CONCURRENCY" in result.stderr
    assert "Traceback" not in result.stderr


async def test_apikey_create_list_revoke(database_url, client):
    env = {"MEDIASVC_DATABASE_URL": database_url}
    tenant = f"cli-{uuid.uuid4().hex[:6]}"
    created = run_cli("apikey", "create", "--tenant", tenant, "--name", "ci", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("msk_") and " " not in key
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/assets", headers=headers)).status_code == 200

    listed = run_cli("apikey", "list", "--tenant", tenant, env=env)
    assert key[:12] in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout  # only the prefix is ever shown again

    revoked = run_cli("apikey", "revoke", key[:12], env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert (await client.get("/api/v1/assets", headers=headers)).status_code == 401
    again = run_cli("apikey", "revoke", key[:12], env=env)
    assert again.returncode != 0 and "no active key" in again.stderr


async def test_migrations_apply_to_an_empty_database_and_rerun_cleanly():
    name = f"mediasvc_migr_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"  # does not exist yet: migrate creates it
    try:
        first = run_cli("migrate", env={"MEDIASVC_DATABASE_URL": url})
        assert first.returncode == 0, first.stderr
        second = run_cli("migrate", env={"MEDIASVC_DATABASE_URL": url})
        assert second.returncode == 0, second.stderr
        conn = await asyncpg.connect(url)
        try:
            tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables "
                                                               "WHERE schemaname = 'public'")}
            indexes = {r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
        finally:
            await conn.close()
        assert {"tenants", "api_keys", "assets", "renditions", "processing_jobs", "recording_sessions", "chunks",
                "uploads", "transcripts", "events", "event_deliveries"} <= tables
        assert {"assets_tenant_created", "event_deliveries_due", "chunks_session_sequence"} <= indexes
    finally:
        await drop_database(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_dev_runs_with_zero_external_services(tmp_path):
    """The README's first command: embedded PostgreSQL, local storage, API and worker in one process."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mediasvc.cli", "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "ready in" in line:
                break
        text = "".join(output)
        assert f"http://127.0.0.1:{port}" in text, text
        key = re.search(r"(msk_[A-Za-z0-9_-]+)", text).group(1)
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200, health.text
        headers = {"Authorization": f"Bearer {key}"}
        created = httpx.post(f"{base}/api/v1/assets", headers=headers, timeout=10,
                             json={"profile": "avatar", "original_name": "me.png"})
        assert created.status_code == 201, created.text
        # the in-process worker (SAQ on the embedded Postgres) runs the outbox dispatch
        deleted = httpx.delete(f"{base}/api/v1/assets/{created.json()['id']}", headers=headers, timeout=10)
        assert deleted.status_code == 202
        # the in-process worker (SAQ on the embedded Postgres) drains the queue: outbox dispatch + storage purge
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            queue = httpx.get(f"{base}/api/v1/stats", headers=headers, timeout=10).json()["queue"]
            if queue["queued"] == 0 and queue["active"] == 0:
                break
            time.sleep(0.2)
        assert queue == {"queued": 0, "active": 0, "incomplete": 0} or queue["queued"] == 0, queue
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists()

