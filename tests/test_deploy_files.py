"""The deployment files (Containerfile, compose.yaml, .env.example, docs/deploy.md) name only real settings and
services, and the container HEALTHCHECK works: a real ``mediasvc worker`` answers ``/health`` on its metrics port
and ``mediasvc healthcheck`` exits 0 against it, non-zero when nothing listens or the worker cannot work."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
import typing
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from saq import Queue, Worker

from mediasvc.healthcheck import resolve_target, role_from_command
from mediasvc.ingest.tus_settings import SECTION as TUS_SECTION
from mediasvc.ingest.tus_settings import TusSettings
from mediasvc.metrics import Metrics
from mediasvc.plugins import PluginHost
from mediasvc.settings import ENV_PREFIX, Settings, SettingsError, _env_value, load_settings
from mediasvc.worker_http import serve_worker_http
from tests.conftest import REDIS_URL, run_cli

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_FILES = ("Containerfile", "compose.yaml", ".env.example", "docs/deploy.md")
SETTING_NAME = re.compile(r"\bMEDIASVC_[A-Z0-9_]*[A-Z0-9]")
NOT_SETTINGS = {"MEDIASVC_CONFIG"}  # the TOML file's path, read by load_settings itself
COMPOSE_SERVICES = {"postgres", "redis", "seaweedfs", "migrate", "api-1", "api-2", "proxy", "worker"}


# --- every MEDIASVC_* name is a real setting ------------------------------------------------------------------

def _plugin_sections() -> dict[str, type]:
    sections: dict[str, type] = {TUS_SECTION: TusSettings}
    for found in PluginHost(load_settings(env={})).hook.register_settings():
        sections.update(dict(found))
    return sections


def _setting_type(name: str, sections: dict[str, type]) -> Any:
    """The Python type of the setting ``name`` names, walking the path the way load_settings maps it."""
    path = name[len(ENV_PREFIX):].lower().split("__")
    current: Any = Settings
    for index, part in enumerate(path):
        if path[:index] == ["plugins"]:
            assert part in sections, f"{name}: no plugin settings section {part!r} (known: {sorted(sections)})"
            current = sections[part]
        elif isinstance(current, type) and issubclass(current, msgspec.Struct):
            fields = {field.name: field.type for field in msgspec.structs.fields(current)}
            assert part in fields, f"{name}: {part!r} is not a setting here (known: {sorted(fields)})"
            current = fields[part]
        elif typing.get_origin(current) is dict:  # a free key: a profile name, a storage option
            current = typing.get_args(current)[1]
        else:
            raise AssertionError(f"{name}: {'.'.join(path[:index])} is a value, not a section")
    return current


def _candidates(name: str, kind: Any) -> list[str]:
    """Plausible values for a setting of type ``kind``."""
    if name == "MEDIASVC_DATABASE_URL":
        return ["postgresql://mediasvc:pw@postgres:5432/mediasvc"]
    if name == "MEDIASVC_QUEUE__URL":
        return ["redis://redis:6379/0"]
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return [str(value) for value in typing.get_args(kind)]
    if origin in (list, set) or kind in (list, set):
        return ["a,b"]
    if origin is dict or kind is dict or (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
        return ["{}"]
    return {bool: ["true", "false"], int: ["8001", "1"], float: ["1.5"]}.get(
        kind, ["value", "https://media.example.com/mirror"])


def _deploy_values() -> dict[str, str]:
    """The values the deploy files give settings: compose's common block (interpolated with .env.example), the
    Containerfile's ENV, .env.example."""
    example = _env_example()
    values = {k: _interpolate(str(v), {**example, **{k2: v2 or "x" for k2, v2 in example.items()}})
              for k, v in _compose()["x-mediasvc-env"].items()}
    for line in (ROOT / "Containerfile").read_text().splitlines():
        for name, value in re.findall(r"\b(MEDIASVC_[A-Z0-9_]+)=(\S+)", line):
            values.setdefault(name, value.strip('"'))
    return {**{k: v for k, v in example.items() if v}, **values}


