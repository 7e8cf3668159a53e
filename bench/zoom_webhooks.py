"""How fast a Zoom webhook is acknowledged, and how fast attendance is computed, each against a baseline.

1. Webhook acknowledgement: a signed ``meeting.participant_joined`` (verify the signature, store it once, enqueue
   the job) against ``GET /health`` (database, storage, queue and plugins checked) through the same in-process
   client, interleaved round by round. A scratch database is created, migrated with ``python -m server.cli
   migrate`` and dropped; the queue is the local Redis (``$MEDIASVC_BENCH_REDIS``). No worker runs, so only the
   acknowledgement is timed.
2. Attendance: ``presences()`` + ``attendance()`` over N join/leave events (N/40 participants with rejoins and two
   devices) against ``sorted()`` of the same events by time, the least any computation must do.

    uv run --locked python bench/zoom_webhooks.py            # --n 300 --events 100000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import httpx
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("MEDIASVC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MEDIASVC_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "bench-secret"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_webhooks(n: int, warmup: int) -> None:
    from mediasvc_zoom.signature import sign
    from mediasvc_zoom.tables import LiveSession

    from mediasvc.app import create_app
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.settings import load_settings

    name = f"mediasvc_bench_zoom_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | {"MEDIASVC_DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "mediasvc.cli", "migrate"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        settings = load_settings(env={}, database_url=url, secret_key="bench", data_dir=f"/tmp/{name}",
                                 plugins={"zoom": {"webhook_secret_token": SECRET}},
                                 **{"queue.url": REDIS_URL, "queue.name": name})
        app = create_app(settings)
        async with app.lifespan():
            tenant = await get_or_create_tenant("bench")
            now = datetime.now(timezone.utc)
            await LiveSession.insert(LiveSession(tenant=tenant, name="bench", scheduled_start=now,
                                                 scheduled_end=now + timedelta(hours=1), zoom_meeting_id="123"))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                timings: dict[str, list[float]] = {"health": [], "webhook": []}
                for i in range(warmup + n):
                    body = msgspec.json.encode({"event": "meeting.participant_joined", "event_ts": i, "payload": {
                        "object": {"id": "123", "uuid": "u", "participant": {
                            "user_name": f"P{i}", "participant_uuid": f"p{i}", "email": f"p{i}@example.com",
                            "join_time": (now + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}}}})
                    ts = str(int(time.time()))
                    headers = {"x-zm-request-timestamp": ts, "x-zm-signature": sign(SECRET, ts, body),
                               "content-type": "application/json"}
                    for label in ("health", "webhook"):
                        started = time.perf_counter()
                        if label == "health":
                            response = await http.get("/health")
                        else:
                            response = await http.post("/integrations/zoom/webhook", content=body, headers=headers)
                        elapsed = (time.perf_counter() - started) * 1000
                        assert response.status_code == 200, response.text
                        if i >= warmup:
                            timings[label].append(elapsed)
        base = statistics.median(timings["health"])
        print(f"webhook ack, {n} requests each (ms): health p50 {base:.2f} p95 {pct(timings['health'], .95):.2f}"
              f" | webhook p50 {statistics.median(timings['webhook']):.2f} p95 {pct(timings['webhook'], .95):.2f}"
              f" | webhook/health p50 ratio {statistics.median(timings['webhook']) / base:.2f}")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        await drop_queue_keys(name)


async def drop_queue_keys(queue_name: str) -> None:
    """The jobs the webhooks queued (no worker ran): remove the bench queue's keys from Redis."""
    from redis.asyncio import from_url

    redis = from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(match=f"*{queue_name}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def bench_attendance(n_events: int) -> None:
    from mediasvc_zoom.attendance import PresenceEvent, Schedule, attendance, presences

    rng = random.Random(7)
    start = datetime(2026, 11, 25, 10, tzinfo=timezone.utc)
    events = []
    for p in range(n_events // 40):
        for device in ("laptop", "phone"):
            t = start + timedelta(seconds=rng.randint(0, 600))
            for _ in range(10):  # 10 joins and leaves per device
                events.append(PresenceEvent("join", t, f"email:p{p}", device))
                t += timedelta(seconds=rng.randint(30, 300))
                events.append(PresenceEvent("leave", t, f"email:p{p}", device))
                t += timedelta(seconds=rng.randint(5, 120))
    rng.shuffle(events)
    schedule = Schedule(start, start + timedelta(hours=2))
    results = {}
    for label, fn in (("sorted", lambda: sorted(events, key=lambda e: e.at)),
                      ("attendance", lambda: attendance(presences(events), schedule, now=start))):
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
        results[label] = min(runs)
    print(f"attendance over {len(events)} events ({n_events // 40} participants): sorted() "
          f"{results['sorted'] * 1000:.1f} ms | presences+attendance {results['attendance'] * 1000:.1f} ms "
          f"| ratio {results['attendance'] / results['sorted']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    bench_attendance(args.events)
    asyncio.run(bench_webhooks(args.n, args.warmup))


if __name__ == "__main__":
    main()
