"""What the LTI routes share, built once per app in ``register_routes``: settings and the platform key cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from mediasvc_lti.platform_jwks import PlatformKeys
from mediasvc_lti.settings import LtiSettings, load_lti_settings, tool_base_url
from mediasvc.plugin import Settings

STATE_COOKIE_PREFIX = "lti_state_"
SESSION_COOKIE = "mediasvc_lti_session"


@dataclass
class LtiRuntime:
    settings: Settings
    lti: LtiSettings
    platform_keys: PlatformKeys = field(init=False)

    def __post_init__(self) -> None:
        self.platform_keys = PlatformKeys(self.lti)

    @classmethod
    def from_settings(cls, settings: Settings) -> LtiRuntime:
        return cls(settings=settings, lti=load_lti_settings(settings))

    @property
    def secret(self) -> str:
        return self.settings.secret_key

    @property
    def base_url(self) -> str:
        return tool_base_url(self.settings, self.lti)

    @property
    def launch_url(self) -> str:
        return f"{self.base_url}/lti/launch"

    @property
    def login_url(self) -> str:
        return f"{self.base_url}/lti/login"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/lti/jwks"
