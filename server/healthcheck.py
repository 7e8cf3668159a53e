"""``mediasvc healthcheck``: ask this container's own process for ``/health`` (the image's HEALTHCHECK).

One image runs either ``mediasvc serve`` (``/health`` on ``port``) or ``mediasvc worker`` (``/health`` on
``worker_metrics_port``); with ``role="auto"`` the role, and a ``--port`` / ``--metrics-port`` given on that
command line, are read from the command line of PID 1, the container's main process.
"""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Literal

import msgspec

from mediasvc.settings import Settings

Role = Literal["serve", "worker"]
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


class Target(msgspec.Struct, frozen=True):
    role: Role
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/health"


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def role_from_command(args: list[str]) -> tuple[Role, int | None]:
    """The role (and a port given on the command line) of a ``mediasvc ...`` command; ``serve`` when unsure."""
    if "worker" in args:
        port = _option(args, "--metrics-port")
        return "worker", int(port) if port and port.isdigit() else None
    port = _option(args, "--port")
    return "serve", int(port) if port and port.isdigit() else None


def main_process_command(proc: Path = Path("/proc/1/cmdline")) -> list[str]:
    try:
        return [part for part in proc.read_bytes().decode(errors="replace").split("\0") if part]
    except OSError:  # not Linux, or no permission: assume `serve`
        return []


def resolve_target(settings: Settings, role: Role | Literal["auto"] = "auto",
                   command: list[str] | None = None) -> Target:
    given_port = None
    if role == "auto":
        role, given_port = role_from_command(main_process_command() if command is None else command)
    host = _WILDCARDS.get(settings.host, settings.host)
    if role == "worker":
        return Target("worker", host, settings.worker_metrics_port if given_port is None else given_port)
    return Target("serve", host, settings.port if given_port is None else given_port)


def probe(target: Target, timeout: float = 5.0) -> tuple[bool, str]:
    """GET the target's /health: (healthy, one line saying what was found)."""
    if target.port == 0:
        return False, f"{target.role}: the metrics port is off (worker_metrics_port 0): nothing to check"
    connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        connection.request("GET", "/health", headers={"User-Agent": "mediasvc-healthcheck"})
        response = connection.getresponse()
        body = response.read(2000).decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{target.role}: {target.url}: {exc.__class__.__name__}: {exc}"
    finally:
        connection.close()
    if response.status == 200:
        return True, f"{target.role}: {target.url}: ok"
    return False, f"{target.role}: {target.url}: HTTP {response.status} {body.strip()[:500]}"
