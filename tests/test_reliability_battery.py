"""The reliability battery: two API instances (``mediasvc serve``) and two workers (``mediasvc worker``) on a
PostgreSQL cluster and a redis-server of their own, with SeaweedFS S3 storage, all started here; then
instances and workers are killed, Redis and PostgreSQL restarted, and every scenario checks that nothing was lost
(the sha256 of every stored original, one set of renditions per asset, every event delivered once per id).
The full-disk scenario is in tests/test_reliability_disk.py. docs/reliability.md lists the scenarios and results.

Run alone: ``scripts/test -m reliability``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.reliability_client import (
    Seen,
    TusClient,
    assert_events_delivered_once,
    assert_nothing_lost,
    query,
    sha256,
    wait_for,
    wait_ready,
)
from tests.reliability_cluster import (
    ApiInstance,
    PostgresCluster,
    RedisServer,
    WorkerProcess,
    pg_bin_dir,
)
from tests.s3_server import S3Server, s3_server  # noqa: F401 (the fixture)
from tests.test_mp4_remux import encode
from tests.test_processors_hls import make_source
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(240)]

PROFILE = "clip"
# Two steps: probe, then an MP4 transcode (the step a worker is killed in); one rendition per asset.
PROFILES = {PROFILE: {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "clips",
                      "steps": ["probe", "mp4"]}}
RENDITIONS = {("mp4", "default")}
HEARTBEAT_SECONDS = 2  # a killed worker's job counts as lost this soon (production: 30 s)
WEBHOOK_SECRET = "battery-webhook-secret"
RESULTS: dict[str, Any] = {}  # measured numbers, printed at the end of the module (docs/reliability.md)


@dataclass
class Cluster:
    pg: PostgresCluster
    redis: RedisServer
    apis: list[ApiInstance]
    workers: list[WorkerProcess]
    receiver: Receiver
    s3: S3Server
    database_url: str
    tenant: str
    key: str
    logs: Path

    @property
    def bases(self) -> list[str]:
        return [api.base for api in self.apis]

    def log_tail(self, lines: int = 60) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def _env(database_url: str, redis_url: str, s3: S3Server, receiver: Receiver, data_dir: Path) -> dict[str, str]:
    webhooks = {"targets": [{"name": "battery", "url": receiver.url, "secret": WEBHOOK_SECRET}],
                "allow_loopback": True, "timeout_seconds": 5}
    return {
        "MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__URL": redis_url,
        "MEDIASVC_QUEUE__NAME": "battery", "MEDIASVC_QUEUE__HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "MEDIASVC_DATA_DIR": str(data_dir), "MEDIASVC_SECRET_KEY": "battery-secret-key",
        "MEDIASVC_PROFILES": json.dumps(PROFILES), "MEDIASVC_LOG_FORMAT": "text",
        "MEDIASVC_EVENTS__RETRY_BASE_SECONDS": "0.5", "MEDIASVC_EVENTS__RETRY_MAX_INTERVAL_SECONDS": "2",
        # the recovery sweep's grace and the API's drain are minutes/seconds for operators, not for a test
        "MEDIASVC_QUEUE__RECOVER_GRACE_SECONDS": "5", "MEDIASVC_SHUTDOWN__DRAIN_SECONDS": "0",
        "MEDIASVC_PLUGINS": json.dumps({"webhooks": webhooks}),
        **s3.env(),
    }


@pytest.fixture(scope="module")
def cluster(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:  # noqa: F811
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        pytest.skip("the reliability battery needs PostgreSQL's initdb/pg_ctl (Debian: postgresql) to run a "
                    "cluster it may stop")
    if shutil.which("redis-server") is None:
        pytest.skip("the reliability battery needs redis-server to run a Redis it may restart")
    logs = tmp_path_factory.mktemp("battery-logs")
    pg, redis, receiver = PostgresCluster(bin_dir), RedisServer(), Receiver()
    apis: list[ApiInstance] = []
    workers: list[WorkerProcess] = []
    try:
        pg.init()
        pg.start()
        pg.createdb("mediasvc")
        database_url = pg.url("mediasvc")
        result = run_cli("migrate", env={"MEDIASVC_DATABASE_URL": database_url})
        assert result.returncode == 0, result.stderr
        redis.start()
        receiver.thread.start()
        env = _env(database_url, redis.url, s3_server, receiver, tmp_path_factory.mktemp("battery-data"))
        tenant = f"battery-{uuid.uuid4().hex[:8]}"
        created = run_cli("apikey", "create", "--tenant", tenant, env=env)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        apis = [ApiInstance(env, logs / f"api{n}.log") for n in (1, 2)]
        workers = [WorkerProcess(env, logs / f"worker{n}.log") for n in (1, 2)]
        for process in (*apis, *workers):
            process.start()
        for api in apis:
            api.wait_ready()
        yield Cluster(pg, redis, apis, workers, receiver, s3_server, database_url, tenant, key, logs)
    finally:
        for process in (*apis, *workers):  # SIGTERM to all first: they drain in parallel
            if process.process is not None and process.process.poll() is None:
                process.process.terminate()
        for process in (*apis, *workers):
            process.stop()
        receiver.server.shutdown()
        receiver.server.server_close()
        redis.destroy()
        pg.destroy()
        if RESULTS:
            print("\nreliability battery results:", json.dumps(RESULTS, indent=1))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("battery-media")
    # short: uploads in A, C, D; long enough for B's transcode to be caught half way
    short = make_source(folder / "short.mp4", seconds=1.5, width=320, height=180)
    # 4:4:4, so the mp4 step re-encodes it (a browser-ready 4:2:0 upload is copied in a flash: test_mp4_remux.py)
    long = encode(folder / "long.mp4", seconds=10, width=640, height=360, fps=25, pix_fmt="yuv444p",
                  options={"preset": "ultrafast"}, noise=False)
    return {"short": short.read_bytes(), "long": long.read_bytes()}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def unique(data: bytes) -> bytes:
    """The same media with a distinct tail (a ``free`` box), so each upload has its own sha256."""
    pad = uuid.uuid4().bytes * 4
    return data + (8 + len(pad)).to_bytes(4, "big") + b"free" + pad


# --- A: a tus upload split across the two instances ---------------------------------------------------------


async def test_a_tus_upload_split_across_instances(cluster: Cluster, media: dict[str, bytes],
                                                   http: httpx.AsyncClient) -> None:
    data = unique(media["short"])
    api1, api2 = cluster.bases
    client = TusClient(http, cluster.bases, cluster.key)
    path = await client.create(len(data), "split.mp4", PROFILE, base=api1)
    half = len(data) // 2
    first = await client.patch(path, 0, data[:half], base=api1)
    assert first.status_code == 204 and first.headers["upload-offset"] == str(half)
    seen_by_other = await client.head(path, base=api2)  # the other instance knows where the upload stands
    assert seen_by_other.headers["upload-offset"] == str(half)
    rest = await client.patch(path, half, data[half:], base=api2)
    assert rest.status_code == 204, rest.text
    asset_id = rest.headers["mediasvc-asset-id"]
    asset = (await http.get(f"{api1}/api/v1/assets/{asset_id}", headers=client.auth)).json()
    assert asset["sha256"] == sha256(data) and asset["size_bytes"] == len(data)
    await wait_ready(cluster.database_url, [asset_id], 60)
    await assert_nothing_lost(cluster.database_url, cluster.s3.store(), {asset_id: sha256(data)}, RENDITIONS)
    await assert_events_delivered_once(cluster.database_url, cluster.tenant, cluster.receiver, 60)
    assert not client.seen.server_errors


# --- B: a worker killed mid-transcode -----------------------------------------------------------------------


async def test_b_worker_killed_mid_transcode_is_recovered_by_the_other(
        cluster: Cluster, media: dict[str, bytes], http: httpx.AsyncClient) -> None:
    data = unique(media["long"])
    client = TusClient(http, cluster.bases, cluster.key)
    _, asset_id = await client.upload(data, "long.mp4", PROFILE, chunk=len(data))

    async def mp4_under_way() -> Any:
        rows = await query(cluster.database_url, "SELECT id::text, status, progress, attempts, queue_key "
                           "FROM processing_jobs WHERE asset = $1::uuid AND step = 'mp4'", asset_id)
        row = rows[0] if rows else None
        return row if row is not None and row["status"] == "running" and 0 < row["progress"] < 80 else None

    running = await wait_for(mp4_under_way, 60, "the mp4 step to make progress", poll=0.05)
    owner = _worker_running(cluster, running["queue_key"])
    killed_at = time.monotonic()
    owner.kill()
    other = next(w for w in cluster.workers if w is not owner)
    assert other.alive()

    async def retried() -> Any:
        rows = await query(cluster.database_url, "SELECT status, attempts FROM processing_jobs "
                           "WHERE asset = $1::uuid AND step = 'mp4'", asset_id)
        return True if rows[0]["attempts"] == 2 and rows[0]["status"] in ("running", "succeeded") else None

    try:
        await wait_for(retried, 60, "the other worker to take the step again")
        picked_up = time.monotonic() - killed_at
        await wait_ready(cluster.database_url, [asset_id], 90)
        ready = time.monotonic() - killed_at
    finally:
        owner.start()  # the next scenarios run with two workers again
    steps = await query(cluster.database_url, "SELECT step, status, attempts FROM processing_jobs "
                        "WHERE asset = $1::uuid", asset_id)
    assert {s["step"]: (s["status"], s["attempts"]) for s in steps} == {
        "probe": ("succeeded", 1), "mp4": ("succeeded", 2)}  # retried once, not looped
    await assert_nothing_lost(cluster.database_url, cluster.s3.store(), {asset_id: sha256(data)}, RENDITIONS)
    await assert_events_delivered_once(cluster.database_url, cluster.tenant, cluster.receiver, 60)
    RESULTS["B_killed_worker"] = {"step_taken_again_after_s": round(picked_up, 1),
                                  "asset_ready_after_s": round(ready, 1), "heartbeat_s": HEARTBEAT_SECONDS}


def _worker_running(cluster: Cluster, queue_key: str) -> WorkerProcess:
    """The worker whose log says it is processing the SAQ job ``queue_key`` (SAQ logs ``Processing Job<…>``)."""
    for _ in range(100):
        owners = [w for w in cluster.workers if f"key: {queue_key}," in w.log.read_text(errors="replace")]
        if len(owners) == 1:
            return owners[0]
        time.sleep(0.05)
    raise AssertionError(f"no single worker logged job {queue_key}:\n{cluster.log_tail()}")


# --- C: Redis restarted while uploads and processing are in flight ------------------------------------------


async def _uploads_across(client: TusClient, datas: list[bytes], outage: Any, *, chunks: int = 4,
                          pause: float = 0.5) -> list[str]:
    """Upload ``datas`` at once, each in ``chunks`` PATCHes ``pause`` s apart (so they span the outage), while
    ``outage()`` runs; returns the asset ids."""
    tasks = [asyncio.create_task(client.upload(d, f"u{n}.mp4", PROFILE, chunk=len(d) // chunks + 1, pause=pause,
                                               deadline=120)) for n, d in enumerate(datas)]
    await outage()
    return [asset_id for _, asset_id in await asyncio.gather(*tasks)]


async def test_c_redis_restart_loses_no_job(cluster: Cluster, media: dict[str, bytes],
                                            http: httpx.AsyncClient) -> None:
    client = TusClient(http, cluster.bases, cluster.key)
    processing = [unique(media["short"]) for _ in range(2)]  # uploaded now: their steps are queued or running
    early = [(await client.upload(d, "early.mp4", PROFILE, chunk=len(d)))[1] for d in processing]
    uploading = [unique(media["short"]) for _ in range(3)]
    timing: dict[str, float] = {}

    async def restart_redis() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.redis.stop)  # no persistence: every queued job and cron entry is gone
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.redis.start)
        timing["back"] = time.monotonic()

    late = await _uploads_across(client, uploading, restart_redis)
    expected = dict(zip(early + late, [sha256(d) for d in processing + uploading]))
    waited = await wait_ready(cluster.database_url, list(expected), 120)
    await assert_nothing_lost(cluster.database_url, cluster.s3.store(), expected, RENDITIONS)
    await assert_events_delivered_once(cluster.database_url, cluster.tenant, cluster.receiver, 90)
    assert not client.seen.server_errors, client.seen.server_errors  # 503 at most, never a 500
    assert all(value == "5" for value in client.seen.retry_after)
    RESULTS["C_redis_restart"] = {"assets": len(expected), "all_ready_after_s": round(waited, 1),
                                  "answers": dict(client.seen.statuses)}


# --- D: PostgreSQL stopped while uploads and processing are in flight ---------------------------------------


async def test_d_postgres_outage_is_503_with_retry_after_and_everything_completes(
        cluster: Cluster, media: dict[str, bytes], http: httpx.AsyncClient) -> None:
    client = TusClient(http, cluster.bases, cluster.key)
    processing = [unique(media["short"]) for _ in range(2)]
    early = [(await client.upload(d, "early.mp4", PROFILE, chunk=len(d)))[1] for d in processing]
    uploading = [unique(media["short"]) for _ in range(3)]
    during = Seen()  # what reads of an asset got while the database was down

    async def stop_postgres() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(cluster.pg.stop)  # fast shutdown: every session is terminated
        loop = asyncio.get_running_loop()
        until = loop.time() + 4
        while loop.time() < until:
            for base in cluster.bases:
                with_key = {"Authorization": f"Bearer {cluster.key}"}
                during.note(await http.get(f"{base}/api/v1/assets/{early[0]}", headers=with_key))
            await asyncio.sleep(0.2)
        await asyncio.to_thread(cluster.pg.start)

    late = await _uploads_across(client, uploading, stop_postgres)
    assert during.statuses[503] > 0 and set(during.statuses) <= {200, 503}, during
    assert during.retry_after and all(value == "5" for value in during.retry_after), during.retry_after
    assert not during.server_errors and not client.seen.server_errors, (during.server_errors,
                                                                        client.seen.server_errors)
    expected = dict(zip(early + late, [sha256(d) for d in processing + uploading]))
    waited = await wait_ready(cluster.database_url, list(expected), 120)
    await assert_nothing_lost(cluster.database_url, cluster.s3.store(), expected, RENDITIONS)
    await assert_events_delivered_once(cluster.database_url, cluster.tenant, cluster.receiver, 90)
    RESULTS["D_postgres_outage"] = {"assets": len(expected), "all_ready_after_s": round(waited, 1),
                                    "reads_during_outage": dict(during.statuses),
                                    "upload_answers": dict(client.seen.statuses)}
