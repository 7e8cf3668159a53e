"""A local HTTP server speaking Zoom's documented REST shapes, for the live-sessions tests.

- ``POST /oauth/token?grant_type=account_credentials&account_id=…`` with ``Authorization: Basic
  base64(client_id:client_secret)`` → ``{"access_token", "token_type": "bearer", "expires_in": 3600, "scope"}``;
  wrong credentials → 400 ``{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}``.
- ``POST /v2/users/{userId}/meetings`` (topic, type, start_time, duration, timezone, agenda) → 201 with the meeting
  object (``id``, ``uuid``, ``host_id``, ``topic``, ``type``, ``start_time``, ``duration``, ``timezone``,
  ``join_url``, ``start_url``…).
- ``PATCH /v2/meetings/{meetingId}`` → 204; ``DELETE /v2/meetings/{meetingId}`` → 204; unknown id → 404
  ``{"code": 3001, "message": "Meeting does not exist: {id}."}``.
- ``/v2/…`` without ``Authorization: Bearer <the issued token>`` → 401 ``{"code": 124, "message": "Invalid access
  token."}``; a ``type`` other than 1, 2, 3, 8 or a missing topic → 400 ``{"code": 300, "message": …}``.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET = "acct-123", "client-abc", "secret-xyz"
MEETINGS = re.compile(r"^/v2/users/([^/]+)/meetings$")
MEETING = re.compile(r"^/v2/meetings/(\d+)$")


class FakeZoom:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.meetings: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.fail_next: list[tuple[int, dict[str, Any]]] = []  # (status, body) answered before anything else
        self._next_id = random.randrange(10**10, 9 * 10**10, 10**4)  # meeting ids: unique across fakes
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any] | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if body is not None:
                    self.send_header("content-type", "application/json;charset=UTF-8")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
                url = urlsplit(self.path)
                body = json.loads(raw) if raw else None
                fake.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                      "headers": dict(self.headers), "body": body})
                if fake.fail_next:
                    self._answer(*fake.fail_next.pop(0))
                    return
                status, answer = fake.route(self.command, url.path, parse_qs(url.query), self.headers, body)
                self._answer(status, answer)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def settings(self, **extra: Any) -> dict[str, Any]:
        """A ``plugins.zoom`` section pointing at this server."""
        return {"account_id": ACCOUNT_ID, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "api_base_url": self.url, "oauth_base_url": self.url, **extra}

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any,
              body: Any) -> tuple[int, dict[str, Any] | None]:
        if path == "/oauth/token" and method == "POST":
            return self._token(query, headers)
        if not path.startswith("/v2/"):
            return 404, {"code": 404, "message": "Not found"}
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return 401, {"code": 124, "message": "Invalid access token."}
        if (match := MEETINGS.match(path)) and method == "POST":
            return self._create(match.group(1), body or {})
        if match := MEETING.match(path):
            meeting = self.meetings.get(match.group(1))
            if meeting is None:
                return 404, {"code": 3001, "message": f"Meeting does not exist: {match.group(1)}."}
            if method == "GET":
                return 200, meeting
            if method == "PATCH":
                meeting.update({k: v for k, v in (body or {}).items() if k in meeting or k == "agenda"})
                return 204, None
            if method == "DELETE":
                del self.meetings[match.group(1)]
                return 204, None
        return 404, {"code": 404, "message": "Not found"}

    def _token(self, query: dict[str, list[str]], headers: Any) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != expected:
            return 400, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
        if query.get("grant_type") != ["account_credentials"] or query.get("account_id") != [ACCOUNT_ID]:
            return 400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"}
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": 3599,
                     "scope": "meeting:write:admin meeting:read:admin", "api_url": "https://api.zoom.us"}

    def _create(self, user: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not body.get("topic"):
            return 400, {"code": 300, "message": "Request Body should be a valid JSON object."}
        if body.get("type") not in (1, 2, 3, 8):
            return 400, {"code": 300, "message": "Invalid meeting type."}
        self._next_id += 1
        meeting_id = str(self._next_id)
        meeting = {
            "uuid": base64.b64encode(uuid.uuid4().bytes).decode(), "id": int(meeting_id), "host_id": "z8yCxjabcd",
            "host_email": f"{user}@example.com" if user != "me" else "owner@example.com", "topic": body["topic"],
            "type": body["type"], "status": "waiting", "start_time": body.get("start_time"),
            "duration": body.get("duration"), "timezone": body.get("timezone"), "agenda": body.get("agenda", ""),
            "created_at": "2026-11-25T10:00:00Z", "start_url": f"https://zoom.us/s/{meeting_id}?zak=secret",
            "join_url": f"https://zoom.us/j/{meeting_id}?pwd=abc", "password": "abc",
            "settings": body.get("settings", {}),
        }
        self.meetings[meeting_id] = meeting
        return 201, meeting
