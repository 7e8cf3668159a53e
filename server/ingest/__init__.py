"""Ingest: what tus uploads, recording-session chunks and presigned uploads share (validation, asset creation)."""
