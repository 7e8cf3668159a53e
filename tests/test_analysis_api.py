"""The analysis API end to end (plugins/analysis): uploads and stored assets, errors in the one envelope, the
``analyze`` step in a profile (results stored, flagged for review, events), batch jobs, attributes, near-duplicate
search and the asset-page panel. One app (worker inside) for the module: models load once."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from mediasvc_analysis_labels.model_files import SPEC
from mediasvc.app import create_app
from mediasvc.auth import create_api_key, get_or_create_tenant
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.settings import load_settings
from mediasvc.tables import Asset, ProcessingJob
from mediasvc.tables import Event as EventRow
from tests.analysis_media import encode, photo, shapes_image, text_image
from tests.conftest import REDIS_URL, serve_in_process
from tests.dashboard_helpers import make_operator, sign_in

THRESHOLD = 0.02  # the astronaut scores ~0.03 on open_nsfw, the cat ~0.0001: one flagged, one not
PRODUCT_PROFILE = {"kind": "image", "formats": ["png", "jpg"], "max_bytes": 5_000_000, "bucket": "products",
                   "steps": ["analyze"]}
PLAIN_PROFILE = {**PRODUCT_PROFILE, "steps": []}  # stored, no processing: analysed through the API only


def analysis_app_settings(database_url: str, tmp: Path, models_dir: Path, **analysis: Any):
    return load_settings(env={}, **{
        "database_url": database_url, "queue.url": REDIS_URL, "queue.name": f"analysis-{uuid.uuid4().hex[:8]}",
        "data_dir": str(tmp), "models_dir": str(models_dir), "secret_key": "k", "run_worker_in_app": True,
        "profiles.product_image": PRODUCT_PROFILE, "profiles.plain_image": PLAIN_PROFILE,
        "plugins.analysis": {"moderation_threshold": THRESHOLD, "max_upload_bytes": 2_000_000,
                             "max_pixels": 4_000_000, **analysis},
    })


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    SPEC.install(load_settings(env={}, models_dir=str(folder)))
    return folder


@pytest.fixture(scope="module")
async def env(database_url: str, models_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(analysis_app_settings(database_url, tmp_path_factory.mktemp("data"), models_dir))
    async with serve_in_process(app) as http:
        slug = f"an-{uuid.uuid4().hex[:8]}"
        key, _ = await create_api_key(slug)
        other_key, _ = await create_api_key(f"an-other-{uuid.uuid4().hex[:6]}")
        yield {"app": app, "http": http, "slug": slug, "auth": {"Authorization": f"Bearer {key}"},
               "other": {"Authorization": f"Bearer {other_key}"}}


async def upload(env, data: bytes, *, path: str = "/api/v1/analyze-image", name: str = "x.png",
                 **fields: Any) -> httpx.Response:
    return await env["http"].post(path, headers=env["auth"], files={"file": (name, data, "image/png")},
                                  data={k: str(v) for k, v in fields.items()})


async def store_asset(env, data: bytes, *, profile: str = "plain_image", ext: str = "png") -> uuid.UUID:
    services = env["app"].state.services
    tenant = await get_or_create_tenant(env["slug"])
    asset_id, key = reserve_key(env["slug"], services.settings.profiles[profile], ext)
    await services.storage.put(key, data)
    return await create_uploaded_asset(
        services, asset_id=asset_id, tenant_id=tenant, profile_name=profile, original_name=f"{asset_id}.{ext}",
        storage_key=key, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
        content_type=f"image/{ext}", method="test")


async def wait_for(check, seconds: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and error["request_id"]
    return error


# --- uploads -------------------------------------------------------------------------------------------------


async def test_upload_finds_labels_faces_and_scores_moderation(env):
    response = await upload(env, encode(photo("astronaut")), analysis_types="labels,faces,moderation",
                            max_labels=3)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["analysis_types"] == ["labels", "faces", "moderation"]
    assert (body["width"], body["height"]) == (512, 512)
    assert len(body["labels"]) == 3 and all(set(label) == {"name", "confidence", "parents"} for label in body["labels"])
    [face] = body["faces"]
    assert 150 <= face["box"]["x"] <= 210 and face["confidence"] > 0.5
    moderation = body["moderation"]
    assert moderation["scores"]["nsfw"] < 0.2 and moderation["threshold"] == THRESHOLD
    assert moderation["flagged"] is (moderation["scores"]["nsfw"] >= THRESHOLD)
    assert body["processing_time_ms"] > 0 and set(body["timings_ms"]) == {"labels", "faces", "moderation"}
    assert body["models"]["labels"] == "efficientnet-lite0" and body["phash"] is None  # uploads are not stored

    cat = (await upload(env, encode(photo("chelsea"), "JPEG", quality=90), name="cat.jpg",
                        analysis_types="labels")).json()
    assert cat["labels"][0]["name"] in {"tabby", "tiger cat", "Egyptian cat"}
    assert "cat" in cat["labels"][0]["parents"]


async def test_upload_reads_text_with_boxes_in_original_pixels(env, monkeypatch):
    big = text_image("SUMMER SALE 50%", size=(3000, 800))  # larger than analysis_side: boxes scaled back
    services = env["app"].state.services
    monkeypatch.setattr(services.host.plugin_settings["analysis"], "analysis_side", 1000)
    body = (await upload(env, encode(big), analysis_types="text")).json()
    assert "".join(t["text"] for t in body["text"]).replace(" ", "") == "SUMMERSALE50%"
    first = body["text"][0]
    assert first["confidence"] > 0.9 and (body["width"], body["height"]) == (3000, 800)
    assert 20 <= first["box"]["x"] <= 120 and first["box"]["width"] > 300  # in the 3000-pixel original's scale


async def test_unknown_or_uninstalled_types_are_422_naming_the_installed_ones(env):
    for types, word in (("labels,colour", "unknown"), ("objects", "not installed")):
        error = assert_envelope(await upload(env, encode(shapes_image()), analysis_types=types), 422,
                                "validation_failed")
        assert word in error["message"]
        assert error["details"]["installed"] == ["faces", "labels", "moderation", "text"]


async def test_bad_inputs_get_clear_errors_never_a_500(env):
    png = encode(shapes_image())
    http, auth = env["http"], env["auth"]
    cases = [
        (await upload(env, png[:200]), 422, "validation_failed"),  # truncated
        (await upload(env, b"%PDF-1.4 not an image at all"), 415, "unsupported_media_type"),
        (await upload(env, encode(Image.new("RGB", (2100, 2100)), "JPEG")), 413, "payload_too_large"),  # pixels
        (await upload(env, b"\0" * 2_100_000), 413, "payload_too_large"),  # bytes
        (await upload(env, png, max_labels="lots"), 422, "validation_failed"),
        (await upload(env, png, min_confidence="2"), 422, "validation_failed"),
        (await http.post("/api/v1/analyze-image", headers=auth, data={"analysis_types": "labels"},
                         files={"other": ("x", b"1")}), 422, "validation_failed"),
        (await http.post("/api/v1/analyze-image", headers={**auth, "content-type": "application/json"},
                         content=b"{not json"), 400, "bad_request"),
        (await http.post("/api/v1/analyze-image", json={"asset_id": str(uuid.uuid4())}, headers=auth), 404,
         "not_found"),
        (await http.post("/api/v1/analyze-image", files={"file": ("x.png", png)}), 401, "unauthorized"),
    ]
    for response, status, code in cases:
        assert_envelope(response, status, code)


async def test_missing_model_is_a_503_naming_the_install_command(database_url, tmp_path):
    app = create_app(analysis_app_settings(database_url, tmp_path, tmp_path / "no-models"))
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"an-{uuid.uuid4().hex[:8]}")
        response = await http.post("/api/v1/analyze-image", headers={"Authorization": f"Bearer {key}"},
                                   files={"file": ("x.png", encode(shapes_image()))},
                                   data={"analysis_types": "labels"})
    error = assert_envelope(response, 503, "model_missing")
    assert "mediasvc models install labels-efficientnet-lite0" in error["message"]


# --- stored assets -------------------------------------------------------------------------------------------


async def test_analyze_step_stores_results_flags_for_review_and_emits_events(env):
    flagged_id = await store_asset(env, encode(photo("astronaut")), profile="product_image")
    clean_id = await store_asset(env, encode(photo("chelsea")), profile="product_image")
    corrupt_id = await store_asset(env, encode(shapes_image())[:300], profile="product_image")

    async def both_done():
        rows = [await Asset.select().where(Asset.id == i).output(load_json=True).first()
                for i in (flagged_id, clean_id)]
        return rows if all(r["status"] in ("ready", "failed") for r in rows) else None

    flagged, clean = await wait_for(both_done)

    async def corrupt_done():
        row = await Asset.select().where(Asset.id == corrupt_id).first()
        return row if row["status"] in ("ready", "failed") else None

    corrupt = await wait_for(corrupt_done)
    assert corrupt["status"] == "failed" and "analyze: The image could not be decoded" in corrupt["error"]
    jobs = await ProcessingJob.select(ProcessingJob.attempts).where(ProcessingJob.asset == corrupt_id)
    assert [j["attempts"] for j in jobs] == [1]  # permanent: no retry loop
    assert flagged["status"] == clean["status"] == "ready", (flagged["error"], clean["error"])  # not changed
    assert flagged["metadata"]["analysis"]["flagged"] is True and clean["metadata"]["analysis"]["flagged"] is False
    assert clean["metadata"]["analysis"]["labels"][0]["name"] in {"tabby", "tiger cat", "Egyptian cat"}

    stored = (await env["http"].get(f"/api/v1/assets/{flagged_id}/analysis", headers=env["auth"])).json()
    assert stored["asset_id"] == str(flagged_id) and len(stored["faces"]) == 1 and len(stored["phash"]) == 16
    assert stored["analysis_types"] == ["labels", "text", "faces", "moderation"]
    events = await EventRow.select(EventRow.type, EventRow.payload).where(
        EventRow.type.is_in(["image.analyzed", "asset.flagged"])).output(load_json=True)
    mine = [(e["type"], e["payload"]["asset_id"]) for e in events
            if e["payload"]["asset_id"] in (str(flagged_id), str(clean_id))]
    assert sorted(mine) == sorted([("image.analyzed", str(flagged_id)), ("image.analyzed", str(clean_id)),
                                   ("asset.flagged", str(flagged_id))])
    other = await env["http"].get(f"/api/v1/assets/{flagged_id}/analysis", headers=env["other"])
    assert_envelope(other, 404, "not_found")


async def test_similar_finds_a_resized_recompressed_copy_not_an_unrelated_image(env):
    original = photo("coffee")
    copy = original.resize((original.width // 2, original.height // 2), Image.Resampling.BILINEAR)
    ids = {name: await store_asset(env, data, ext=ext) for name, data, ext in (
        ("original", encode(original), "png"), ("copy", encode(copy, "JPEG", quality=60), "jpg"),
        ("unrelated", encode(photo("rocket")), "png"))}
    for asset_id in ids.values():
        response = await env["http"].post("/api/v1/analyze-image", headers=env["auth"],
                                          json={"asset_id": str(asset_id), "analysis_types": ["moderation"]})
        assert response.status_code == 200, response.text
    response = await env["http"].get(f"/api/v1/assets/{ids['original']}/similar", headers=env["auth"])
    assert response.status_code == 200, response.text
    found = {item["asset_id"]: item["distance"] for item in response.json()["items"]}
    assert str(ids["copy"]) in found and found[str(ids["copy"])] <= 6
    assert str(ids["unrelated"]) not in found
    strict = await env["http"].get(f"/api/v1/assets/{ids['original']}/similar", params={"max_distance": 0},
                                   headers=env["auth"])
    assert all(item["distance"] == 0 for item in strict.json()["items"])
    assert_envelope(await env["http"].get(f"/api/v1/assets/{ids['original']}/similar", headers=env["other"]),
                    404, "not_found")


async def test_batch_queues_one_job_per_asset_and_results_are_stored(env):
    ids = [await store_asset(env, encode(img)) for img in (photo("rocket"), shapes_image())]
    response = await env["http"].post("/api/v1/analyze-image/batch", headers=env["auth"], json={
        "asset_ids": [str(i) for i in ids], "analysis_types": ["labels", "moderation"]})
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert [j["asset_id"] for j in jobs] == [str(i) for i in ids] and all(j["job_id"] for j in jobs)

    async def stored():
        got = [await env["http"].get(f"/api/v1/assets/{i}/analysis", headers=env["auth"]) for i in ids]
        return [r.json() for r in got] if all(r.status_code == 200 for r in got) else None

    results = await wait_for(stored)
    assert results, "batch jobs did not store results"
    assert results[0]["labels"][0]["name"] in {"missile", "projectile", "space shuttle"}
    too_many = await env["http"].post("/api/v1/analyze-image/batch", headers=env["auth"],
                                      json={"asset_ids": [str(uuid.uuid4()) for _ in range(101)]})
    assert_envelope(too_many, 422, "validation_failed")


async def test_extract_attributes_gives_colours_text_labels_and_size(env):
    product = Image.new("RGB", (800, 400), "white")
    draw = ImageDraw.Draw(product)
    draw.rectangle((0, 0, 480, 400), fill="#c81e1e")
    draw.text((530, 160), "ACME", fill="black", font=ImageFont.load_default(size=72))
    response = await upload(env, encode(product), path="/api/v1/extract-attributes")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"], body["orientation"]) == (800, 400, "landscape")
    top = body["dominant_colors"][0]
    assert top["name"] == "red" and top["hex"].startswith("#c") and 0.5 < top["fraction"] < 0.7
    assert "white" in [c["name"] for c in body["dominant_colors"]]
    assert body["text"] == ["ACME"] and body["labels"] and body["analysis_types"] == ["labels", "text"]


async def test_stored_asset_errors_and_attributes_by_asset_id(env):
    pending = Asset(tenant=await get_or_create_tenant(env["slug"]), profile="question_image", kind="image",
                    original_name="later.png", status="pending", storage_key=f"{env['slug']}/image/x/original.png")
    await pending.save()
    response = await env["http"].post("/api/v1/analyze-image", headers=env["auth"], json={"asset_id": str(pending.id)})
    assert_envelope(response, 409, "conflict")
    asset_id = await store_asset(env, encode(shapes_image()))
    body = (await env["http"].post("/api/v1/extract-attributes", headers=env["auth"],
                                   json={"asset_id": str(asset_id)})).json()
    assert body["asset_id"] == str(asset_id) and (body["width"], body["height"]) == (640, 480)
    assert {"red", "blue", "green"} <= {c["name"] for c in body["dominant_colors"]}
    assert body["dominant_colors"][0]["name"] in ("white", "silver")  # the light background
    other = await env["http"].post("/api/v1/extract-attributes", headers=env["other"],
                                   json={"asset_id": str(asset_id)})
    assert_envelope(other, 404, "not_found")


async def test_asset_page_shows_the_analysis_panel(env):
    asset_id = await store_asset(env, encode(photo("coffee")), profile="product_image")

    async def done():
        row = await Asset.select(Asset.status).where(Asset.id == asset_id).first()
        return row["status"] in ("ready", "failed")

    assert await wait_for(done)
    await sign_in(env["http"], await make_operator("viewer"))
    page = await env["http"].get(f"/dashboard/assets/{asset_id}")
    assert page.status_code == 200
    assert "Image analysis" in page.text and "espresso" in page.text and "Moderation" in page.text
