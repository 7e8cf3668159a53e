"""The ``plugins.webhooks`` settings section and its checks; every error names the settings key at fault."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from mediasvc_webhooks.allowlist import parse_network
from mediasvc_webhooks.signature import secret_key
from mediasvc.plugin import ConfigurationError

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

SECTION = "webhooks"
KEY = f"plugins.{SECTION}"


class WebhookTarget(msgspec.Struct, forbid_unknown_fields=True):
    name: str  # the sink is called "webhook:<name>"
    url: str  # http:// or https://
    secret: str  # HMAC key; "whsec_<base64>" or any other string (used as UTF-8)
    events: list[str] = []  # event types to send: exact ("media.ready"), prefix ("media.*") or "*"; empty = all


class WebhookSettings(msgspec.Struct, forbid_unknown_fields=True):
    targets: list[WebhookTarget] = []
    allow_hosts: list[str] = []  # hostnames, IPs or CIDRs reachable even when private
    allow_loopback: bool = False  # allow 127.0.0.0/8 and ::1 (local development, tests)
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        check_webhook_settings(self)


def event_matches(patterns: list[str], event_type: str) -> bool:
    """True when ``event_type`` is selected by ``patterns`` (an empty list selects everything)."""
    if not patterns:
        return True
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


def check_webhook_settings(settings: WebhookSettings) -> None:
    """Raise ``ConfigurationError`` naming the first bad key."""
    if settings.timeout_seconds <= 0:
        raise ConfigurationError(f"{KEY}.timeout_seconds: must be positive, got {settings.timeout_seconds}")
    for index, entry in enumerate(settings.allow_hosts):
        if parse_network(entry) is None and not _looks_like_hostname(entry):
            raise ConfigurationError(f"{KEY}.allow_hosts[{index}]: not a hostname, IP or CIDR: {entry!r}")
    seen: set[str] = set()
    for index, target in enumerate(settings.targets):
        where = f"{KEY}.targets[{index}]"
        if not target.name.strip():
            raise ConfigurationError(f"{where}.name: must not be empty")
        if target.name in seen:
            raise ConfigurationError(f"{where}.name: duplicate target name {target.name!r}")
        seen.add(target.name)
        _check_url(f"{where}.url", target.url)
        _check_secret(f"{where}.secret", target.secret)
        for position, pattern in enumerate(target.events):
            if "*" in pattern and pattern != "*" and not (pattern.endswith(".*") and pattern.count("*") == 1):
                raise ConfigurationError(
                    f"{where}.events[{position}]: {pattern!r} is not an event type, 'prefix.*' or '*'"
                )


def load_webhook_settings(settings: Settings) -> WebhookSettings:
    """The typed ``plugins.webhooks`` section of the service settings."""
    raw: Any = settings.plugins.get(SECTION, {})
    try:
        return msgspec.convert(raw, WebhookSettings, strict=False)
    except msgspec.ValidationError as exc:
        detail, _, where = str(exc).rpartition(" - at `$")
        if not detail:  # no location in the message (e.g. an unknown top-level field)
            raise ConfigurationError(f"{KEY}: {exc}") from exc
        raise ConfigurationError(f"{KEY}{where.rstrip('`')}: {detail}") from exc


def _check_url(key: str, url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"{key}: not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise ConfigurationError(f"{key}: must be an http:// or https:// URL, got {url!r}")
    if not parsed.host:
        raise ConfigurationError(f"{key}: the URL has no host: {url!r}")


def _check_secret(key: str, secret: str) -> None:
    if not secret:
        raise ConfigurationError(f"{key}: must not be empty")
    try:
        key_bytes = secret_key(secret)
    except ValueError as exc:  # the message never repeats the secret
        raise ConfigurationError(f"{key}: {exc}") from exc
    if not key_bytes:
        raise ConfigurationError(f"{key}: the whsec_ secret decodes to an empty key")


def _looks_like_hostname(entry: str) -> bool:
    labels = entry.rstrip(".").split(".")
    return bool(entry) and all(label and label.replace("-", "").replace("_", "").isalnum() for label in labels)
