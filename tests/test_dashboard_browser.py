"""The dashboard in a real browser: Playwright driving Debian Chromium against the app served by Granian.

Signs in, opens every page, watches a progress bar move to done while a real job runs in the in-app worker, clicks
Reprocess as admin, sees a session's gap strip fill in when the missing chunk arrives, and checks that a viewer is
refused (403) when it tries an admin action. Screenshots go to $MEDIASVC_SCREENSHOTS (default: a temp dir).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import socket
import uuid
from pathlib import Path

import pytest

from mediasvc.app import create_app
from mediasvc.processing import schedule_processing
from mediasvc.tables import Chunk, ProcessingJob, RecordingSession
from tests.dashboard_helpers import PASSWORD, make_asset, make_operator
from tests.test_dashboard import PROFILES, DashPlugin

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"),
    pytest.mark.timeout(180),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def serve_with_granian(app) -> AsyncIterator[str]:
    """The app under Granian (embedded, in this event loop) on a free port; yields its base URL."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    port = free_port()
    server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False)
    task = asyncio.create_task(server.serve())
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # lifespan: database pool and worker
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        await asyncio.wait_for(task, 15)


@pytest.fixture
async def served(make_settings):
    """The real app under Granian with the SAQ worker running inside it."""
    settings = make_settings(profiles=PROFILES, run_worker_in_app=True,
                             **{"queue.name": f"browser-{uuid.uuid4().hex[:8]}"})
    app = create_app(settings, extra_plugins=[DashPlugin()])
    async with serve_with_granian(app) as base:
        yield base, app.state.services


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MEDIASVC_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def sign_in(page, base: str, email: str) -> None:
    await page.goto(f"{base}/dashboard")
    assert "/dashboard/login" in page.url  # redirected: a session is required
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/dashboard")


async def test_dashboard_in_chromium(served, shots: Path):
    from playwright.async_api import async_playwright, expect

    base, services = served
    tenant = f"web-{uuid.uuid4().hex[:6]}"
    admin, viewer = await make_operator("admin"), await make_operator("viewer", tenant=tenant)
    for i, status in enumerate(("ready", "ready", "failed", "ready")):
        await make_asset(tenant, name=f"interview-{i + 1}.mp4", status=status)
    session = RecordingSession(tenant=(await make_asset(tenant, status="ready"))["tenant"], interview_id="int-42",
                               user_id="candidate-7", expected_chunks=8,
                               devices=[{"kind": "camera", "label": "FaceTime HD"}])
    await session.save()
    for index in (0, 1, 2, 4, 5, 6, 7):
        await Chunk(session=session.id, sequence_index=index, storage_key=f"k/{index}", sha256="x" * 64,
                    size_bytes=250_000, duration_seconds=5.0).save()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await sign_in(page, base, admin)
        await expect(page.locator("#queue-depth [data-queue=workers]")).to_have_text("1")  # the in-app worker
        await page.screenshot(path=str(shots / "overview.png"), full_page=True)

        # a real job: progress moves while the worker runs it, then the fragment stops polling
        asset = await make_asset(tenant, name="answer-q3.mp4", status="uploaded")
        await page.goto(f"{base}/dashboard/assets/{asset['id']}")
        await schedule_processing(services.queue, services.settings, services.host, asset["id"])
        bar = page.locator("#asset-processing [role=progressbar]").first
        await expect(bar).not_to_have_attribute("aria-valuenow", "0.0", timeout=10_000)
        seen = float(await bar.get_attribute("aria-valuenow"))
        assert 0 < seen < 100, seen
        await page.screenshot(path=str(shots / "asset-processing.png"), full_page=True)
        await expect(page.locator("#asset-processing")).to_have_attribute("data-live", "false", timeout=20_000)
        await expect(bar).to_have_attribute("aria-valuenow", "100.0")
        await expect(page.locator("#asset-processing .badge-ready")).to_be_visible()
        await page.screenshot(path=str(shots / "asset-ready.png"), full_page=True)

        # Reprocess as admin: the panel swaps in live again, and the run completes
        await page.click("#reprocess")
        await expect(page.locator("#asset-processing")).to_have_attribute("data-live", "true")
        await expect(page.locator("#asset-processing")).to_have_attribute("data-live", "false", timeout=20_000)
        assert await ProcessingJob.count().where(ProcessingJob.asset == asset["id"],
                                                 ProcessingJob.status == "succeeded") == 2

        await page.goto(f"{base}/dashboard/assets")
        await page.fill("#search", "interview-3")
        await expect(page.locator("#asset-table tbody tr")).to_have_count(1)
        assert "q=interview-3" in page.url
        await page.fill("#search", "")
        await expect(page.locator("#asset-table tbody tr")).not_to_have_count(1)  # cleared: every asset again
        assert "q=interview-3" not in page.url  # hx-push-url keeps the address in step with the filters
        await page.screenshot(path=str(shots / "assets.png"), full_page=True)

        # the gap strip fills in when the missing chunk arrives, without a reload
        await page.goto(f"{base}/dashboard/sessions/{session.id}")
        await expect(page.locator("[data-index='3']")).to_have_attribute("data-state", "missing")
        await page.screenshot(path=str(shots / "session-gap.png"), full_page=True)
        await Chunk(session=session.id, sequence_index=3, storage_key="k/3", sha256="x" * 64, size_bytes=250_000,
                    duration_seconds=5.0).save()
        await expect(page.locator("[data-index='3']")).to_have_attribute("data-state", "received", timeout=10_000)

        for name in ("sessions", "queue", "events", "plugins"):
            response = await page.goto(f"{base}/dashboard/{name}")
            assert response.status == 200, name
            await page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        # a viewer sees no admin buttons, and is refused (403) when it forges the request anyway
        viewer_page = await (await browser.new_context()).new_page()
        await sign_in(viewer_page, base, viewer)
        await viewer_page.goto(f"{base}/dashboard/assets/{asset['id']}")
        assert await viewer_page.locator("#reprocess").count() == 0
        status = await viewer_page.evaluate("""async (url) => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            const r = await fetch(url, {method: 'POST', headers: {'X-CSRF-Token': token}});
            return r.status; }""", f"{base}/dashboard/assets/{asset['id']}/reprocess")
        assert status == 403
        no_token = await viewer_page.evaluate("""async (url) => (await fetch(url, {method: 'POST'})).status""",
                                              f"{base}/dashboard/logout")
        assert no_token == 403  # no CSRF token: refused even for signing out
        await browser.close()
