"""The ``plugins.zoom`` settings section (env ``MEDIASVC_PLUGINS__ZOOM__<KEY>``)."""

from __future__ import annotations

from typing import Any

import msgspec

from mediasvc.plugin import ConfigurationError

SECTION = "zoom"


class ZoomSettings(msgspec.Struct, forbid_unknown_fields=True):
    account_id: str = ""  # Server-to-Server OAuth app credentials
    client_id: str = ""
    client_secret: str = ""
    webhook_secret_token: str = ""  # the event subscription's secret token: signs every webhook
    api_base_url: str = "https://api.zoom.us"
    oauth_base_url: str = "https://zoom.us"
    timeout_seconds: float = 10.0
    late_after_minutes: float = 5.0  # first join later than start + this: late
    early_leave_minutes: float = 5.0  # last leave earlier than end - this: left early
    signature_tolerance_seconds: int = 300  # webhook timestamps outside ±this are refused

    def __post_init__(self) -> None:
        for key in ("api_base_url", "oauth_base_url"):
            value: str = getattr(self, key)
            if not value.startswith(("http://", "https://")):
                raise ConfigurationError(f"plugins.zoom.{key}: must be an http(s) URL, got {value!r}")
            setattr(self, key, value.rstrip("/"))
        if self.timeout_seconds <= 0:
            raise ConfigurationError("plugins.zoom.timeout_seconds: must be positive")
        if self.late_after_minutes < 0 or self.early_leave_minutes < 0:
            raise ConfigurationError("plugins.zoom.late_after_minutes / early_leave_minutes: must not be negative")

    @property
    def has_api_credentials(self) -> bool:
        return bool(self.account_id and self.client_id and self.client_secret)


def zoom_settings(host: Any) -> ZoomSettings:
    """The validated section from a ``PluginHost`` (``services.host`` or ``ctx["host"]``)."""
    return host.plugin_settings[SECTION]
