"""The pluggy hooks of the ``mediasvc-storage`` distribution."""

from __future__ import annotations

from mediasvc_storage.local import LocalBackend, MemoryBackend
from mediasvc_storage.object_stores import AzureBackend, GCSBackend, S3Backend
from mediasvc.plugin import StorageBackend, hookimpl


@hookimpl
def register_storage_backends() -> list[type[StorageBackend]]:
    return [LocalBackend, MemoryBackend, S3Backend, GCSBackend, AzureBackend]
