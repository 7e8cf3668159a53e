"""The request bodies the analysis routes read themselves (multipart upload or JSON), for the OpenAPI document:
each route passes its fragment as ``opt={"openapi": ...}`` (docs/plugins.md, "OpenAPI")."""

from __future__ import annotations

from typing import Any

import msgspec

from mediasvc_analysis.schemas import AnalyzeRequest, AttributesRequest, BatchRequest

_REF = "#/components/schemas/{name}"
_FILE = {"type": "string", "format": "binary"}
_UPLOAD_FIELDS = {
    "file": _FILE,
    "analysis_types": {"type": "string", "description": "Comma-separated analysis types (default: the settings')"},
    "max_labels": {"type": "integer"},
    "min_confidence": {"type": "number"},
}


def _fragment(struct: type[msgspec.Struct], form_fields: dict[str, Any] | None, errors: list[int]) -> dict[str, Any]:
    (ref,), components = msgspec.json.schema_components([struct], ref_template=_REF)
    content: dict[str, Any] = {"application/json": {"schema": ref}}
    if form_fields is not None:
        content["multipart/form-data"] = {"schema": {"type": "object", "properties": form_fields,
                                                     "required": ["file"]}}
    return {"openapi": {"requestBody": {"required": True, "content": content}, "components": components,
                        "errors": errors}}


ANALYZE = _fragment(AnalyzeRequest, _UPLOAD_FIELDS, [404, 409, 413, 415])
BATCH = _fragment(BatchRequest, None, [404, 409, 413, 415])
ATTRIBUTES = _fragment(AttributesRequest, {"file": _FILE, "max_labels": {"type": "integer"}}, [404, 409, 413, 415])
