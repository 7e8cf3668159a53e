"""mediasvc storage backends on obstore: ``local``, ``memory``, ``s3``, ``gcs``, ``azure``."""

from mediasvc_storage.base import ObstoreBackend
from mediasvc_storage.local import LocalBackend, MemoryBackend
from mediasvc_storage.object_stores import AzureBackend, GCSBackend, S3Backend

__all__ = ["AzureBackend", "GCSBackend", "LocalBackend", "MemoryBackend", "ObstoreBackend", "S3Backend"]
