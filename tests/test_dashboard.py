"""Dashboard: sign-in, CSRF, roles, tenant scope, pages and their htmx fragments (httpx against the real app)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from mediasvc.app import create_app
from mediasvc.contracts import MenuLink, Panel
from mediasvc.hookspecs import hookimpl
from mediasvc.tables import Asset, Event, EventDelivery, OperatorSession, ProcessingJob
from tests.conftest import run_cli, serve_in_process
from tests.dashboard_helpers import PASSWORD, add_job, make_asset, make_operator, sign_in


class SlowStep:
    name = "slow"
    kinds = frozenset({"video"})
    timeout_seconds = 60

    async def run(self, ctx):
        for percent in range(0, 101, 10):
            await ctx.progress(percent)
            await asyncio.sleep(0.3)
        return []


class DashPlugin:
    @hookimpl
    def register_processors(self, settings):
        return [SlowStep()]

    @hookimpl
    def dashboard_panels(self, request):
        return [Panel(title="Live attendance", template="attendance_panel.html", order=5,
                      context={"meetings": [("Weekly sync", 12), ("Interview #42", 3)]}),
                Panel(title="Broken panel", template="no_such_panel.html", order=200)]

    @hookimpl
    def menu_links(self, request):
        return [MenuLink(label="Live attendance", href="/lti/attendance")]


PROFILES = {"video_response": {"kind": "video", "formats": ["mp4"], "max_bytes": 10_000_000, "bucket": "media",
                               "steps": ["slow"]}}


@pytest.fixture
async def dash(make_settings):
    app = create_app(make_settings(profiles=PROFILES), extra_plugins=[DashPlugin()])
    async with serve_in_process(app) as http:
        yield http


def fragment_only(text: str) -> bool:
    return "<html" not in text and "<body" not in text and "topbar" not in text


# --- sign-in -------------------------------------------------------------------------------------------------


async def test_pages_redirect_to_login_and_htmx_gets_hx_redirect(dash: httpx.AsyncClient):
    for path in ("/dashboard", "/dashboard/assets", "/dashboard/events", "/dashboard/plugins"):
        response = await dash.get(path + "?x=1")
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/dashboard/login?next={path}%3Fx%3D1"
    htmx = await dash.get("/dashboard/queue/depth", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/dashboard/login")
    api = await dash.get("/api/v1/assets")  # the API keeps its own auth and JSON errors
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"


async def test_wrong_password_is_refused_without_a_session(dash: httpx.AsyncClient):
    email = await make_operator("admin")
    form = await dash.get("/dashboard/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', form.text).group(1)
    response = await dash.post("/dashboard/login", data={"email": email, "password": "wrong password!",
                                                         "_csrf": token})
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert "mediasvc_session" not in response.cookies
    token = re.search(r'name="_csrf" value="([^"]+)"', response.text).group(1)  # the re-shown form has a new one
    unknown = await dash.post("/dashboard/login", data={"email": "nobody@example.com", "password": PASSWORD,
                                                        "_csrf": token})
    assert unknown.status_code == 401
    assert (await dash.get("/dashboard")).status_code == 303


async def test_login_needs_its_csrf_token_and_never_redirects_off_site(dash: httpx.AsyncClient):
    email = await make_operator("viewer")
    await dash.get("/dashboard/login")
    refused = await dash.post("/dashboard/login", data={"email": email, "password": PASSWORD})
    assert refused.status_code == 403
    form = await dash.get("/dashboard/login")
    token = re.search(r'name="_csrf" value="([^"]+)"', form.text).group(1)
    ok = await dash.post("/dashboard/login", data={"email": email, "password": PASSWORD, "_csrf": token,
                                                   "next": "//evil.example/steal"})
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/dashboard" in cookie


async def test_logout_ends_the_session_on_the_server(dash: httpx.AsyncClient):
    email = await make_operator("viewer")
    csrf = await sign_in(dash, email)
    stolen = dash.cookies.get("mediasvc_session")
    assert await OperatorSession.count().where(OperatorSession.operator.email == email) == 1
    response = await dash.post("/dashboard/logout", data={"_csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    assert await OperatorSession.count().where(OperatorSession.operator.email == email) == 0
    replay = await dash.get("/dashboard", cookies={"mediasvc_session": stolen})
    assert replay.status_code == 303


# --- CSRF and roles ------------------------------------------------------------------------------------------


async def test_unsafe_requests_without_the_csrf_token_are_refused(dash: httpx.AsyncClient):
    await sign_in(dash, await make_operator("admin"))
    asset = await make_asset(status="ready")
    for headers, data in (({}, {}), ({"X-CSRF-Token": "forged"}, {}), ({}, {"_csrf": "forged"}), ({}, {"_csrf": "é"})):
        response = await dash.post(f"/dashboard/assets/{asset['id']}/reprocess", headers=headers, data=data)
        assert response.status_code == 403
    assert await ProcessingJob.count().where(ProcessingJob.asset == asset["id"]) == 0


async def test_viewer_cannot_reprocess_delete_or_redeliver(dash: httpx.AsyncClient):
    csrf = await sign_in(dash, await make_operator("viewer"))
    asset = await make_asset(status="ready")
    page = await dash.get(f"/dashboard/assets/{asset['id']}")
    assert page.status_code == 200 and 'id="reprocess"' not in page.text  # no admin buttons shown
    for action in ("reprocess", "delete"):
        response = await dash.post(f"/dashboard/assets/{asset['id']}/{action}", headers={"X-CSRF-Token": csrf})
        assert response.status_code == 403, action
    htmx = await dash.post(f"/dashboard/assets/{asset['id']}/reprocess",
                           headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert htmx.status_code == 403 and htmx.headers["HX-Retarget"] == "#toasts" and "admins" in htmx.text
    assert await ProcessingJob.count().where(ProcessingJob.asset == asset["id"]) == 0
    assert (await Asset.select(Asset.status).where(Asset.id == asset["id"]).first())["status"] == "ready"


async def test_admin_reprocess_schedules_the_steps_and_returns_the_live_fragment(dash: httpx.AsyncClient):
    csrf = await sign_in(dash, await make_operator("admin"))
    asset = await make_asset(status="ready")
    page = await dash.get(f"/dashboard/assets/{asset['id']}")
    assert 'id="reprocess"' in page.text
    response = await dash.post(f"/dashboard/assets/{asset['id']}/reprocess",
                               headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert response.status_code == 200 and fragment_only(response.text)
    assert response.text.lstrip().startswith('<section id="asset-processing"')
    assert 'hx-trigger="every 2s"' in response.text  # it polls until the new run is done
    jobs = await ProcessingJob.select().where(ProcessingJob.asset == asset["id"])
    assert [(j["step"], j["status"]) for j in jobs] == [("slow", "queued")]
    again = await dash.post(f"/dashboard/assets/{asset['id']}/reprocess", data={"_csrf": csrf})
    assert again.status_code == 409  # a run is active: refused, not doubled
    assert await ProcessingJob.count().where(ProcessingJob.asset == asset["id"]) == 1


async def test_admin_delete_soft_deletes_with_an_event(dash: httpx.AsyncClient):
    csrf = await sign_in(dash, await make_operator("admin"))
    asset = await make_asset(status="ready")
    response = await dash.post(f"/dashboard/assets/{asset['id']}/delete", data={"_csrf": csrf})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/assets"
    assert (await Asset.select(Asset.status).where(Asset.id == asset["id"]).first())["status"] == "deleted"
    events = await Event.raw("SELECT type FROM events WHERE payload->>'asset_id' = {}", str(asset["id"]))
    assert [e["type"] for e in events] == ["media.deleted"]


# --- fragments and live progress -----------------------------------------------------------------------------


async def test_asset_page_and_its_fragment_share_the_partial_and_polling_stops_when_done(dash: httpx.AsyncClient):
    await sign_in(dash, await make_operator("viewer"))
    asset = await make_asset(status="processing")
    job_id = await add_job(asset["id"], progress=40.0)
    url = f"/dashboard/assets/{asset['id']}"
    full = await dash.get(url)
    assert full.text.lstrip().lower().startswith("<!doctype html>") and 'id="asset-processing"' in full.text
    fragment = await dash.get(url, headers={"HX-Request": "true"})
    assert fragment_only(fragment.text) and fragment.text.lstrip().startswith('<section id="asset-processing"')
    assert 'hx-trigger="every 2s"' in fragment.text and 'aria-valuenow="40.0"' in fragment.text
    await ProcessingJob.update({ProcessingJob.status: "succeeded", ProcessingJob.progress: 100.0}).where(
        ProcessingJob.id == job_id)
    await Asset.update({Asset.status: "ready"}).where(Asset.id == asset["id"])
    done = await dash.get(url, headers={"HX-Request": "true"})
    assert "hx-trigger" not in done.text and "hx-get" not in done.text
    assert 'aria-valuenow="100.0"' in done.text and "badge-ready" in done.text


async def test_list_progress_cell_polls_only_while_busy(dash: httpx.AsyncClient):
    await sign_in(dash, await make_operator("viewer"))
    asset = await make_asset(status="processing")
    await add_job(asset["id"], progress=25.0)
    cell = await dash.get(f"/dashboard/assets/{asset['id']}/progress", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in cell.text and 'aria-valuenow="25.0"' in cell.text
    await Asset.update({Asset.status: "failed"}).where(Asset.id == asset["id"])
    cell = await dash.get(f"/dashboard/assets/{asset['id']}/progress", headers={"HX-Request": "true"})
    assert "hx-trigger" not in cell.text and "badge-failed" in cell.text


async def test_asset_list_search_filters_and_cursor_pages(dash: httpx.AsyncClient):
    tenant = f"list-{uuid.uuid4().hex[:6]}"
    await sign_in(dash, await make_operator("viewer", tenant=tenant))
    for i in range(55):
        await make_asset(tenant, name=f"clip-{i:03d}.mp4", status="ready" if i % 5 else "failed")
    first = await dash.get("/dashboard/assets")
    names = re.findall(r">(clip-\d{3})\.mp4<", first.text)
    assert len(names) == 50 and names[0] == "clip-054"
    next_url = re.search(r'href="(/dashboard/assets\?[^"]*cursor=[^"]+)"', first.text).group(1)
    second = await dash.get(next_url.replace("&amp;", "&"))
    assert re.findall(r">(clip-\d{3})\.mp4<", second.text) == [f"clip-{i:03d}" for i in range(4, -1, -1)]
    search = await dash.get("/dashboard/assets", params={"q": "clip-01"}, headers={"HX-Request": "true"})
    assert fragment_only(search.text) and search.text.lstrip().startswith('<div id="asset-table"')
    assert sorted(re.findall(r">(clip-\d{3})\.mp4<", search.text)) == [f"clip-{i:03d}" for i in range(10, 20)]
    failed = await dash.get("/dashboard/assets", params={"status": "failed"})
    assert len(re.findall(r">clip-\d{3}\.mp4<", failed.text)) == 11
    for path, param in (("/dashboard/assets", "q"), ("/dashboard/sessions", "q"), ("/dashboard/events", "type")):
        refused = await dash.get(path, params={param: "clip\x00"})  # PostgreSQL refuses NUL: a 422, never a 500
        assert refused.status_code == 422, (path, refused.status_code)


async def test_tenant_scoped_operator_sees_only_its_tenant(dash: httpx.AsyncClient):
    mine, other = f"mine-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"
    await sign_in(dash, await make_operator("admin", tenant=mine))
    own = await make_asset(mine, name="own.mp4")
    foreign = await make_asset(other, name="foreign.mp4")
    listing = await dash.get("/dashboard/assets")
    assert "own.mp4" in listing.text and "foreign.mp4" not in listing.text
    assert (await dash.get(f"/dashboard/assets/{own['id']}")).status_code == 200
    assert (await dash.get(f"/dashboard/assets/{foreign['id']}")).status_code == 404


# --- other pages ---------------------------------------------------------------------------------------------


async def test_overview_shows_counts_queue_panels_and_menu_links(dash: httpx.AsyncClient):
    tenant = f"ov-{uuid.uuid4().hex[:6]}"
    await make_asset(tenant, status="ready")
    await make_asset(tenant, status="failed", name="broken.mp4")
    await Asset.update({Asset.error: "probe: not a video"}).where(Asset.original_name == "broken.mp4")
    await sign_in(dash, await make_operator("viewer", tenant=tenant))  # counts are cached for a few seconds
    page = await dash.get("/dashboard")
    assert page.status_code == 200
    assert re.search(r'<span class="value">2</span><span class="label">assets</span>', page.text)
    assert "broken.mp4" in page.text and "probe: not a video" in page.text
    assert 'data-queue="workers"' in page.text
    assert "Interview #42" in page.text  # a plugin panel, from the plugin's templates/ folder
    assert "Broken panel" in page.text and "could not be shown" in page.text  # a broken panel is contained
    assert 'href="/lti/attendance"' in page.text
    stats = await dash.get("/dashboard", headers={"HX-Request": "true"})
    assert fragment_only(stats.text) and stats.text.lstrip().startswith('<section id="overview-stats"')
    depth = await dash.get("/dashboard/queue/depth", headers={"HX-Request": "true"})
    assert fragment_only(depth.text) and 'hx-trigger="every 2s"' in depth.text


async def test_session_chunk_strip_shows_received_missing_and_inconsistent(dash: httpx.AsyncClient):
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.tables import Chunk, RecordingSession

    tenant = f"sess-{uuid.uuid4().hex[:6]}"
    await sign_in(dash, await make_operator("viewer", tenant=tenant))
    session = RecordingSession(tenant=await get_or_create_tenant(tenant), interview_id="int-1", expected_chunks=6)
    await session.save()
    for index, duration in ((0, 5.0), (1, 5.0), (3, 0.0), (5, 5.0)):
        await Chunk(session=session.id, sequence_index=index, storage_key=f"k/{index}", sha256="x" * 64,
                    size_bytes=100, duration_seconds=duration).save()
    page = await dash.get(f"/dashboard/sessions/{session.id}")
    states = dict(re.findall(r'data-index="(\d+)" data-state="(\w+)"', page.text))
    assert states == {"0": "received", "1": "received", "2": "missing", "3": "inconsistent", "4": "missing",
                      "5": "received"}
    assert 'hx-trigger="every 2s"' in page.text  # the session is active: the strip keeps itself current
    listing = await dash.get("/dashboard/sessions")
    assert "2 missing" in listing.text
    await Chunk(session=session.id, sequence_index=2, storage_key="k/2", sha256="x" * 64, size_bytes=100,
                duration_seconds=5.0).save()
    await RecordingSession.update({RecordingSession.status: "completed"}).where(RecordingSession.id == session.id)
    strip = await dash.get(f"/dashboard/sessions/{session.id}", headers={"HX-Request": "true"})
    assert fragment_only(strip.text) and 'data-index="2" data-state="received"' in strip.text
    assert "hx-trigger" not in strip.text


async def test_failed_session_page_shows_status_and_reason(dash: httpx.AsyncClient):
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.tables import RecordingSession

    tenant = f"fail-{uuid.uuid4().hex[:6]}"
    await sign_in(dash, await make_operator("viewer", tenant=tenant))
    session = RecordingSession(tenant=await get_or_create_tenant(tenant), status="failed", mode="stream",
                               join_state="failed", error="the stream holds no audio or video packets")
    await session.save()
    page = await dash.get(f"/dashboard/sessions/{session.id}")
    assert page.status_code == 200
    assert '<p class="session-error">the stream holds no audio or video packets</p>' in page.text
    assert "<dd>stream</dd>" in page.text and "failed" in page.text


async def test_events_page_and_admin_redelivery(dash: httpx.AsyncClient):
    from mediasvc.auth import get_or_create_tenant

    tenant = f"ev-{uuid.uuid4().hex[:6]}"
    tenant_id = await get_or_create_tenant(tenant)
    event = Event(tenant=tenant_id, type="media.processed", payload={"asset_id": "x"})
    await event.save()
    delivery = EventDelivery(event=event.id, sink="webhook:billing", status="failed", attempts=7,
                             last_error="HTTP 500 from receiver", next_attempt_at=None)
    await delivery.save()
    viewer = httpx.AsyncClient(transport=dash._transport, base_url="http://testserver")
    viewer_csrf = await sign_in(viewer, await make_operator("viewer", tenant=tenant))
    page = await viewer.get("/dashboard/events")
    assert "webhook:billing" in page.text and "HTTP 500 from receiver" in page.text and "Redeliver" not in page.text
    # the type filter: the core's types and those plugins declare (register_event_types)
    assert all(f"<option>{t}</option>" in page.text for t in ("media.processed", "rendition.ready"))
    url = f"/dashboard/events/deliveries/{delivery.id}/redeliver"
    assert (await viewer.post(url, headers={"X-CSRF-Token": viewer_csrf})).status_code == 403
    csrf = await sign_in(dash, await make_operator("admin", tenant=tenant))
    response = await dash.post(url, headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert response.status_code == 200 and response.text.lstrip().startswith(f'<tr id="delivery-{delivery.id}"')
    row = await EventDelivery.raw("SELECT status, next_attempt_at <= now() AS due FROM event_deliveries "
                                  "WHERE id = {}", delivery.id)
    assert row[0]["status"] == "pending" and row[0]["due"]
    other = await dash.post(f"/dashboard/events/deliveries/{uuid.uuid4()}/redeliver", data={"_csrf": csrf})
    assert other.status_code == 404
    await viewer.aclose()


async def test_plugins_and_queue_pages(dash: httpx.AsyncClient):
    await sign_in(dash, await make_operator("admin"))
    plugins = await dash.get("/dashboard/plugins")
    assert "mediasvc_storage" in plugins.text or "storage" in plugins.text
    assert "register_processors" in plugins.text and ">slow<" in plugins.text
    queue = await dash.get("/dashboard/queue")
    assert queue.status_code == 200 and "Active and waiting jobs" in queue.text


async def test_cli_operator_create_then_sign_in(dash: httpx.AsyncClient, database_url: str):
    email = f"cli-{uuid.uuid4().hex[:6]}@example.com"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | {
        "MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_SECRET_KEY": "k" * 32}

    def create(password: str) -> subprocess.CompletedProcess[str]:  # the real command, password on stdin
        return subprocess.run([sys.executable, "-m", "mediasvc.cli", "operator", "create", "--email", email,
                               "--role", "admin", "--password-stdin"], input=password + "\n", env=env, check=False,
                              capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)

    result = await asyncio.to_thread(create, "long enough pw")
    assert result.returncode == 0, result.stderr
    assert f"created admin {email}" in result.stderr
    duplicate = await asyncio.to_thread(create, "long enough pw")
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    assert run_cli("operator", "create", "--help").returncode == 0
    await sign_in(dash, email, "long enough pw")


async def test_admin_aborts_a_queued_job_and_tenant_scoped_admins_cannot(dash: httpx.AsyncClient):
    queue = dash._transport.app.state.services.queue
    key = f"dash-{uuid.uuid4().hex[:8]}"
    await queue.enqueue("dash.noop", key=key, timeout=30)
    scoped = httpx.AsyncClient(transport=dash._transport, base_url="http://testserver")
    scoped_csrf = await sign_in(scoped, await make_operator("admin", tenant=f"q-{uuid.uuid4().hex[:6]}"))
    refused = await scoped.post(f"/dashboard/queue/jobs/{key}/abort", data={"_csrf": scoped_csrf})
    assert refused.status_code == 403
    await scoped.aclose()
    csrf = await sign_in(dash, await make_operator("admin"))
    page = await dash.get("/dashboard/queue")
    assert key in page.text and f"/dashboard/queue/jobs/{key}/abort" in page.text
    response = await dash.post(f"/dashboard/queue/jobs/{key}/abort", data={"_csrf": csrf})
    assert response.status_code == 303
    job = await queue.job(key)
    assert getattr(job.status, "value", job.status) == "aborted"
    missing = await dash.post("/dashboard/queue/jobs/no-such-job/retry", data={"_csrf": csrf})
    assert missing.status_code == 404


async def test_full_scans_are_served_stale_while_one_background_task_recomputes():
    import asyncio

    from mediasvc.dashboard.queries import cached_scan

    calls: list[int] = []
    release = asyncio.Event()

    async def compute() -> int:
        calls.append(len(calls))
        if len(calls) > 1:
            await release.wait()
        return len(calls)

    cache: dict = {}
    assert await cached_scan(cache, "k", 0.0, compute) == 1  # an empty cache waits for the first computation
    assert await cached_scan(cache, "k", 0.0, compute) == 1  # stale: served at once, a refresh starts
    await asyncio.sleep(0)  # the refresh task starts and waits
    assert await cached_scan(cache, "k", 0.0, compute) == 1  # still refreshing: no second refresh
    await asyncio.sleep(0)
    assert len(calls) == 2
    release.set()
    await asyncio.gather(*cache["tasks"])
    assert await cached_scan(cache, "k", 60.0, compute) == 2 and len(calls) == 2  # fresh: no work at all
