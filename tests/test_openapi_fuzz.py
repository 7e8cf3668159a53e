"""The OpenAPI document against the live API: schemathesis, every check (``--checks all``), against the app served
by Granian with the in-app worker, a fake Zoom on loopback and an API key.

It generates requests from ``/schema/openapi.json`` (valid and invalid ones, deterministically) and checks each
answer: no 5xx, every status and body documented, the error envelope where an error is answered, invalid input
refused, valid input accepted, required headers enforced, ``Allow`` right on OPTIONS and 405, auth enforced where
declared, deleted resources gone. The few exceptions are in ``ALLOWED``, each with its reason: a request the
document cannot describe as valid (a value must name something configured or stored, two headers exclude each
other) is expected to be refused with one of the statuses listed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from tests.test_dashboard_browser import serve_with_granian
from tests.zoom_fake_api import FakeZoom

pytestmark = [pytest.mark.timeout(400)]

MAX_EXAMPLES = 5
DEFAULTS = {  # schemathesis' defaults for the checks below
    "positive_data_acceptance": ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"],
    "negative_data_rejection": ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"],
    "not_a_server_error": ["1xx", "2xx", "3xx", "4xx"],
}


@dataclass(frozen=True)
class Allowed:
    """Requests to ``operation`` may also be answered with ``statuses`` under ``check``, because ``reason``.
    The default check: a request valid by the document may be refused with these statuses."""

    operation: str
    statuses: tuple[str, ...]
    reason: str
    check: str = "positive_data_acceptance"


PROFILE = "a profile name must name a configured profile (the document cannot list them: settings)"
ALLOWED = [
    Allowed("POST /api/v1/assets", ("413", "415", "422"),
            f"{PROFILE}; original_name's extension must be one the profile accepts, size under its limit"),
    Allowed("POST /api/v1/uploads", ("413", "415", "422"), f"{PROFILE}; file_name and size as for assets"),
    Allowed("POST /api/v1/sessions", ("422",),
            f"{PROFILE} of kind video or audio; id and client_id, when both given, must be equal"),
    Allowed("POST /api/v1/validate", ("400", "413", "415", "422"),
            f"{PROFILE}; a generated multipart body may put the file before the profile field"),
    Allowed("POST /api/v1/sessions/{session_ref}/chunks", ("400", "413", "415", "422"),
            "the file must be media of the session's profile; sequence_index below total_chunks"),
    Allowed("POST /api/v1/tus", ("400", "412", "413", "415", "422"),
            f"exactly one of Upload-Length and Upload-Defer-Length; Upload-Metadata must carry a profile ({PROFILE})"
            " and a filename it accepts; a final Upload-Concat must name complete partial uploads"),
    Allowed("PATCH /api/v1/tus/{upload_id}", ("400", "412", "413", "415", "460"),
            "Upload-Length cannot change once set; the checksum must match the body"),
    Allowed("POST /api/v1/tus/{upload_id}", ("400", "412", "413", "415", "460"), "as PATCH and DELETE"),
    Allowed("GET /api/v1/assets", ("400",), "cursor is opaque: only a next_cursor the API returned is valid"),
    Allowed("GET /api/v1/sessions", ("400",), "cursor is opaque: only a next_cursor the API returned is valid"),
    Allowed("GET /api/v1/live-sessions", ("400",), "cursor is opaque: only a next_cursor the API returned is valid"),
    Allowed("POST /api/v1/assets/{asset_id}/reprocess", ("422",), "steps must name installed processors"),
    Allowed("POST /api/v1/assets/{asset_id}/playback-tokens", ("422",),
            "ttl_seconds within the configured maximum; subject not blank"),
    Allowed("POST /api/v1/assets/{asset_id}/transcribe", ("422",), "language and model must be installed ones"),
    Allowed("POST /api/v1/transcriptions/batch", ("422",), "asset_ids: 1 to the configured batch maximum"),
    Allowed("POST /api/v1/analyze-image", ("413", "415", "422"),
            "analysis_types must be installed analyzers; the file must be an image"),
    Allowed("POST /api/v1/analyze-image/batch", ("422",), "analysis types installed; 1 to max_batch asset ids"),
    Allowed("POST /api/v1/extract-attributes", ("413", "415", "422"), "the file must be an image"),
    Allowed("POST /api/v1/live-sessions", ("422",), "timezone must be an IANA name; start_time with an offset"),
    Allowed("PATCH /api/v1/live-sessions/{session_id}", ("422",), "as for POST /api/v1/live-sessions"),
    Allowed("POST /api/v1/lti/registrations", ("400", "422"),
            "issuer, client_id and URLs must be non-empty, https (unless allowed), at most 500 characters"),
    Allowed("GET /lti/login", ("400",), "iss and client_id must name a registered platform"),
    Allowed("POST /lti/login", ("400",), "iss and client_id must name a registered platform"),
    Allowed("POST /lti/launch", ("400",), "state must be one this tool issued (signed)"),
    Allowed("POST /lti/deep-link", ("400",), "the LTI session must come from a deep linking launch"),
    Allowed("POST /lti/course/assets", ("400",), "the LTI session must have a course"),
    Allowed("GET /lti/register", ("400",), "the registration token is signed by this tool"),
    Allowed("GET /api/v1/playback/{asset_id}", ("400",), "token is signed by this service"),
    Allowed("POST /integrations/zoom/webhook", ("400",), "the body is a Zoom event signed by Zoom"),
    *(Allowed(op, ("412",), "tus answers a wrong or missing Tus-Resumable with 412 (tus 1.0.0)",
              "negative_data_rejection")
      for op in ("POST /api/v1/tus", "HEAD /api/v1/tus/{upload_id}", "PATCH /api/v1/tus/{upload_id}",
                 "DELETE /api/v1/tus/{upload_id}", "POST /api/v1/tus/{upload_id}")),
    *(Allowed(op, ("503",), "no analysis model is installed on a test machine: 503 model_missing names the "
                            "command that installs it", "not_a_server_error")
      for op in ("POST /api/v1/analyze-image", "POST /api/v1/extract-attributes")),
]
# tus answers a missing Tus-Resumable with 412 Precondition Failed (the tus 1.0.0 protocol's status).
MISSING_HEADER_STATUSES = ["400", "401", "403", "406", "412", "415", "422"]


def config_toml() -> str:
    lines = ["[checks.missing_required_header]", f"expected-statuses = {json.dumps(MISSING_HEADER_STATUSES)}", ""]
    operations: dict[str, dict[str, list[str]]] = {}
    for item in ALLOWED:
        checks = operations.setdefault(item.operation, {})
        checks.setdefault(item.check, list(DEFAULTS[item.check])).extend(item.statuses)
    for operation, checks in operations.items():
        lines += [f"# {item.reason}" for item in ALLOWED if item.operation == operation]
        lines += ["[[operations]]", f"include-name = {json.dumps(operation)}"]
        for check, statuses in checks.items():
            lines += [f"[operations.checks.{check}]", f"expected-statuses = {json.dumps(statuses)}"]
        lines.append("")
    return "\n".join(lines)


# tus bodies are application/offset+octet-stream: bytes, sent as schemathesis sends application/octet-stream.
HOOKS = '''import schemathesis
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
'''


@pytest.fixture
def fake_zoom():
    fake = FakeZoom()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


async def test_schemathesis_finds_nothing(make_settings, fake_zoom, tmp_path: Path):
    settings = make_settings(run_worker_in_app=True, plugins={"zoom": fake_zoom.settings(webhook_secret_token="s")},
                             **{"queue.name": f"fuzz-{uuid.uuid4().hex[:8]}"})
    config = tmp_path / "schemathesis.toml"
    config.write_text(config_toml())
    (tmp_path / "fuzz_hooks.py").write_text(HOOKS)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(tmp_path)}
    schemathesis = Path(sys.executable).parent / "schemathesis"
    async with serve_with_granian(create_app(settings)) as base:
        key, _ = await create_api_key(f"fuzz-{uuid.uuid4().hex[:8]}")
        proc = await asyncio.create_subprocess_exec(
            str(schemathesis), "--config-file", str(config), "run", f"{base}/schema/openapi.json",
            "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
            "--workers", "2", "--request-timeout", "20", "--no-color", "--output-truncate", "true",
            "--header", f"Authorization: Bearer {key}",
            cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    report = out.decode(errors="replace")
    if os.environ.get("MEDIASVC_FUZZ_REPORT"):  # the whole report, to read a failure at leisure
        Path(os.environ["MEDIASVC_FUZZ_REPORT"]).write_text(report)
    assert proc.returncode == 0, report[-20000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested and int(tested.group(1)) >= 60, report[-3000:]  # a real run over the whole document
