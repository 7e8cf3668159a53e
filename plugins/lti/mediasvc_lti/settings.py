"""The ``plugins.lti`` settings section."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from mediasvc.plugin import ConfigurationError

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

SECTION = "lti"


class LtiSettings(msgspec.Struct, forbid_unknown_fields=True):
    tool_base_url: str = ""  # public URL platforms reach the tool at; default: the service's base_url
    allow_insecure_urls: bool = False  # accept http:// platform URLs (local development and tests only)
    require_state_cookie: bool = False  # true: refuse launches whose browser sent no state cookie
    state_ttl_seconds: int = 600  # from login initiation to launch
    session_ttl_seconds: int = 8 * 3600  # an LTI session after a launch
    leeway_seconds: int = 30  # clock skew allowed on exp/iat
    jwks_cache_seconds: int = 300  # how long a platform's JWKS is trusted before refetching
    jwks_min_refetch_seconds: float = 5.0  # an unknown kid refetches at most this often per JWKS URL
    http_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        for name in ("state_ttl_seconds", "session_ttl_seconds", "jwks_cache_seconds", "http_timeout_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"plugins.{SECTION}.{name}: must be positive")
        if self.leeway_seconds < 0 or self.jwks_min_refetch_seconds < 0:
            raise ConfigurationError(f"plugins.{SECTION}: leeway and refetch interval must not be negative")


def load_lti_settings(settings: Settings) -> LtiSettings:
    raw: Any = settings.plugins.get(SECTION, {})
    try:
        return msgspec.convert(raw, LtiSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"plugins.{SECTION}: {exc}") from exc


def tool_base_url(settings: Settings, lti: LtiSettings) -> str:
    """The origin the tool's own URLs (launch, JWKS, deep-link targets) are built on."""
    return (lti.tool_base_url or settings.base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
