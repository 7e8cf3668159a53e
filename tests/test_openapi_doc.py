"""The OpenAPI document says what the API does (the error envelope, tus headers, multipart and form bodies, the
API key), ``OPTIONS`` lists every method a path serves, and the OpenAPI UI at /schema loads nothing from another
origin. (tests/test_openapi_fuzz.py holds the whole document to the live API.)"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

ERROR_REF = {"$ref": "#/components/schemas/Error"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@pytest.fixture
async def doc(client: httpx.AsyncClient) -> dict:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


async def test_every_error_response_is_the_envelope(doc):
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    detail = doc["components"]["schemas"][error["properties"]["error"]["$ref"].rsplit("/", 1)[1]]
    assert set(detail["required"]) == {"code", "message", "details", "request_id"}
    checked = 0
    for path, method, operation in operations(doc):
        errors = {s: r for s, r in operation["responses"].items() if s.isdigit() and int(s) >= 400}
        assert {"500", "503"} <= set(errors), (method, path)
        for status, response in errors.items():
            assert response["content"]["application/json"]["schema"] == ERROR_REF, (method, path, status)
            checked += 1
    assert checked > 200
    assert '"detail"' not in str(doc).replace("'", '"')  # Litestar's own {detail, status_code} body is gone


async def test_guarded_operations_declare_the_api_key_and_401(doc):
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`"}
    assets = doc["paths"]["/api/v1/assets"]["get"]
    assert assets["security"] == [{"apiKey": []}] and "401" in assets["responses"]
    for path, method in (("/api/v1/playback/{asset_id}", "get"), ("/media/serve/{key}", "get"), ("/health", "get")):
        assert "security" not in doc["paths"][path][method], path
    assert {"404", "422", "400"} <= set(doc["paths"]["/api/v1/assets/{asset_id}"]["get"]["responses"])


def header_names(operation: dict) -> set[str]:
    return {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}


async def test_tus_headers_and_body(doc):
    tus = doc["paths"]["/api/v1/tus"]["post"]
    assert {"Tus-Resumable", "Upload-Length", "Upload-Defer-Length", "Upload-Metadata", "Upload-Concat",
            "Upload-Checksum"} <= header_names(tus)
    resumable = next(p for p in tus["parameters"] if p["name"] == "Tus-Resumable")
    assert resumable["required"] and resumable["schema"]["enum"] == ["1.0.0"]
    assert "application/offset+octet-stream" in tus["requestBody"]["content"]
    assert {"412", "413", "415"} <= set(tus["responses"])
    patch = doc["paths"]["/api/v1/tus/{upload_id}"]["patch"]
    assert {"Tus-Resumable", "Upload-Offset"} <= header_names(patch) and patch["requestBody"]["required"]
    assert "Upload-Offset" in patch["responses"]["204"]["headers"]
    assert "Upload-Offset" in doc["paths"]["/api/v1/tus/{upload_id}"]["head"]["responses"]["200"]["headers"]
    override = doc["paths"]["/api/v1/tus/{upload_id}"]["post"]
    assert "X-HTTP-Method-Override" in header_names(override)


def form_schema(operation: dict, media: str) -> dict:
    return operation["requestBody"]["content"][media]["schema"]


async def test_multipart_bodies(doc):
    validate = form_schema(doc["paths"]["/api/v1/validate"]["post"], "multipart/form-data")
    assert list(validate["properties"]) == ["profile", "file"]  # the profile before the file
    assert validate["properties"]["file"] == {"type": "string", "format": "binary"}
    chunk = form_schema(doc["paths"]["/api/v1/sessions/{session_ref}/chunks"]["post"], "multipart/form-data")
    assert {"file", "sequence_index", "total_chunks", "overlap_seconds", "question_id"} <= set(chunk["properties"])
    assert set(chunk["required"]) == {"file", "sequence_index"}
    assert chunk["properties"]["question_id"]["maxLength"] == 200
    assert chunk["properties"]["question_id"]["pattern"].startswith("^[^\\x00")  # the text rule


async def test_lti_form_posts(doc):
    launch = form_schema(doc["paths"]["/lti/launch"]["post"], "application/x-www-form-urlencoded")
    assert {"id_token", "state"} <= set(launch["required"])
    login_post = form_schema(doc["paths"]["/lti/login"]["post"], "application/x-www-form-urlencoded")
    assert set(login_post["required"]) == {"iss", "login_hint", "target_link_uri"}
    login_get = doc["paths"]["/lti/login"]["get"]
    assert "requestBody" not in login_get
    assert {p["name"] for p in login_get["parameters"] if p["required"]} == {"iss", "login_hint", "target_link_uri"}
    for path in ("/lti/deep-link", "/lti/course/assets"):
        fields = form_schema(doc["paths"][path]["post"], "application/x-www-form-urlencoded")["properties"]
        assert "lti_session" in fields and "asset_id" in fields


async def test_request_schemas_say_what_the_server_refuses(doc):
    schemas = doc["components"]["schemas"]
    session_create = next(s for s in schemas.values() if s.get("title") == "SessionCreate")
    assert session_create["additionalProperties"] is False  # forbid_unknown_fields
    assert session_create["properties"]["metadata"]["propertyNames"]["pattern"].startswith("^[^\\x00")
    created = next(p for p in doc["paths"]["/api/v1/assets"]["get"]["parameters"] if p["name"] == "created_after")
    assert {"type": "number", "description": "Unix seconds"} in created["schema"]["oneOf"]  # lax conversion


async def test_options_lists_every_method_of_the_path(client: httpx.AsyncClient, auth):
    """Litestar 2 kept the OPTIONS handler of the first handler registered on a path: `Allow: DELETE, OPTIONS`
    for /api/v1/assets/{id}, which also serves GET."""
    asset = f"/api/v1/assets/{uuid.uuid4()}"
    response = await client.options(asset, headers=auth)
    assert response.status_code == 204
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"
    response = await client.options("/api/v1/sessions/abc", headers=auth)
    assert response.headers["allow"] == "DELETE, GET, OPTIONS"
    refused = await client.put(asset, headers=auth)
    assert refused.status_code == 405
    assert set(refused.headers["allow"].replace(" ", "").split(",")) == {"DELETE", "GET", "OPTIONS"}
    assert refused.json()["error"]["code"] == "method_not_allowed"


async def test_non_ascii_signature_is_refused_not_a_500(client: httpx.AsyncClient):
    """Found by the fuzzer: hmac.compare_digest raises on non-ASCII text, so such a `sig` was a 500."""
    for method in ("GET", "HEAD"):
        response = await client.request(method, "/media/stream/a.mp4?sig=%C3%BD%C3%80&exp=3734831292")
        assert response.status_code == 403, response.text


async def test_schema_page_loads_only_local_assets(client: httpx.AsyncClient):
    page = await client.get("/schema")
    assert page.status_code == 200
    html = page.text
    urls = re.findall(r'(?:src|href|data-url)="([^"]+)"', html)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "cdn" not in html.lower() and "https://" not in html
    script = next(url for url in urls if url.endswith(".js"))
    assert re.fullmatch(r"/static/vendor/scalar-api-reference-\d+\.\d+\.\d+\.js", script)
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
    assert (await client.get(script)).headers["content-type"].startswith(("application/javascript", "text/javascript"))
    assert '"withDefaultFonts":false' in html  # Scalar would fetch its fonts from fonts.scalar.com
