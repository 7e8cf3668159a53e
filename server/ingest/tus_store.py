"""Where a tus upload's bytes go, and the rule that they are durable before the offset moves.

Two layouts, chosen by the storage backend:

* **Local directory** (``backend.local_path`` gives a file): the request body is written straight into the
  file of the asset's final key at ``Upload-Offset`` and fsynced before the caller commits the new offset. The
  file may hold bytes past the committed offset only after a crash between the write and the commit; the next
  PATCH cuts them off before writing, so what counts is always exactly what the database says.
* **Object store** (S3, GCS, Azure, memory): objects cannot be appended to, and obstore's multipart writer
  lives in one process's memory (the next PATCH may reach another instance). So each PATCH is spooled to a
  temporary file and then stored as one *segment* object (``<tenant>/tus/<upload id>/seg-<offset>``) with an
  S3 multipart upload in ``part_size`` parts read from that file. The segment list is committed with the
  offset. On completion the segments are streamed, in order, into the final key (one multipart upload, sha256
  computed on the way) and deleted. A PATCH that carries the whole file goes straight to the final key.

Memory stays bounded whatever the file size: a write batch of ``WRITE_BATCH`` bytes in flight on the local
disk, the obstore part buffers for object stores.

This module picks the layout (``store_for``) and is what the rest of the core imports; the pieces live beside it:
``tus_store_base`` (the interface, segments, working keys), ``tus_store_local`` and ``tus_store_object`` (the two
layouts), ``tus_body`` (receiving a body, the running sha256) and ``tus_io`` (blocking file work in threads).
"""

from __future__ import annotations

from mediasvc.contracts import StorageBackend
from mediasvc.errors import MediaServiceError
from mediasvc.ingest.tus_body import forget_sha_state, remember_sha_state
from mediasvc.ingest.tus_store_base import Appended, Segment, TusStore, partial_key, segments_of, tus_prefix
from mediasvc.ingest.tus_store_local import LocalTusStore
from mediasvc.ingest.tus_store_object import ObjectTusStore
from mediasvc.settings import Settings

__all__ = [
    "Appended", "LocalTusStore", "ObjectTusStore", "Segment", "TusStore", "forget_sha_state", "partial_key",
    "remember_sha_state", "segments_of", "store_for", "tus_prefix",
]


def store_for(backend: StorageBackend, settings: Settings) -> TusStore:
    try:
        local = backend.local_path("probe") is not None
    except MediaServiceError:
        local = False
    return LocalTusStore(backend, settings) if local else ObjectTusStore(backend, settings)
