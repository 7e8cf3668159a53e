"""The OpenAPI document as the API really answers: what Litestar generates, finished here with what it cannot know.

Litestar documents each handler from its signature. It cannot know that every error is answered in the one
envelope of ``mediasvc.errors`` (it documents its own ``{detail, status_code}`` body for a 400), that a route
is guarded by the API key, nor the headers and bodies a handler reads from the raw request (tus, multipart,
the LTI form posts). :func:`finish_document` adds them, once per app, to the generated document:

- every operation's error responses (4xx/5xx) carry the ``Error`` envelope (component ``Error``): the statuses
  every operation can answer (401 when guarded; 404 with path parameters; 400/422 with parameters or a body;
  413 and 507 with a body; 500 and 503), plus those its handler declares;
- guarded operations get ``security: [{apiKey: []}]`` (``Authorization: Bearer <api key>``);
- a handler documents what its signature does not show in ``opt={"openapi": {...}}``: ``parameters`` (OpenAPI
  parameter objects), ``requestBody`` (with ``components``: the schemas it refers to, as
  ``#/components/schemas/<name>``), ``responses`` (merged over the generated ones), ``errors`` (statuses
  answered with the envelope) and ``by_method`` (``{"POST": {...}}``: for one method of a multi-method handler).
  The helpers below build those fragments; plugins write them as plain dicts (docs/plugins.md);
- request text follows the text rule (``mediasvc.text_rules``): the string fields and dict keys of request
  Structs that check it (``CheckedText``), and the query parameters a handler names in ``text_parameters``
  (``openapi_opt(text_query=...)``), carry a pattern without control characters;
- request Structs that refuse unknown fields say ``additionalProperties: false``; a request datetime is RFC 3339
  text or Unix seconds (Litestar converts request data laxly).

The finished document is served at ``/schema/openapi.json`` (:class:`DocumentJsonPlugin`); the UI beside it
loads its script from ``/static/vendor/`` (no CDN). The generated document (``app.openapi_schema``) is left as
Litestar made it; :func:`document_for` gives the finished one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, get_args, get_origin

import msgspec
from litestar import Litestar, Request
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.routes import HTTPRoute

from mediasvc.auth import api_key_guard
from mediasvc.text_rules import CheckedText

# The OpenAPI UI, vendored (web/static/vendor/README.md): the page loads nothing from another origin.
SCALAR_JS = "/static/vendor/scalar-api-reference-1.76.0.js"
SCALAR_CSS = "/static/openapi.css"
ERROR_REF = {"$ref": "#/components/schemas/Error"}
SECURITY_SCHEME = "apiKey"
# mediasvc.text_rules.CONTROL, as a JSON Schema pattern: no C0 control character but tab, LF and CR, no DEL.
TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"
# tus Upload-Metadata: comma-separated ``key`` or ``key base64value`` pairs.
TUS_METADATA_PATTERN = r"^[A-Za-z0-9._~-]+( [A-Za-z0-9+/]*={0,2})?(,[A-Za-z0-9._~-]+( [A-Za-z0-9+/]*={0,2})?)*$"

# Path parameters held to the text rule wherever they appear: a session_ref is resolved by get_session_row
# (mediasvc.api.sessions_rows), which checks it, in the core's routes and the plugins' alike.
TEXT_PATH_PARAMETERS = frozenset({"session_ref"})

STATUS_TEXT = {
    400: "Malformed request (bad syntax, JSON or header)",
    401: "No valid API key (or other credential)",
    403: "The credential is valid but not allowed here",
    404: "Not found (or another tenant's)",
    405: "Method not allowed",
    409: "Conflict with the resource's state",
    410: "Gone: terminated or expired",
    412: "A required precondition header is missing or wrong",
    413: "Too large",
    415: "Unsupported media type or file format",
    422: "Validation failed",
    423: "Locked by another request",
    500: "Internal error",
    503: "Service unavailable (a dependency is down or not configured); may carry Retry-After",
    507: "Insufficient storage: the data dir's disk is full (the upload can resume once space is freed)",
}


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: dict[str, Any]
    request_id: str | None


class Error(msgspec.Struct):
    """The one error envelope: ``{"error": {"code", "message", "details", "request_id"}}``."""

    error: ErrorDetail


# --- fragments for ``opt={"openapi": ...}`` ----------------------------------------------------------------------

def header(name: str, schema: Mapping[str, Any], *, required: bool = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "header", "required": required, "schema": dict(schema),
            **({"description": description} if description else {})}


def query(name: str, schema: Mapping[str, Any], *, required: bool = False, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": dict(schema),
            **({"description": description} if description else {})}


def form_body(properties: Mapping[str, Any], *, required: Iterable[str] = (), multipart: bool = False,
              body_required: bool = True) -> dict[str, Any]:
    """A form body (``application/x-www-form-urlencoded``, or ``multipart/form-data`` for files)."""
    media = "multipart/form-data" if multipart else "application/x-www-form-urlencoded"
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    return {"required": body_required, "content": {media: {"schema": schema}}}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field is text or absent, never JSON null: ``T | None`` is documented as ``T`` (optional)."""
    variants = [v for v in schema.get("anyOf", ()) if v.get("type") != "null"]
    if len(variants) == 1:
        return {**variants[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
    return schema


def struct_form(struct: type[msgspec.Struct], *, files: Iterable[str] = ("file",),
                multipart: bool = True) -> dict[str, Any]:
    """A form body whose text fields are ``struct``'s (decoded from the form the way a JSON body would be), then
    its file parts; text fields follow the text rule when ``struct`` checks it."""
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/components/schemas/{name}")
    schema = components[ref["$ref"].rsplit("/", 1)[1]]
    properties = {name: _not_null(prop) for name, prop in schema.get("properties", {}).items()}
    if _checks_text(struct):
        for prop in properties.values():
            _walk_strings(prop, components, set())
    properties.update({name: {"type": "string", "format": "binary"} for name in files})
    return form_body(properties, required=[*schema.get("required", []), *files], multipart=multipart)


def binary_body(media_type: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}


def signed_query(*extra: str) -> list[dict[str, Any]]:
    """The query parameters of a signed URL (``mediasvc.signing.sign_path``): ``exp`` and ``sig``, after
    ``extra`` (also signed). Only the service mints them: any other value is a 403."""
    return [*(query(name, {"type": "string"}) for name in extra),
            query("exp", {"type": "integer"}, required=True, description="Expiry, Unix seconds"),
            query("sig", {"type": "string"}, required=True, description="HMAC signature")]


def openapi_opt(*, errors: Iterable[int] = (), parameters: Iterable[Mapping[str, Any]] = (),
                body: Mapping[str, Any] | None = None, responses: Mapping[int | str, Any] | None = None,
                text_query: Iterable[str] = (), **opt: Any) -> dict[str, Any]:
    """A handler's ``opt`` with its OpenAPI fragment: ``@post(..., opt=openapi_opt(errors=[409]))``.
    ``text_query`` names the query parameters the handler holds to the text rule (``check_text``)."""
    fragment: dict[str, Any] = {"errors": sorted(set(errors))}
    if text_query:
        fragment["text_parameters"] = list(text_query)
    if parameters:
        fragment["parameters"] = [dict(p) for p in parameters]
    if body is not None:
        fragment["requestBody"] = dict(body)
    if responses:
        fragment["responses"] = {str(k): v for k, v in responses.items()}
    return {**opt, "openapi": fragment}


# --- finishing the document ---------------------------------------------------------------------------------------

def _error_components() -> dict[str, Any]:
    _, components = msgspec.json.schema_components([Error], ref_template="#/components/schemas/{name}")
    return components


def _error_response(status: int, *, html: bool, description: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": ERROR_REF}}
    if html:  # outside /api/, a browser (Accept: text/html) gets the same error as a small page
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": description or STATUS_TEXT.get(status, "Error"), "content": content}


def _handlers(app: Litestar) -> Iterator[tuple[str, str, Any]]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                for method in handler.http_methods:
                    yield route.path_format or "/", method.lower(), handler


def _is_guarded(handler: Any) -> bool:
    return api_key_guard in handler.resolve_guards() and not handler.opt.get("public")


def _merge_parameters(operation: dict[str, Any], extra: Iterable[Mapping[str, Any]]) -> None:
    params = {(p["name"].lower(), p["in"]): p for p in operation.get("parameters", [])}
    for p in extra:
        params[(p["name"].lower(), p["in"])] = copy.deepcopy(dict(p))
    if params:
        operation["parameters"] = list(params.values())


def _finish_operation(path: str, method: str, operation: dict[str, Any], handler: Any,
                      components: dict[str, Any]) -> None:
    fragment = dict(handler.opt.get("openapi") or {})
    fragment.update(fragment.pop("by_method", {}).get(method.upper(), {}))  # one handler, several methods
    _merge_parameters(operation, fragment.get("parameters", ()))
    for param in operation.get("parameters", []):
        if (param["in"] == "query" and param["name"] in fragment.get("text_parameters", ())) or (
                param["in"] == "path" and param["name"] in TEXT_PATH_PARAMETERS):
            _walk_strings(param.get("schema"), components, set())
    for name, schema in (fragment.get("components") or {}).items():  # schemas its requestBody refers to
        components.setdefault(name, copy.deepcopy(schema))
    if "requestBody" in fragment:
        operation["requestBody"] = copy.deepcopy(fragment["requestBody"])
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, response in (fragment.get("responses") or {}).items():
        responses[str(status)] = copy.deepcopy(response)
    statuses = set(fragment.get("errors", ())) | {500, 503}
    guarded = _is_guarded(handler)
    if guarded:
        operation["security"] = [{SECURITY_SCHEME: []}]
        statuses.add(401)
    params = operation.get("parameters", [])
    if any(p["in"] == "path" for p in params):
        statuses.add(404)
    if params or "requestBody" in operation:
        statuses |= {400, 422}
    if "requestBody" in operation:
        statuses |= {413, 507}  # over the body limit; the data dir's disk full while writing it
    for status in statuses:
        responses.setdefault(str(status), {})
    html = not path.startswith("/api/")
    for status, response in list(responses.items()):
        if status.isdigit() and int(status) >= 400:
            described = response.get("description") if "content" not in response or _is_envelope(response) else None
            responses[status] = _error_response(int(status), html=html, description=described)


def _is_envelope(response: Mapping[str, Any]) -> bool:
    return response.get("content", {}).get("application/json", {}).get("schema") == ERROR_REF


# --- the text rule and unknown fields, on request schemas ----------------------------------------------------------

def _walk_strings(schema: Any, components: dict[str, Any], seen: set[str]) -> None:
    """Give every free-text string schema reachable from ``schema`` the text rule's pattern."""
    if isinstance(schema, list):
        for item in schema:
            _walk_strings(item, components, seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in components:
            seen.add(name)
            _walk_strings(components[name], components, seen)
        return
    types = schema.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not {"format", "enum", "const", "pattern", "contentMediaType"} & schema.keys():
        schema["pattern"] = TEXT_PATTERN
    if "properties" not in schema and isinstance(schema.get("additionalProperties"), dict):
        schema.setdefault("propertyNames", {"pattern": TEXT_PATTERN})  # a dict: its keys are checked too
    for key in ("properties", "patternProperties", "$defs"):
        for child in (schema.get(key) or {}).values():
            _walk_strings(child, components, seen)
    for key in ("items", "additionalProperties", "not", "contains"):
        if isinstance(schema.get(key), dict):
            _walk_strings(schema[key], components, seen)
    for key in ("oneOf", "anyOf", "allOf", "prefixItems"):
        if key in schema:
            _walk_strings(schema[key], components, seen)


def _request_structs(app: Litestar) -> Iterator[type[msgspec.Struct]]:
    """Every Struct a handler decodes from a body, nested ones included."""
    pending: list[Any] = []
    for _, _, handler in _handlers(app):
        field = handler.parsed_fn_signature.parameters.get("data")
        if field is not None:
            pending.append(field.annotation)
    seen: set[Any] = set()
    while pending:
        tp = pending.pop()
        if tp in seen:
            continue
        seen.add(tp)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            yield tp
            pending.extend(f.type for f in msgspec.structs.fields(tp))
        elif get_origin(tp) is not None or get_args(tp):
            pending.extend(a for a in get_args(tp) if not isinstance(a, (str, int, float, bytes)))


def _lax_datetimes(schema: Any) -> None:
    """Litestar converts request data laxly (msgspec ``strict=False``): a datetime is RFC 3339 text or Unix
    seconds. Say so wherever a request takes one."""
    if isinstance(schema, list):
        for item in schema:
            _lax_datetimes(item)
    elif isinstance(schema, dict):
        for key, child in list(schema.items()):
            if isinstance(child, dict) and child.get("type") == "string" and child.get("format") == "date-time":
                schema[key] = {"anyOf": [child, {"type": "number", "description": "Unix seconds"}]}
            elif isinstance(child, list) and key in ("oneOf", "anyOf"):
                extended = [*child]
                if any(c.get("format") == "date-time" for c in child if isinstance(c, dict)):
                    extended.append({"type": "number", "description": "Unix seconds"})
                schema[key] = extended
                for item in extended:
                    if isinstance(item, dict) and item.get("format") != "date-time":
                        _lax_datetimes(item)
            else:
                _lax_datetimes(child)


def _checks_text(struct: type[msgspec.Struct]) -> bool:
    return issubclass(struct, CheckedText)


def _struct_key(struct: type[msgspec.Struct]) -> tuple[str, frozenset[str]]:
    return struct.__name__, frozenset(f.encode_name for f in msgspec.structs.fields(struct))


def _matching(components: dict[str, Any], structs: Iterable[type[msgspec.Struct]]) -> Iterator[dict[str, Any]]:
    """The component schemas Litestar generated for ``structs`` (same title, same properties)."""
    keys = {_struct_key(cls) for cls in structs}
    for schema in components.values():
        if (schema.get("title"), frozenset(schema.get("properties", {}))) in keys:
            yield schema


def _finish_request_schemas(app: Litestar, components: dict[str, Any]) -> None:
    """Request Structs that refuse unknown fields say so; those that check text carry the text rule's pattern."""
    structs = list(_request_structs(app))
    for schema in _matching(components, [cls for cls in structs if cls.__struct_config__.forbid_unknown_fields]):
        schema["additionalProperties"] = False
    seen: set[str] = set()
    for schema in _matching(components, [cls for cls in structs if _checks_text(cls)]):
        _walk_strings(schema, components, seen)
    for schema in _matching(components, structs):
        _lax_datetimes(schema.get("properties", {}))


def finish_document(app: Litestar, document: dict[str, Any]) -> dict[str, Any]:
    """Finish Litestar's generated ``document`` in place (see the module docstring) and return it."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_error_components())
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`"}
    paths = document.get("paths", {})
    for path, method, handler in _handlers(app):
        operation = paths.get(path, {}).get(method)
        if isinstance(operation, dict):
            _finish_operation(path, method, operation, handler, schemas)
    _finish_request_schemas(app, schemas)
    for item in paths.values():
        for operation in item.values():
            for param in operation.get("parameters", []) if isinstance(operation, dict) else []:
                if param.get("in") == "query":
                    _lax_datetimes(param)
    return document


class DocumentJsonPlugin(JsonRenderPlugin):
    """``/schema/openapi.json``: the generated document, finished by :func:`finish_document` on first use."""

    def __init__(self) -> None:
        super().__init__()
        self._finished: dict[str, Any] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._finished is None:
            self._finished = finish_document(request.app, copy.deepcopy(openapi_schema))
        return self.render_json(request, self._finished)


def document_for(app: Litestar) -> dict[str, Any]:
    """The finished document of ``app``, as ``/schema/openapi.json`` serves it (for tests and tools)."""
    return finish_document(app, copy.deepcopy(app.openapi_schema.to_schema()))



def openapi_config(version: str) -> OpenAPIConfig:
    """``/schema`` (the Scalar UI, served from ``/static``) and ``/schema/openapi.json`` (the finished document)."""
    ui = ScalarRenderPlugin(js_url=SCALAR_JS, css_url=SCALAR_CSS, path="/scalar", favicon="",
                            options={"withDefaultFonts": False, "hideClientButton": True})
    return OpenAPIConfig(title="mediasvc", version=version, path="/schema", render_plugins=[ui, DocumentJsonPlugin()])
