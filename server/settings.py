"""One typed settings object, read from ``MEDIASVC_*`` environment variables and an optional TOML file.

Nothing here is cached at import: ``load_settings()`` is called by ``create_app``, the worker factory and the CLI.
Nested keys use a double underscore in the environment: ``MEDIASVC_STORAGE__BACKEND=s3``.
List values may be comma separated (``MEDIASVC_BLOCKED_PLUGINS=a,b``); any value may be JSON.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

import msgspec

from mediasvc.profiles import DEFAULT_PROFILES, Profile

ENV_PREFIX = "MEDIASVC_"


class StorageSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Where assets live. ``backend`` names a storage backend plugin (``local``, ``memory``, ``s3``, ``gcs``,
    ``azure``)."""

    backend: str = "local"
    root: str = ""  # local backend: directory (default: <data_dir>/storage)
    bucket: str = ""  # object stores: the bucket (container) every profile bucket lives under as a prefix
    endpoint: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    path_style: bool = True
    allow_http: bool = False
    options: dict[str, str] = {}  # passed through to the obstore store (gcs/azure credentials...)
    signed_url_ttl_seconds: int = 900


class QueueSettings(msgspec.Struct, forbid_unknown_fields=True):
    """SAQ queue: ``redis://`` in production, ``postgres://`` (the database itself) for the embedded default."""

    url: str = ""  # empty: use the database URL (Postgres queue)
    name: str = "mediasvc"
    concurrency: int = 4
    # cron jobs and event dispatch run on "<name>-housekeeping", this many at a time per worker, apart from
    # processing, so a busy worker still sweeps and delivers on time
    housekeeping_concurrency: int = 2
    # the recovery sweep leaves younger work to the normal path (an upload between its commit and its enqueue)
    recover_grace_seconds: float = 60.0
    default_timeout_seconds: int = 600
    default_retries: int = 3
    heartbeat_seconds: int = 30
    # a running step whose progress has not moved for this long is failed (and retried) with "no progress for N s",
    # even though its worker is alive; 0: never. A processor may set its own ``stall_seconds``.
    stall_seconds: int = 600


class EventSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Outbox delivery: retries back off exponentially from ``retry_base_seconds`` until ``retry_window_hours``."""

    retry_base_seconds: float = 10.0
    retry_max_interval_seconds: float = 3600.0
    retry_window_hours: float = 24.0
    sink_timeout_seconds: float = 10.0


class PlaybackSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Token-protected HLS. ``keys`` maps key ids to secrets; tokens are signed with ``active_key`` and verified with
    any key still listed, so a key can be rotated in without breaking live tokens. With no keys configured, one
    (``k0``) is derived from ``secret_key``."""

    keys: dict[str, str] = {}
    active_key: str = ""
    default_ttl_seconds: int = 3600
    max_ttl_seconds: int = 86400
    # How segment bytes reach players: "proxy" (through the app, Range-capable), "presign" (variant playlists
    # list short-lived presigned object-store URLs), "cdn" (variant playlists list segment_base_url + key).
    # Empty: proxy on the local backend, presign on object stores.
    segment_delivery: Literal["", "proxy", "presign", "cdn"] = ""
    segment_base_url: str = ""  # for "cdn": where the storage keys are published
    playlist_max_age_seconds: int = 2
    trust_forwarded_for: bool = False  # take the client IP for IP-bound tokens from X-Forwarded-For


class ModelsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Downloads by ``mediasvc models install`` (files pinned by size and hash in each plugin's ModelSpec).
    ``base_url`` replaces the official origin: each file is fetched from ``<base_url>/<file name>`` (an
    air-gapped mirror, a test server); the pins still apply."""

    base_url: str = ""
    attempts: int = 5  # tries per file (a cut download resumes with a Range request where the server allows)
    backoff_seconds: float = 1.0  # wait before retry n: backoff_seconds * 2**(n-1), at most 30 s
    timeout_seconds: float = 60.0  # connect and read timeout


class ShutdownSettings(msgspec.Struct, forbid_unknown_fields=True):
    """``mediasvc serve`` on SIGTERM: ``/health`` answers 503 ``draining`` for ``drain_seconds`` while the port still
    accepts (load balancers take the instance out), then the server stops accepting and in-flight requests get up
    to ``timeout_seconds`` to finish before the workers are killed."""

    drain_seconds: float = 5.0
    timeout_seconds: int = 20


class CorsSettings(msgspec.Struct, forbid_unknown_fields=True):
    """Which browser origins may call the API, tus and presigned uploads (``mediasvc.cors``). Empty: none (no CORS
    headers). ``"*"``: any origin, then without credentials. Playback (``/hls/``, signed ``/media/serve|stream/``)
    is open to any origin regardless: the token in the URL is the credential."""

    allow_origins: list[str] = []  # e.g. ["https://interview.example.com"]; scheme://host[:port], no path
    allow_credentials: bool = False  # cookies / HTTP auth on cross-origin calls; never with "*"
    max_age_seconds: int = 600  # how long a browser may cache a preflight's answer


class Settings(msgspec.Struct, forbid_unknown_fields=True):
    data_dir: str = "./data"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/mediasvc"
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = ""  # public URL of this service, e.g. https://media.example.com
    cdn_base_url: str = ""  # used instead of base_url in every public media URL the API returns
    secret_key: str = ""  # signs URLs and tokens; single host only: generated into <data_dir>/secret_key when empty
    models_dir: str = ""  # prepared models (`mediasvc models install`); default <data_dir>/models
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    blocked_plugins: list[str] = []
    trace_hooks: bool = False  # log every hook call (pluggy tracing)
    run_worker_in_app: bool = False  # `mediasvc dev`: the SAQ worker runs inside the API process
    worker_metrics_port: int = 0  # `mediasvc worker` serves /metrics and /health here (on `host`); 0: off (the image sets 8001)
    max_json_body_bytes: int = 1_048_576
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    queue: QueueSettings = msgspec.field(default_factory=QueueSettings)
    events: EventSettings = msgspec.field(default_factory=EventSettings)
    playback: PlaybackSettings = msgspec.field(default_factory=PlaybackSettings)
    models: ModelsSettings = msgspec.field(default_factory=ModelsSettings)
    shutdown: ShutdownSettings = msgspec.field(default_factory=ShutdownSettings)
    cors: CorsSettings = msgspec.field(default_factory=CorsSettings)
    profiles: dict[str, Profile] = msgspec.field(default_factory=lambda: dict(DEFAULT_PROFILES))
    plugins: dict[str, dict[str, Any]] = {}  # per-plugin settings, validated by the plugin's own struct

    @property
    def queue_url(self) -> str:
        return self.queue.url or self.database_url

    @property
    def models_path(self) -> Path:
        return Path(self.models_dir or Path(self.data_dir) / "models")

    @property
    def public_base_url(self) -> str:
        return (self.cdn_base_url or self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the key (env var or TOML path) at fault."""


def load_settings(
    env: Mapping[str, str] | None = None,
    toml_path: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build ``Settings`` from a TOML file (``MEDIASVC_CONFIG`` or ``toml_path``), then env vars, then overrides."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    toml_path = toml_path or env.get(f"{ENV_PREFIX}CONFIG")
    if toml_path:
        try:
            raw = tomllib.loads(Path(toml_path).read_text())
        except FileNotFoundError as exc:
            raise SettingsError(f"{ENV_PREFIX}CONFIG: file not found: {toml_path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{toml_path}: invalid TOML: {exc}") from exc
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and key != f"{ENV_PREFIX}CONFIG":
            path = key[len(ENV_PREFIX) :].lower().split("__")
            _set_path(raw, path, _env_value(path, value, key))
    for key, value in overrides.items():
        if value is not None:
            _set_path(raw, key.split("."), value)
    raw["profiles"] = _merge_profiles(raw.get("profiles"))
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_name_the_key(str(exc))) from exc
    _check(settings)
    return settings


SINGLE_HOST_BACKENDS = ("local", "memory")


def ensure_secret_key(settings: Settings, *, single_host: bool = False) -> Settings:
    """Return settings with a secret key: the configured one, or (single host only) one kept in
    ``<data_dir>/secret_key``. A Redis queue or an object store means several hosts, which must share one key:
    a key generated per data dir would make URLs signed on one host fail on the others, so that refuses to start
    (SettingsError), unless the caller knows it runs alone (``single_host``: `mediasvc dev`)."""
    if settings.secret_key:
        return settings
    redis = settings.queue.url.startswith(("redis://", "rediss://"))
    if not single_host and (redis or settings.storage.backend not in SINGLE_HOST_BACKENDS):
        raise SettingsError(f"{ENV_PREFIX}SECRET_KEY must be set when the queue is Redis or storage is an object "
                            "store (several hosts must share it)")
    path = Path(settings.data_dir) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return msgspec.structs.replace(settings, secret_key=path.read_text().strip())


def database_url_given(env: Mapping[str, str] | None = None,
                       toml_path: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``database_url`` is set (environment or TOML file) rather than left at its default."""
    env = os.environ if env is None else env
    if env.get(f"{ENV_PREFIX}DATABASE_URL"):
        return True
    toml_path = toml_path or env.get(f"{ENV_PREFIX}CONFIG")
    if not toml_path:
        return False
    try:
        return bool(tomllib.loads(Path(toml_path).read_text()).get("database_url"))
    except (OSError, tomllib.TOMLDecodeError):
        return False  # load_settings reports the file's problem, naming it


def _merge_profiles(configured: Any) -> Any:
    """Configured profiles extend the defaults; a configured key overrides only the fields it names."""
    merged: dict[str, Any] = msgspec.to_builtins(DEFAULT_PROFILES)
    if not isinstance(configured, dict):
        return configured if configured is not None else merged
    for name, fields in configured.items():
        merged[name] = {**merged.get(name, {}), **fields} if isinstance(fields, dict) else fields
    return merged


def _set_path(raw: dict[str, Any], path: list[str], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SettingsError(f"{ENV_PREFIX}{'__'.join(path).upper()}: {part!r} is not a section")
    node[path[-1]] = value


def _env_value(path: list[str], value: str, key: str) -> Any:
    stripped = value.strip()
    if stripped and stripped[0] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{key}: invalid JSON: {exc}") from exc
    if _is_list_field(path):
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return value


def _is_list_field(path: list[str]) -> bool:
    info: Any = msgspec.inspect.type_info(Settings)
    for part in path:
        if not isinstance(info, msgspec.inspect.StructType):
            return False
        match = [f for f in info.fields if f.name == part]
        if not match:
            return False
        info = match[0].type
    return isinstance(info, (msgspec.inspect.ListType, msgspec.inspect.SetType))


def _name_the_key(message: str) -> str:
    """Turn msgspec's ``- at `$.storage.port``` into the env var a person would set."""
    if "at `$." in message:
        detail, _, where = message.rpartition(" - at `$.")
        path = where.rstrip("`").replace("[", ".").replace("]", "").replace("'", "").replace('"', "")
        env_name = ENV_PREFIX + "__".join(path.split(".")).upper()
        return f"{env_name} (settings key '{path}'): {detail}"
    return f"settings: {message}"


def _check(settings: Settings) -> None:
    if not (1 <= settings.port <= 65535):
        raise SettingsError(f"{ENV_PREFIX}PORT (settings key 'port'): must be 1-65535, got {settings.port}")
    if not settings.database_url.startswith(("postgres://", "postgresql://")):
        raise SettingsError(
            f"{ENV_PREFIX}DATABASE_URL (settings key 'database_url'): must be a postgresql:// URL, "
            f"got {settings.database_url!r}"
        )
    if settings.queue.url and not settings.queue.url.startswith(("redis://", "rediss://", "postgres")):
        raise SettingsError(
            f"{ENV_PREFIX}QUEUE__URL (settings key 'queue.url'): must be redis:// or postgresql://, "
            f"got {settings.queue.url!r}"
        )
    if settings.queue.housekeeping_concurrency < 1:
        raise SettingsError(f"{ENV_PREFIX}QUEUE__HOUSEKEEPING_CONCURRENCY (settings key "
                            "'queue.housekeeping_concurrency'): must be at least 1 (cron jobs and event delivery)")
    for name, profile in settings.profiles.items():
        if profile.max_bytes <= 0:
            raise SettingsError(f"profiles.{name}.max_bytes: must be positive, got {profile.max_bytes}")
        if not profile.formats:
            raise SettingsError(f"profiles.{name}.formats: a profile must allow at least one format")
    models = settings.models
    if models.base_url and not models.base_url.startswith(("https://", "http://")):
        raise SettingsError(f"{ENV_PREFIX}MODELS__BASE_URL (settings key 'models.base_url'): must be an http(s) "
                            f"URL, got {models.base_url!r}")
    if models.attempts < 1:
        raise SettingsError(f"{ENV_PREFIX}MODELS__ATTEMPTS (settings key 'models.attempts'): must be at least 1")
    shutdown = settings.shutdown
    if shutdown.drain_seconds < 0 or shutdown.timeout_seconds < 1:
        raise SettingsError(f"{ENV_PREFIX}SHUTDOWN__DRAIN_SECONDS / __TIMEOUT_SECONDS (settings keys "
                            "'shutdown.drain_seconds' / 'shutdown.timeout_seconds'): drain must be 0 or more, "
                            "the timeout at least 1 second")
    _check_cors(settings.cors)
    playback = settings.playback
    if playback.keys and playback.active_key not in playback.keys:
        raise SettingsError(f"{ENV_PREFIX}PLAYBACK__ACTIVE_KEY (settings key 'playback.active_key'): must be one of "
                            f"the configured playback.keys {sorted(playback.keys)}, got {playback.active_key!r}")
    if playback.segment_delivery == "cdn" and not playback.segment_base_url:
        raise SettingsError(f"{ENV_PREFIX}PLAYBACK__SEGMENT_BASE_URL (settings key 'playback.segment_base_url'): "
                            "required when playback.segment_delivery is 'cdn'")


def _check_cors(cors: CorsSettings) -> None:
    for origin in cors.allow_origins:
        if origin != "*" and (not origin.startswith(("https://", "http://")) or "/" in origin.split("://", 1)[1]
                              .rstrip("/")):
            raise SettingsError(f"{ENV_PREFIX}CORS__ALLOW_ORIGINS (settings key 'cors.allow_origins'): each origin "
                                f"is scheme://host[:port] or \"*\", got {origin!r}")
    if cors.allow_credentials and "*" in cors.allow_origins:
        raise SettingsError(f"{ENV_PREFIX}CORS__ALLOW_CREDENTIALS (settings key 'cors.allow_credentials'): not "
                            "with \"*\" in cors.allow_origins (browsers refuse credentials for any origin)")