def _value_at(settings: msgspec.Struct, path: list[str]) -> Any:
    value: Any = msgspec.to_builtins(settings)
    for part in path:
        value = value[part]
    return value


def _named_settings() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for file in DEPLOY_FILES:
        for name in SETTING_NAME.findall((ROOT / file).read_text()):
            found.setdefault(name, set()).add(file)
    return found


def test_deploy_files_name_only_real_settings() -> None:
    named = _named_settings()
    assert "MEDIASVC_SECRET_KEY" in named and "MEDIASVC_WORKER_METRICS_PORT" in named
    sections = _plugin_sections()
    given = _deploy_values()
    for name, files in sorted(named.items()):
        if name in NOT_SETTINGS:
            continue
        kind = _setting_type(name, sections)
        path = name[len(ENV_PREFIX):].lower().split("__")
        candidates = ([given[name]] if name in given else []) + _candidates(name, kind)
        for candidate in candidates:  # the first that load_settings accepts (e.g. `cdn` needs another setting)
            try:
                settings = load_settings(env={name: candidate})
                break
            except SettingsError:
                continue
        else:
            raise AssertionError(f"{name} (in {sorted(files)}): no plausible value is accepted: {candidates}")
        if path[0] == "plugins":  # the section stays raw until the plugin's own struct takes it
            section = msgspec.convert(settings.plugins[path[1]], sections[path[1]], strict=False)
            landed = _value_at(section, path[2:])
        else:
            landed = _value_at(settings, path)
        expected = msgspec.convert(_env_value(path, candidate, name), kind, strict=False)
        assert landed == msgspec.to_builtins(expected), f"{name} (in {sorted(files)}) did not land on {path}"


