"""Settings of the tus server: the ``[plugins.tus]`` section
(``MEDIASVC_PLUGINS__TUS__EXPIRATION_SECONDS=...``, ``MEDIASVC_PLUGINS__TUS__DEFAULT_PROFILE=auto``).

The section is validated at start-up once ``register_settings`` of ``mediasvc.ingest.tus_jobs`` is registered;
it is read with the same struct wherever it is needed, so a missing section means the defaults.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from mediasvc.errors import ConfigurationError
from mediasvc.settings import Settings

SECTION = "tus"
MIB = 1024 * 1024
DEFAULT_AUTO = "auto"
DEFAULT_REQUIRED = "required"


class TusSettings(msgspec.Struct, forbid_unknown_fields=True):
    # An unfinished upload expires this long after its last accepted chunk (Upload-Expires); then the
    # `tus.expire` job deletes its bytes.
    expiration_seconds: int = 24 * 3600
    # Object stores: where a chunk is spooled before it is sent (default <data_dir>/tmp/tus), and the
    # multipart part size (S3's minimum is 5 MiB).
    temp_dir: str = ""
    part_size: int = 8 * MIB
    # The profile of an upload whose Upload-Metadata names none (generic tus clients send only filename and
    # filetype): "auto" picks it by type (mediasvc.profiles.match_profiles), a profile name always uses that
    # one, "required" refuses such uploads (422).
    default_profile: str = DEFAULT_AUTO


def tus_settings(settings: Settings) -> TusSettings:
    raw = settings.plugins.get(SECTION, {})
    try:
        found = msgspec.convert(raw, TusSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"Bad plugin settings in plugins.{SECTION}: {exc}") from exc
    if found.expiration_seconds < 1:
        raise ConfigurationError(f"plugins.{SECTION}.expiration_seconds must be at least 1")
    if found.part_size < 5 * MIB:
        raise ConfigurationError(f"plugins.{SECTION}.part_size must be at least 5 MiB (S3's minimum)")
    default = found.default_profile
    if default not in (DEFAULT_AUTO, DEFAULT_REQUIRED) and default not in settings.profiles:
        raise ConfigurationError(
            f"plugins.{SECTION}.default_profile is {default!r}: use 'auto', 'required' or a configured "
            f"profile ({sorted(settings.profiles)})")
    return found


def spool_dir(settings: Settings) -> Path:
    configured = tus_settings(settings).temp_dir
    path = Path(configured) if configured else Path(settings.data_dir) / "tmp" / "tus"
    path.mkdir(parents=True, exist_ok=True)
    return path
