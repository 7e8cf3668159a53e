"""Cloud object stores: S3 (and S3-compatible servers), Google Cloud Storage, Azure Blob Storage.

``settings.storage.options`` is passed through: HTTP client keys (``timeout``, ``proxy_url``...) go to
``client_options``, every other key to the store's own config (``service_account_key``, ``account_name``...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import AzureStore, GCSStore, S3Store

from mediasvc_storage.base import ObstoreBackend, check_presign_args
from mediasvc.plugin import ConfigurationError

if TYPE_CHECKING:
    from mediasvc.plugin import Settings, StorageSettings

CLIENT_OPTION_KEYS = frozenset({
    "allow_http", "allow_invalid_certificates", "connect_timeout", "default_content_type", "default_headers",
    "http1_only", "http2_keep_alive_interval", "http2_keep_alive_timeout", "http2_keep_alive_while_idle",
    "http2_only", "pool_idle_timeout", "pool_max_idle_per_host", "proxy_url", "proxy_ca_certificate",
    "proxy_excludes", "root_certificate", "randomize_addresses", "read_timeout", "timeout", "user_agent",
})


class SignedObjectStoreBackend(ObstoreBackend):
    """A store that signs its own URLs (``obstore.sign``): the client talks to the cloud directly."""

    async def presign(
        self, key: str, *, method: str = "GET", expires_in: int = 900, content_type: str | None = None
    ) -> str:
        """``content_type`` is not part of the signature: an upload may send any Content-Type."""
        method = check_presign_args(key, method, expires_in)
        return await obstore.sign_async(self.store, method, key, timedelta(seconds=expires_in))


class S3Backend(SignedObjectStoreBackend):
    name = "s3"

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Backend:
        storage = settings.storage
        _require_bucket(storage, "s3")
        if bool(storage.access_key_id) != bool(storage.secret_access_key):
            missing = "SECRET_ACCESS_KEY" if storage.access_key_id else "ACCESS_KEY_ID"
            raise ConfigurationError(
                f"MEDIASVC_STORAGE__{missing} is required when the other S3 credential is set "
                "(leave both empty to use the AWS environment or instance role)"
            )
        _check_endpoint(storage)
        config: dict[str, Any] = {
            "region": storage.region, "virtual_hosted_style_request": not storage.path_style,
        }
        if storage.endpoint:
            config["endpoint"] = storage.endpoint
        if storage.access_key_id:
            config["access_key_id"] = storage.access_key_id
            config["secret_access_key"] = storage.secret_access_key
        return cls(_build(S3Store, storage, config), settings)


class GCSBackend(SignedObjectStoreBackend):
    """Credentials come from ``options`` (``service_account_key``, ``application_credentials``) or the
    environment (``GOOGLE_APPLICATION_CREDENTIALS``). Signing URLs needs a service account."""

    name = "gcs"

    @classmethod
    def from_settings(cls, settings: Settings) -> GCSBackend:
        storage = settings.storage
        _require_bucket(storage, "gcs")
        _check_endpoint(storage)
        config = {"base_url": storage.endpoint} if storage.endpoint else {}
        return cls(_build(GCSStore, storage, config), settings)


class AzureBackend(SignedObjectStoreBackend):
    """``bucket`` is the container; ``access_key_id``/``secret_access_key`` are the account name and key
    (or set ``options.account_name``, ``options.sas_key``...)."""

    name = "azure"

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureBackend:
        storage = settings.storage
        _require_bucket(storage, "azure")
        _check_endpoint(storage)
        config: dict[str, Any] = {}
        if storage.endpoint:
            config["endpoint"] = storage.endpoint
        if storage.access_key_id:
            config["account_name"] = storage.access_key_id
        if storage.secret_access_key:
            config["account_key"] = storage.secret_access_key
        return cls(_build(AzureStore, storage, config), settings)


def _require_bucket(storage: StorageSettings, backend: str) -> None:
    if not storage.bucket:
        raise ConfigurationError(f"MEDIASVC_STORAGE__BUCKET is required for the {backend} backend")


def _check_endpoint(storage: StorageSettings) -> None:
    endpoint = storage.endpoint
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ConfigurationError(f"MEDIASVC_STORAGE__ENDPOINT must be an http(s):// URL, got {endpoint!r}")
    if endpoint.startswith("http://") and not storage.allow_http:
        raise ConfigurationError(
            f"MEDIASVC_STORAGE__ALLOW_HTTP must be true to use the plain-http endpoint {endpoint!r}"
        )


def _build(store_type: Callable[..., Any], storage: StorageSettings, config: dict[str, Any]) -> Any:
    """Build the obstore store; ``options`` override the keys derived from the settings."""
    client_options: dict[str, Any] = {"allow_http": storage.allow_http}
    for key, value in storage.options.items():
        (client_options if key in CLIENT_OPTION_KEYS else config)[key] = value
    try:
        return store_type(storage.bucket, config=config, client_options=client_options)
    except (ObstoreError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"MEDIASVC_STORAGE__OPTIONS / storage settings rejected by the {storage.backend} store: "
            f"{str(exc).splitlines()[0]}"
        ) from exc
