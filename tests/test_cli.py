"""The `mediasvc` command as a user runs it: help, API keys, migrations, and `mediasvc dev` end to end."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
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


@pytest.fixture
def dev_data() -> Iterator[Path]:
    """A data dir for `mediasvc dev` outside pytest's temp root. Run as root, the embedded server runs as another
    user, which must traverse the parents; every pytest session start (other runs on this machine included) sets
    pytest's root back to 0700, so a data dir under it can become unreachable mid-test."""
    path = Path(tempfile.mkdtemp(prefix="mediasvc-dev-test-")) / "data"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_dev_runs_with_zero_external_services(dev_data):
    """The README's first command: embedded PostgreSQL, local storage, API and worker in one process."""
    port = free_port()
    process, text = start_dev(dev_data, port)
    try:
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
        stop(process)
    assert (dev_data / "postgres" / "PG_VERSION").exists()


def start_dev(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """`mediasvc dev` in a subprocess, up to its ready line; returns it and everything it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "mediasvc.cli", "dev", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "ready in" in line:
            break
    # keep reading what it logs, or a full pipe would block the server
    threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()
    return process, "".join(output)


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cli_with_stdin(*args: str, stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | env
    return subprocess.run([sys.executable, "-m", "mediasvc.cli", *args], env=full_env, input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.timeout(240)
def test_database_commands_find_the_running_dev_server_from_the_data_dir(dev_data):
    """With `mediasvc dev` running and no database configured, apikey/operator/migrate use its embedded
    PostgreSQL (found from --data-dir or MEDIASVC_DATA_DIR), not 127.0.0.1:5432; once it stops they say so."""
    data = dev_data
    port = free_port()
    process, text = start_dev(data, port)
    try:
        assert "ready in" in text, text
        created = run_cli("apikey", "create", "--tenant", "acme", "--data-dir", str(data))
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/assets", timeout=10,
                           headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text  # the dev server knows the key: same database

        listed = run_cli("apikey", "list", env={"MEDIASVC_DATA_DIR": str(data)})
        assert listed.returncode == 0 and key[:12] in listed.stdout, listed.stderr

        operator = cli_with_stdin("operator", "create", "--email", "ops@example.com", "--role", "admin",
                                  "--password-stdin", "--data-dir", str(data), stdin="a long passphrase\n", env={})
        assert operator.returncode == 0, operator.stderr
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as browser:  # the dev server signs in
            token = re.search(r'name="_csrf" value="([^"]+)"', browser.get("/dashboard/login").text).group(1)
            signed_in = browser.post("/dashboard/login", data={
                "email": "ops@example.com", "password": "a long passphrase", "_csrf": token, "next": "/dashboard"})
            assert signed_in.status_code == 303, signed_in.text

        migrated = run_cli("migrate", "--data-dir", str(data))
        assert migrated.returncode == 0, migrated.stderr
    finally:
        stop(process)

    stopped = run_cli("apikey", "list", "--data-dir", str(data))
    assert stopped.returncode == 1
    assert stopped.stderr.strip().splitlines() == [
        f"mediasvc: the embedded PostgreSQL in {data / 'postgres'} is not running: start `mediasvc dev "
        f"--data-dir {data}` first, or set MEDIASVC_DATABASE_URL"]


@pytest.mark.timeout(240)
def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path):
    port = free_port()  # nothing listens there
    env = {"MEDIASVC_DATABASE_URL": f"postgresql://postgres:pw@127.0.0.1:{port}/mediasvc",
           "MEDIASVC_DATA_DIR": str(tmp_path)}
    for args in (("apikey", "list"), ("apikey", "create", "--tenant", "t"), ("apikey", "revoke", "msk_x"),
                 ("migrate",), ("operator", "create", "--email", "a@b.c", "--password-stdin")):
        result = cli_with_stdin(*args, stdin="a long passphrase\n", env=env)
        assert result.returncode == 1, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, (args, result.stderr)
        assert lines[0].startswith(f"mediasvc: cannot reach PostgreSQL at 127.0.0.1:{port}/mediasvc: "
                                   "connection refused."), (args, lines)
        assert "pw" not in lines[0]  # no password in the message
