"""A real browser on another origin: Chromium loads a page from a little HTTP server on one port and ``fetch``es
the API (Granian, another port) with an API key — create a session, upload a chunk — through CORS preflights.
The same page from an origin not in ``cors.allow_origins`` cannot read anything."""

from __future__ import annotations

import base64
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mediasvc.app import create_app
from tests.playback_helpers import tenant_with_key
from tests.test_api_sessions import make_chunk
from tests.test_dashboard_browser import ARGS, CHROMIUM, serve_with_granian

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)"),
    pytest.mark.timeout(180),
]

PAGE = b"""<!doctype html><meta charset="utf-8"><title>front end</title><p>recorder page</p>"""

UPLOAD_SCRIPT = """
async ([api, key, chunk]) => {
  const auth = {"Authorization": "Bearer " + key};
  const created = await fetch(api + "/api/v1/sessions", {method: "POST",
      headers: {...auth, "Content-Type": "application/json", "X-Request-ID": "front-1"},
      body: JSON.stringify({client_id: "browser-cors-1"})});
  const session = await created.json();
  const bytes = Uint8Array.from(atob(chunk), c => c.charCodeAt(0));
  const form = new FormData();
  form.append("sequence_index", "0");
  form.append("file", new Blob([bytes], {type: "video/mp4"}), "chunk-0.mp4");
  const uploaded = await fetch(api + "/api/v1/sessions/" + session.id + "/chunks",
      {method: "POST", headers: auth, body: form});
  return {created: created.status, requestId: created.headers.get("X-Request-ID"), session: session.id,
          chunk: uploaded.status, chunkBody: await uploaded.json()};
}
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def front_end():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_page_on_another_origin_creates_a_session_and_uploads_a_chunk(make_settings, front_end):
    from playwright.async_api import async_playwright

    app = create_app(make_settings(**{"cors.allow_origins": [front_end]}))
    chunk = base64.b64encode(make_chunk(0)).decode()
    async with serve_with_granian(app) as api:
        assert api.rsplit(":", 1)[1] != front_end.rsplit(":", 1)[1]  # two origins
        _, _, key = await tenant_with_key()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page()
            await page.goto(front_end)
            result = await page.evaluate(UPLOAD_SCRIPT, [api, key, chunk])
            assert result["created"] == 201 and result["chunk"] == 201, result
            assert result["requestId"] == "front-1"  # an exposed header the page could read
            assert result["chunkBody"]["sequence_index"] == 0

            # the same page from an origin the settings do not name: the browser refuses (TypeError)
            other = front_end.replace("127.0.0.1", "localhost")
            await page.goto(other)
            refused = await page.evaluate("""async ([api, key]) => {
                try { await fetch(api + "/api/v1/sessions", {method: "POST", headers: {
                        "Authorization": "Bearer " + key, "Content-Type": "application/json"}, body: "{}"});
                      return "read"; } catch (e) { return e.name; } }""", [api, key])
            assert refused == "TypeError"
            await browser.close()
