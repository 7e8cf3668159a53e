"""Asset records through the REST API: auth, tenant scope, validation, pagination, soft delete."""

from __future__ import annotations

import uuid

from mediasvc.auth import create_api_key, revoke_api_key
from mediasvc.tables import Asset as AssetRow
from mediasvc.tables import Event as EventRow


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


async def create(client, auth, **fields):
    payload = {"profile": "video_response", "original_name": "answer.mp4", "size_bytes": 1000} | fields
    return await client.post("/api/v1/assets", json=payload, headers=auth)


async def test_create_then_get_and_list(client, auth):
    response = await create(client, auth, owner="user-7", metadata={"question": 3})
    assert response.status_code == 201, response.text
    asset = response.json()
    assert asset["status"] == "pending"
    assert asset["kind"] == "video"
    assert asset["profile"] == "video_response"
    assert asset["metadata"] == {"question": 3}

    detail = await client.get(f"/api/v1/assets/{asset['id']}", headers=auth)
    assert detail.status_code == 200
    assert detail.json()["id"] == asset["id"]

    listing = await client.get("/api/v1/assets", headers=auth)
    assert [item["id"] for item in listing.json()["items"]] == [asset["id"]]


async def test_storage_key_is_built_by_the_service(client, auth):
    response = await create(client, auth, original_name="../../etc/passwd.mp4")
    assert response.status_code == 201
    asset = response.json()
    row = await AssetRow.select(AssetRow.storage_key).where(AssetRow.id == uuid.UUID(asset["id"])).first()
    assert asset["original_name"] == "passwd.mp4"
    assert row["storage_key"].endswith(f"/video/{asset['id']}/original.mp4")
    assert ".." not in row["storage_key"]


async def test_missing_bad_and_revoked_keys_get_401_envelope(client, auth):
    assert_envelope(await client.get("/api/v1/assets"), 401, "unauthorized")
    assert_envelope(await client.get("/api/v1/assets", headers={"Authorization": "Bearer msk_nope"}), 401,
                    "unauthorized")
    assert_envelope(await client.get("/api/v1/assets", headers={"Authorization": "Basic abc"}), 401, "unauthorized")
    key, info = await create_api_key("revoked-tenant")
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/v1/assets", headers=headers)).status_code == 200
    assert await revoke_api_key(info.prefix) == 1
    assert_envelope(await client.get("/api/v1/assets", headers=headers), 401, "unauthorized")


async def test_another_tenants_asset_is_404(client, auth):
    asset = (await create(client, auth)).json()
    other_key, _ = await create_api_key(f"other-{uuid.uuid4().hex[:6]}")
    other = {"Authorization": f"Bearer {other_key}"}
    assert_envelope(await client.get(f"/api/v1/assets/{asset['id']}", headers=other), 404, "not_found")
    assert_envelope(await client.delete(f"/api/v1/assets/{asset['id']}", headers=other), 404, "not_found")
    assert (await client.get("/api/v1/assets", headers=other)).json()["items"] == []
    # and the owner still sees it: nothing was lost
    assert (await client.get(f"/api/v1/assets/{asset['id']}", headers=auth)).status_code == 200


async def test_validation_errors_use_the_envelope(client, auth):
    assert_envelope(await create(client, auth, profile="nope"), 422, "validation_failed")
    error = assert_envelope(await create(client, auth, original_name="virus.exe"), 415, "unsupported_media_type")
    assert error["details"]["allowed"] == ["mp4", "webm", "mov"]
    error = assert_envelope(await create(client, auth, size_bytes=600 * 1024 * 1024), 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 500 * 1024 * 1024
    assert_envelope(await create(client, auth, unknown_field=1), 422, "validation_failed")
    response = await client.post("/api/v1/assets", content=b"{not json", headers=auth | {
        "content-type": "application/json"})
    assert_envelope(response, 400, "bad_request")
    response = await client.post("/api/v1/assets", json={"profile": "avatar"}, headers=auth)
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] in ("bad_request", "validation_failed")
    assert_envelope(await client.get("/api/v1/assets/not-a-uuid", headers=auth), 404, "not_found")
    assert_envelope(await client.get("/api/v1/assets?limit=0", headers=auth), 422, "validation_failed")
    assert_envelope(await client.get("/api/v1/assets?cursor=%%%", headers=auth), 400, "bad_request")
    assert_envelope(await client.put("/api/v1/assets", headers=auth), 405, "method_not_allowed")


async def test_oversized_json_body_is_413(client, auth):
    big = {"profile": "avatar", "original_name": "a.png", "metadata": {"x": "y" * 2_000_000}}
    assert_envelope(await client.post("/api/v1/assets", json=big, headers=auth), 413, "payload_too_large")


async def test_cursor_pagination_is_stable_and_complete(client, auth):
    created = [(await create(client, auth, original_name=f"a{i}.mp4")).json()["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        url = "/api/v1/assets?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(created))


async def test_filters(client, auth):
    video = (await create(client, auth, owner="alice")).json()
    image = (await create(client, auth, profile="avatar", original_name="me.png", size_bytes=10)).json()
    by_kind = (await client.get("/api/v1/assets?kind=image", headers=auth)).json()["items"]
    assert [a["id"] for a in by_kind] == [image["id"]]
    by_owner = (await client.get("/api/v1/assets?owner=alice", headers=auth)).json()["items"]
    assert [a["id"] for a in by_owner] == [video["id"]]
    by_profile = (await client.get("/api/v1/assets?profile=avatar", headers=auth)).json()["items"]
    assert [a["id"] for a in by_profile] == [image["id"]]
    future = (await client.get("/api/v1/assets?created_after=2999-01-01T00:00:00Z", headers=auth)).json()
    assert future["items"] == []


async def test_delete_is_soft_and_writes_media_deleted_to_the_outbox(client, auth):
    asset = (await create(client, auth)).json()
    response = await client.delete(f"/api/v1/assets/{asset['id']}", headers=auth)
    assert response.status_code == 202
    assert response.json()["status"] == "deleted"
    assert response.json()["deleted_at"]
    assert_envelope(await client.get(f"/api/v1/assets/{asset['id']}", headers=auth), 404, "not_found")
    deleted = (await client.get("/api/v1/assets?status=deleted", headers=auth)).json()["items"]
    assert [a["id"] for a in deleted] == [asset["id"]]
    events = await EventRow.select().where(EventRow.type == "media.deleted").output(load_json=True)
    assert any(e["payload"]["asset_id"] == asset["id"] for e in events)
