"""The live panel in a real browser: Playwright driving Debian Chromium against the app under Granian, with the
SAQ worker inside it. A participant appears in the overview's panel when the signed join webhook arrives and is
gone after the leave, without a page reload; the session's report page shows the attendance and its exports.
Screenshots go to $MEDIASVC_SCREENSHOTS (default: a temp dir); docs/screenshots/zoom-*.png were made with
MEDIASVC_SCREENSHOTS=docs/screenshots."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from tests.dashboard_helpers import make_operator
from tests.test_dashboard_browser import ARGS, CHROMIUM, serve_with_granian, shots, sign_in  # noqa: F401
from tests.test_zoom_webhooks import SECRET, meeting_event, post_signed, zoom_iso
from tests.zoom_fake_api import FakeZoom

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"),
    pytest.mark.timeout(180),
]


@pytest.fixture
async def served(make_settings):
    fake = FakeZoom()
    fake.thread.start()
    settings = make_settings(plugins={"zoom": fake.settings(webhook_secret_token=SECRET)}, run_worker_in_app=True,
                             **{"queue.name": f"zoom-browser-{uuid.uuid4().hex[:8]}"})
    try:
        async with serve_with_granian(create_app(settings)) as base:
            yield base
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def presence(event: str, meeting_id: str, when: datetime) -> dict:
    field = "leave_time" if event.endswith("_left") else "join_time"
    return meeting_event(event, meeting_id, participant={
        "user_id": "16778240", "user_name": "Ann Lee", "id": "", "participant_uuid": "ann-laptop",
        "email": "ann@example.com", field: zoom_iso(when)})


async def test_live_panel_follows_the_webhooks(served, shots: Path):  # noqa: F811
    from playwright.async_api import async_playwright, expect

    base = served
    tenant = f"zoom-web-{uuid.uuid4().hex[:6]}"
    key, _ = await create_api_key(tenant)
    admin = await make_operator("admin", tenant=tenant)  # sees this tenant only
    now = datetime.now(timezone.utc).replace(microsecond=0)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        created = await http.post("/api/v1/live-sessions", json={
            "name": "Week 3 seminar", "start_time": (now - timedelta(minutes=10)).isoformat(),
            "duration_minutes": 60})
        assert created.status_code == 201, created.text
        session = created.json()
        mid = session["zoom_meeting_id"]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await sign_in(page, base, admin)
            panel = page.locator("#zoom-live-now")
            await expect(panel).to_contain_text("Nobody is in a meeting right now")
            await expect(page.locator("nav a.plugin-link", has_text="Live sessions")).to_be_visible()
            await page.evaluate("window.__not_reloaded = true")

            assert (await post_signed(http, meeting_event("meeting.started", mid, start_time=zoom_iso(now)))
                    ).json()["status"] == "accepted"
            assert (await post_signed(http, presence("meeting.participant_joined", mid, now))
                    ).json()["status"] == "accepted"
            ann = panel.locator("[data-participant='email:ann@example.com']")
            await expect(ann).to_be_visible(timeout=15_000)
            await expect(ann).to_contain_text("Ann Lee")
            await expect(panel).to_have_attribute("data-count", "1")
            await expect(panel).to_contain_text("Week 3 seminar")
            await page.screenshot(path=str(shots / "zoom-live-panel.png"), full_page=True)

            assert (await post_signed(http, presence("meeting.participant_left", mid, now + timedelta(minutes=7)))
                    ).json()["status"] == "accepted"
            await expect(ann).to_have_count(0, timeout=15_000)
            await expect(panel).to_have_attribute("data-count", "0")
            assert await page.evaluate("window.__not_reloaded === true")  # swapped in place, never reloaded

            await page.goto(f"{base}/dashboard/live-sessions")
            await page.click("text=Week 3 seminar")
            row = page.locator("#zoom-attendance tr[data-participant='email:ann@example.com']")
            await expect(row.locator("[data-minutes]")).to_have_text("7.0")
            csv_response = await page.request.get(base + await page.get_attribute("#export-csv", "href"))
            assert csv_response.status == 200 and (await csv_response.body()).startswith(b"\xef\xbb\xbfname,")
            json_response = await page.request.get(base + await page.get_attribute("#export-json", "href"))
            assert (await json_response.json())["participants"][0]["total_seconds"] == 420
            assert json_response.headers["content-disposition"] == \
                f'attachment; filename="attendance-week-3-seminar-{now - timedelta(minutes=10):%Y-%m-%d}.json"'
            await page.screenshot(path=str(shots / "zoom-attendance.png"), full_page=True)
            await browser.close()
