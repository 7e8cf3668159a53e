"""Steps as a graph (issue 16, items 3 and 5): steps whose needs are met run side by side on two workers, a
dependent never starts before its need succeeded, a failed step skips its dependents but not its siblings; overall
progress is weighted by each step's cost and never goes backwards, with ETAs."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

import pytest

from mediasvc.api.assets import processing_status
from mediasvc.app import create_app
from mediasvc.hookspecs import hookimpl
from mediasvc.contracts import ProcessorResult
from mediasvc.processing import PermanentProcessingError
from mediasvc.tables import Asset, Event, ProcessingJob
from tests.conftest import serve_in_process
from tests.test_processing_jobs import PROFILE, jobs_of, upload, wait_for_status


def sleeper(step: str, seconds: float, needs: frozenset[str] | None, *, cost: float = 1.0, fail: bool = False):
    class Sleeper:
        name = step
        kinds = frozenset({"document"})
        timeout_seconds = 60

        def cost(self, asset):
            return cost

        async def run(self, ctx):
            for i in range(10):
                await asyncio.sleep(seconds / 10)
                await ctx.progress(10 * (i + 1) - 1)
            if fail:
                raise PermanentProcessingError(f"{step} cannot do this file")
            return ProcessorResult()

    if needs is not None:
        Sleeper.needs = needs
    return Sleeper()


class Graph:
    @hookimpl
    def register_processors(self, settings):
        return [
            sleeper("g_probe", 0.3, frozenset()),
            sleeper("g_mp4", 2.5, frozenset({"g_probe"})),
            sleeper("g_audio", 0.5, frozenset({"g_probe"})),
            sleeper("g_transcribe", 1.0, frozenset({"g_audio"})),
            sleeper("g_bad_audio", 0.3, frozenset({"g_probe"}), fail=True),
            sleeper("g_captions", 0.3, frozenset({"g_bad_audio"})),
            sleeper("g_cheap", 0.3, frozenset(), cost=1.0),
            sleeper("g_dear", 3.0, frozenset({"g_cheap"}), cost=9.0),
        ]


@pytest.fixture
async def two_workers(make_settings):
    queue = f"graph-{uuid.uuid4().hex[:8]}"
    profiles = {
        "graph_ok": {**PROFILE, "steps": ["g_probe", "g_mp4", "g_audio", "g_transcribe"]},
        "graph_bad": {**PROFILE, "steps": ["g_probe", "g_mp4", "g_bad_audio", "g_captions"]},
        "weighted": {**PROFILE, "steps": ["g_cheap", "g_dear"]},
    }
    async with AsyncExitStack() as stack:
        apps = []
        for _ in range(2):  # two workers on one queue, one job at a time each
            app = create_app(make_settings(**{"run_worker_in_app": True, "queue.name": queue,
                                              "queue.concurrency": 1, "profiles": profiles}),
                             extra_plugins=[Graph()])
            http = await stack.enter_async_context(serve_in_process(app))
            apps.append((app, http))
        services = apps[0][0].state.services
        services.http = apps[0][1]  # for the endpoint test
        yield services


def overlap(a, b) -> bool:
    return a["started_at"] < b["completed_at"] and b["started_at"] < a["completed_at"]


async def test_independent_steps_run_side_by_side_on_two_workers(two_workers):
    asset_id = await upload(two_workers, "graph_ok")
    asset = await wait_for_status(asset_id, timeout=30)
    assert asset["status"] == "ready", asset["error"]
    jobs = await jobs_of(asset_id)
    assert all(j["status"] == "succeeded" for j in jobs.values())
    # the long mp4 and the audio + transcription chain ran at the same time
    assert overlap(jobs["g_mp4"], jobs["g_audio"]) and overlap(jobs["g_mp4"], jobs["g_transcribe"])
    for step, need in (("g_mp4", "g_probe"), ("g_audio", "g_probe"), ("g_transcribe", "g_audio")):
        assert jobs[step]["started_at"] >= jobs[need]["completed_at"], step
    events = await Event.raw("SELECT type FROM events WHERE payload->>'asset_id' = {}", str(asset_id))
    assert [e["type"] for e in events] == ["media.uploaded", "media.processed"]  # finished once


async def test_a_failed_step_skips_its_dependents_not_its_siblings(two_workers):
    asset_id = await upload(two_workers, "graph_bad")
    asset = await wait_for_status(asset_id, timeout=30)
    jobs = await jobs_of(asset_id)
    assert jobs["g_bad_audio"]["status"] == "failed"
    assert (jobs["g_captions"]["status"], jobs["g_captions"]["error"]) == ("skipped", "after g_bad_audio failed")
    assert jobs["g_captions"]["started_at"] is None
    assert jobs["g_mp4"]["status"] == "succeeded"  # the sibling ran to the end
    assert jobs["g_mp4"]["completed_at"] > jobs["g_bad_audio"]["completed_at"]  # and was not cut short
    assert asset["status"] == "failed" and "g_bad_audio: g_bad_audio cannot do this file" in asset["error"]
    events = await Event.raw("SELECT type FROM events WHERE payload->>'asset_id' = {}", str(asset_id))
    assert [e["type"] for e in events] == ["media.uploaded", "media.processing_failed"]


async def test_overall_progress_is_weighted_and_never_goes_backwards(two_workers):
    processors = two_workers.host.processors
    asset_id = await upload(two_workers, "weighted")
    samples: list[tuple[float, list[tuple[str, str, float]], float | None]] = []
    while True:
        row = await Asset.select().where(Asset.id == asset_id).output(load_json=True).first()
        status = await processing_status(row, processors)
        samples.append((status.progress, [(s.step, s.status, s.progress) for s in status.steps],
                        status.eta_seconds))
        if row["status"] in ("ready", "failed"):
            break
        await asyncio.sleep(0.05)
    assert row["status"] == "ready"
    values = [s[0] for s in samples]
    assert values == sorted(values) and values[-1] == 100.0
    # the cheap step done, the dear one (9 times the cost) not started: about 10 %, not the 50 % of a plain mean
    between = [p for p, steps, _ in samples if steps[0][1] == "succeeded" and steps[1][2] == 0]
    assert between and all(abs(p - 10.0) < 0.5 for p in between), samples
    # while the dear step runs its progress moves the overall number by 0.9 a percent
    running = [(p, steps[1][2]) for p, steps, _ in samples if steps[1][1] == "running" and steps[1][2] > 0]
    assert running and all(abs(p - (10 + 0.9 * step)) < 0.5 for p, step in running)
    etas = [eta for _, steps, eta in samples if steps[1][1] == "running" and steps[1][2] > 0]
    assert etas and all(eta is not None and 0 <= eta < 10 for eta in etas) and max(etas) > 1


async def test_the_status_endpoint_carries_etas(two_workers):
    from mediasvc.auth import create_api_key

    asset_id = await upload(two_workers, "weighted")
    slug = (await Asset.select(Asset.tenant.slug.as_alias("slug")).where(Asset.id == asset_id).first())["slug"]
    key, _ = await create_api_key(slug)
    await asyncio.sleep(1.2)  # the dear step is under way
    body = (await two_workers.http.get(f"/api/v1/assets/{asset_id}/status",
                                       headers={"Authorization": f"Bearer {key}"})).json()
    await wait_for_status(asset_id, timeout=30)
    steps = {s["step"]: s for s in body["steps"]}
    assert (steps["g_cheap"]["status"], steps["g_cheap"]["eta_seconds"]) == ("succeeded", 0.0)
    assert steps["g_dear"]["status"] == "running" and 0 < steps["g_dear"]["eta_seconds"] < 10
    assert body["eta_seconds"] == steps["g_dear"]["eta_seconds"] and 10 < body["progress"] < 100