def _compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the dev environment, not declared by us
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}``."""
    def replace(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if env.get(name):
            return env[name]
        assert op != ":?", f"{name} is required by compose.yaml but .env.example leaves it empty"
        return rest if op == ":-" else ""
    return re.sub(r"\$\{([A-Z0-9_]+)(:-|:\?)?([^}]*)\}", replace, value)


def test_compose_names_the_production_services_and_a_usable_configuration() -> None:
    compose = _compose()
    services = compose["services"]
    assert COMPOSE_SERVICES <= set(services), sorted(services)
    assert services["worker"]["deploy"]["replicas"] >= 2
    for name in ("api-1", "api-2", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["command"][:1] == ["mediasvc"], name
        assert "healthcheck" in services[name]["healthcheck"]["test"], name
    assert services["migrate"]["command"] == ["mediasvc", "migrate"]

    example = {key: value or "example-value" for key, value in _env_example().items()}
    assert {"MEDIASVC_SECRET_KEY", "POSTGRES_PASSWORD", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"} <= set(example)
    for name in ("api-1", "worker", "migrate"):
        environment = {**compose["x-mediasvc-env"], **services[name].get("environment", {})}
        env = {key: _interpolate(str(value), example) for key, value in environment.items()}
        settings = load_settings(env=env)
        assert settings.storage.backend == "s3" and settings.queue.url.startswith("redis://"), name
        assert settings.secret_key and settings.database_url.startswith("postgresql://"), name
        PluginHost(settings).plugin_settings  # every plugin section in the environment is valid


# --- the Containerfile's dependency layer matches the workspace -----------------------------------------------

def test_containerfile_copies_every_workspace_member_and_installs_real_extras() -> None:
    text = (ROOT / "Containerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = sorted(p.parent.relative_to(ROOT).as_posix() for p in ROOT.glob("plugins/*/pyproject.toml"))
    paths = [source["path"] for source in project["tool"]["uv"]["sources"].values() if "path" in source]
    for member in [*members, *paths]:
        assert f"{member}/pyproject.toml" in text, f"the Containerfile does not copy {member}/pyproject.toml"
    extras = re.search(r'ARG EXTRAS="([^"]*)"', text)
    assert extras, "the Containerfile chooses its extras with ARG EXTRAS"
    declared = set(project["project"].get("optional-dependencies", {}))
    chosen = {extra for extra in extras.group(1).split(",") if extra}
    assert chosen <= declared and "embedded" not in chosen, (chosen, declared)
    assert "--no-editable" in text and "--no-install-workspace" in text
    runtime = text.split("AS runtime", 1)[1]
    assert re.findall(r"^COPY .*", runtime, re.M) == ["COPY --from=build /app/.venv /app/.venv"], \
        "the runtime stage holds only the virtual environment"
    assert re.search(r"^USER mediasvc$", runtime, re.M)
    assert 'HEALTHCHECK' in runtime and '["mediasvc", "healthcheck"]' in runtime
    ignore = (ROOT / ".containerignore").read_text()
    assert (ROOT / ".dockerignore").read_text() == ignore, ".dockerignore must be a copy of .containerignore"
    assert {".venv", ".git", "data/", "**/__pycache__", "bench/results", ".pytest_cache", "tests/"} <= set(
        ignore.splitlines())


# --- the worker's /health and `mediasvc healthcheck` ----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthcheck_reads_the_role_from_the_main_process() -> None:
    assert role_from_command(["/app/.venv/bin/python", "/app/.venv/bin/mediasvc", "worker"]) == ("worker", None)
    assert role_from_command(["mediasvc", "worker", "--metrics-port", "9101"]) == ("worker", 9101)
    assert role_from_command(["mediasvc", "serve", "--port=9000", "--workers", "4"]) == ("serve", 9000)
    assert role_from_command([]) == ("serve", None)
    settings = load_settings(env={"MEDIASVC_HOST": "0.0.0.0", "MEDIASVC_WORKER_METRICS_PORT": "9200"})
    worker = resolve_target(settings, "auto", command=["mediasvc", "worker"])
    assert (worker.role, worker.host, worker.port) == ("worker", "127.0.0.1", 9200)
    assert resolve_target(settings, "serve").url == "http://127.0.0.1:8000/health"


async def test_worker_health_is_503_with_the_error_envelope_when_it_cannot_work() -> None:
    # A worker that never started, on a Redis port where nothing listens.
    worker = Worker(Queue.from_url(f"redis://127.0.0.1:{_free_port()}/0"), functions=[])
    server = await serve_worker_http(worker, Metrics(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            response = await http.get("/health")
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "service_unavailable"
            assert set(error["details"]["failing"]) == {"worker", "queue", "database"}
            assert (await http.get("/nope")).status_code == 404
            metrics = await http.get("/metrics")
            assert metrics.status_code == 200 and b"media_job_duration_seconds" in metrics.content
    finally:
        server.close()
        await server.wait_closed()


def test_a_real_worker_answers_health_and_the_healthcheck_command_agrees(database_url, tmp_path) -> None:
    port = _free_port()
    env = {"MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__URL": REDIS_URL,
           "MEDIASVC_QUEUE__NAME": f"deploy-{uuid.uuid4().hex[:8]}", "MEDIASVC_DATA_DIR": str(tmp_path / "data"),
           "MEDIASVC_SECRET_KEY": "test-secret-key", "MEDIASVC_LOG_FORMAT": "text",
           "MEDIASVC_WORKER_METRICS_PORT": str(port)}
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | env
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "mediasvc.cli", "worker"], env=full_env, cwd=ROOT,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert worker.poll() is None, log.read_text()[-3000:]
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        checks = response.json()["checks"]
        assert {name: check["ok"] for name, check in checks.items()} == {"worker": True, "queue": True,
                                                                         "database": True}
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200

        result = run_cli("healthcheck", "--role", "worker", env=env)
        assert result.returncode == 0, result.stderr
        assert "worker: http://127.0.0.1" in result.stdout

        # A second worker on the same port stops at once, naming the setting.
        taken = run_cli("worker", env=env, timeout=60)
        assert taken.returncode != 0 and "MEDIASVC_WORKER_METRICS_PORT" in taken.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, log.read_text()[-3000:]

    result = run_cli("healthcheck", "--role", "worker", env=env)
    assert result.returncode == 1 and "refused" in result.stderr.lower(), result.stderr
