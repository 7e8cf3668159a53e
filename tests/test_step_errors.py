"""Issue 15, item 5: a failed step's error reached API clients and the dashboard with the original's absolute
storage path and an FFmpeg errno (``[Errno 1094995529] … '/…/storage/…/original.mp4'``). Step failures now
become a stable code and readable text (``mediasvc.step_errors``); the detail goes to the log with the step id."""

from __future__ import annotations

import logging
import re
import uuid


from mediasvc.errors import PermanentProcessingError
from mediasvc.plugin import hookimpl
from mediasvc.step_errors import describe_failure, scrub
from mediasvc.tables import Event, ProcessingJob
from mediasvc.testing import running_app

ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])/[\w.-]+/")
FFMPEG_TEXT = ("[Errno 1094995529] Invalid data found when processing input: "
               "'/srv/mediasvc/data/storage/video-responses/t1/video/8c1e/original.mp4'")


def test_a_plugins_message_is_kept_but_scrubbed_of_paths_and_errno():
    code, message = describe_failure(PermanentProcessingError(f"cannot read the media: {FFMPEG_TEXT}"))
    assert code == "invalid_input"
    assert message == "cannot read the media: Invalid data found when processing input: 'original.mp4'"
    # our own words are left alone: fractions, URLs, relative names
    assert scrub("1/2 of the frames, see https://example.com/a/b for x/y") == \
        "1/2 of the frames, see https://example.com/a/b for x/y"


def test_a_plugin_error_with_a_code_keeps_it():
    class Truncated(PermanentProcessingError):
        code = "truncated_media"

    class Odd(PermanentProcessingError):
        code = "Not A Code!"

    assert describe_failure(Truncated("cut"))[0] == "truncated_media"
    assert describe_failure(Odd("x"))[0] == "invalid_input"


def test_timeouts_and_unexpected_errors_get_fixed_text():
    assert describe_failure(TimeoutError(), seconds=12.4) == ("timeout", "timed out after 12 s")
    code, message = describe_failure(RuntimeError("/secret/path"), step_id="abc")
    assert (code, message) == ("internal_error", "internal error while processing (see the worker log, step abc)")


# --- through the service: a corrupt upload and a processor that breaks ----------------------------------------


class Breaks:
    name = "breaks"
    kinds = frozenset({"document"})
    timeout_seconds = 30

    async def run(self, ctx):
        raise RuntimeError("cannot open /secret/path/original.pdf: [Errno 13] Permission denied")


class BreakingPlugin:
    @hookimpl
    def register_processors(self, settings):
        return [Breaks()]


def assert_clean(text: str | None) -> None:
    assert text, "no error text"
    assert not ABSOLUTE_PATH.search(text) and "Errno" not in text and "secret" not in text, text


async def test_failures_show_readable_text_and_the_log_has_the_detail(make_settings, caplog):
    settings = make_settings(**{
        "run_worker_in_app": True,
        "queue.name": f"errors-{uuid.uuid4().hex[:8]}",
        "queue.default_retries": 1,
        "profiles": {
            "clip": {"kind": "video", "formats": ["mp4"], "max_bytes": 10_000_000, "bucket": "clips",
                     "steps": ["probe", "mp4"]},
            "doc": {"kind": "document", "formats": ["pdf"], "max_bytes": 10_000_000, "bucket": "docs",
                    "steps": ["breaks"]},
        },
    })
    # an MP4 that FFmpeg rejects while opening: a valid ftyp, then garbage where moov/mdat should be
    corrupt = b"\0\0\0\x18ftypisom\0\0\0\0isomiso2" + bytes(range(256)) * 20
    caplog.set_level(logging.WARNING, logger="mediasvc.processing")
    async with running_app(settings, plugins=[BreakingPlugin()]) as app:
        video = await app.upload(corrupt, profile="clip", file_name="answer.mp4")
        doc = await app.upload(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n",
                               profile="doc", file_name="cv.pdf")

        failed = await app.wait_for_asset(video)
        steps = {s["step"]: s for s in failed["steps"]}
        assert failed["status"] == "failed" and steps["probe"]["status"] == "failed"
        assert steps["probe"]["error"] == \
            "the file cannot be decoded as audio or video (it is damaged, incomplete or not media)"
        assert "/" not in steps["probe"]["error"]
        assert failed["error"] == f"probe: {steps['probe']['error']}"

        broken = await app.wait_for_asset(doc)
        step = next(s for s in broken["steps"] if s["step"] == "breaks")
        row = await ProcessingJob.select(ProcessingJob.id).where(ProcessingJob.asset == doc).first()
        assert step["error"] == f"internal error while processing (see the worker log, step {row['id']})"

        for asset_id, asset in ((video, failed), (doc, broken)):
            status = (await app.client.get(f"/api/v1/assets/{asset_id}/status", headers=app.headers)).json()
            # the outbox row, written with the asset's status: what every sink delivers
            event = await Event.select(Event.payload).where(
                Event.type == "media.processing_failed", Event.payload.arrow("asset_id") == f'"{asset_id}"'
            ).output(load_json=True).first()
            for text in (asset["error"], status["error"], event["payload"]["error"],
                         *(s["error"] for s in asset["steps"]), *(s["error"] for s in status["steps"])):
                if text is not None:
                    assert_clean(text)

    # the operator finds the whole story in the log, under the id the client was shown
    logged = [r for r in caplog.records if str(row["id"]) in r.getMessage() and r.exc_info is not None]
    assert logged, [r.getMessage() for r in caplog.records]
    assert "/secret/path/original.pdf" in caplog.text and "Errno 13" in caplog.text
    assert "Errno 1094995529" in caplog.text  # FFmpeg's own text is kept, as the cause, in the log only
