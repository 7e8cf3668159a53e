"""What the tus routes read from headers and bodies, for the OpenAPI document (``opt=openapi_opt(...)`` on each
route in ``mediasvc.api.tus``). The handlers read these from the raw request to answer as tus requires (412 for
a missing ``Tus-Resumable``, 409 for a wrong offset...), so Litestar cannot see them in their signatures."""

from __future__ import annotations

from typing import Any

from mediasvc.ingest.tus_headers import ASSET_ID_HEADER, CHECKSUM_ALGORITHMS, OFFSET_CONTENT_TYPE, TUS_VERSION
from mediasvc.openapi_doc import TUS_METADATA_PATTERN, binary_body, header, openapi_opt

_COUNT = {"type": "integer", "minimum": 0}
_CHECKSUM = "^(" + "|".join(CHECKSUM_ALGORITHMS) + ") [A-Za-z0-9+/]+={0,2}$"

TUS_RESUMABLE = header("Tus-Resumable", {"type": "string", "enum": [TUS_VERSION]}, required=True,
                       description="The protocol version; anything else is a 412")
UPLOAD_LENGTH = header("Upload-Length", _COUNT, description="The upload's size in bytes")
UPLOAD_DEFER_LENGTH = header("Upload-Defer-Length", {"type": "string", "enum": ["1"]},
                             description="The size is not known yet (send Upload-Length later, with a PATCH)")
UPLOAD_METADATA = header("Upload-Metadata", {"type": "string", "pattern": TUS_METADATA_PATTERN},
                         description="`key base64value` pairs, comma-separated: `filename`, `filetype`, "
                                     "`profile` (without it, `[plugins.tus] default_profile` decides: by "
                                     "default the profile matching the type), `owner`, `session`")
UPLOAD_CONCAT = header("Upload-Concat", {"type": "string", "pattern": "^(partial|final;.+)$"},
                       description="`partial`, or `final;<url> <url> ...` to join partial uploads")
UPLOAD_CHECKSUM = header("Upload-Checksum", {"type": "string", "pattern": _CHECKSUM},
                         description="`<algorithm> <base64 digest>` of this request's body (460 when it differs)")
UPLOAD_OFFSET = header("Upload-Offset", _COUNT, required=True,
                       description="Where this body starts: the upload's current offset (409 otherwise)")
METHOD_OVERRIDE = header("X-HTTP-Method-Override", {"type": "string", "enum": ["PATCH", "DELETE"]},
                         required=True, description="For clients that cannot send PATCH or DELETE")

_TUS_HEADER = {"schema": {"type": "string", "enum": [TUS_VERSION]}}
_OFFSET_HEADER = {"schema": {"type": "integer", "minimum": 0}}
_ASSET_HEADER = {"description": "The asset, once the last byte arrived", "required": False,
                 "schema": {"type": "string", "format": "uuid"}}
_PROGRESS_HEADERS = {"Tus-Resumable": _TUS_HEADER, "Upload-Offset": _OFFSET_HEADER,
                     ASSET_ID_HEADER: _ASSET_HEADER}


def _no_content(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "headers": headers}


CREATE = openapi_opt(
    errors=[400, 403, 404, 409, 410, 412, 413, 415, 423, 460],
    parameters=[TUS_RESUMABLE, UPLOAD_LENGTH, UPLOAD_DEFER_LENGTH, UPLOAD_METADATA, UPLOAD_CONCAT,
                UPLOAD_CHECKSUM],
    body=binary_body(OFFSET_CONTENT_TYPE, required=False),
    responses={201: _no_content("Created; `Location` is the upload's URL",
                                {"Location": {"schema": {"type": "string"}}, **_PROGRESS_HEADERS})},
)
STATUS = openapi_opt(
    errors=[410, 412],
    parameters=[TUS_RESUMABLE],
    responses={200: _no_content("The upload's state, in headers", {
        **_PROGRESS_HEADERS,
        "Upload-Length": {"required": False, "schema": {"type": "integer", "minimum": 0}},
        "Upload-Defer-Length": {"required": False, "schema": {"type": "string"}},
        "Upload-Metadata": {"required": False, "schema": {"type": "string"}},
        "Upload-Concat": {"required": False, "schema": {"type": "string"}}})},
)
APPEND = openapi_opt(
    errors=[400, 403, 409, 410, 412, 413, 415, 423, 460],
    parameters=[TUS_RESUMABLE, UPLOAD_OFFSET, UPLOAD_CHECKSUM, UPLOAD_LENGTH],
    body=binary_body(OFFSET_CONTENT_TYPE),
    responses={204: _no_content("Appended; `Upload-Offset` is the new offset", _PROGRESS_HEADERS)},
)
TERMINATE = openapi_opt(errors=[410, 412, 423], parameters=[TUS_RESUMABLE])
OVERRIDE = openapi_opt(
    errors=[400, 403, 409, 410, 412, 413, 415, 423, 460],
    parameters=[METHOD_OVERRIDE, TUS_RESUMABLE, {**UPLOAD_OFFSET, "required": False}, UPLOAD_CHECKSUM,
                UPLOAD_LENGTH],
    body=binary_body(OFFSET_CONTENT_TYPE, required=False),
    responses={204: _no_content("Appended (PATCH) or terminated (DELETE)", {"Tus-Resumable": _TUS_HEADER})},
)
