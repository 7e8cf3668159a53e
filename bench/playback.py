"""Playback throughput: token-checked HLS playlists and segments through the app, against Granian serving the
same files statically, in the same run.

* **app**: `python -m server.cli serve` (Granian, one ASGI worker, the real app) on a scratch database this script
  creates, migrates and drops. A 10 s 720p source is cut into the HLS ladder by our `hls` processor; the asset and
  rendition rows are written directly. Requests carry a playback token in the path
  (``/hls/{token}/{asset}/720p/seg_001.ts``): HMAC check, the cached asset lookup, then the bytes.
* **static**: Granian's own static file serving (``static_path_mount``, Rust, no Python per request) over the
  same storage folder, one worker.

Load comes from ``wrk`` (Debian package ``wrk``) on loopback: ``--connections`` keep-alive connections for
``--seconds`` per case; the cases alternate app/static ``--runs`` times and the medians are reported. The
machine has 2 cores shared by server and load generator, so absolute numbers are low; the ratio is the figure.

    uv run python bench/playback.py                 # 3 runs of 10 s each, 32 connections
    uv run python bench/playback.py --runs 1 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from ingest import cli, create_database, drop_database, free_port, stop, wait_listening

SECRET = "bench-playback-secret"


def serve_static(port: int, root: str) -> None:
    """Granian serving ``root`` under /static, the baseline (run in a child process)."""
    from granian import Granian
    from granian.constants import Interfaces

    Granian("playback:not_found_app", address="127.0.0.1", port=port, interface=Interfaces.ASGI, workers=1,
            static_path_route=["/static"], static_path_mount=[Path(root)], log_enabled=False).serve()


async def not_found_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def prepare(env: dict[str, str], data_dir: Path) -> tuple[str, str]:
    """Run the hls processor on a 10 s 720p source and record the asset; returns (asset id, hls folder key)."""
    from mediasvc.database import bind_tables, close_pool, engine_for, open_pool
    from mediasvc.plugins import PluginHost
    from mediasvc.settings import load_settings
    from mediasvc.tables import CORE_TABLES, Asset, Rendition, Tenant
    from tests.test_processors_hls import Ctx, make_source

    settings = load_settings(env=env)
    host = PluginHost(settings)
    storage = host.create_storage()
    source = make_source(data_dir / "source.mp4", seconds=10, width=1280, height=720)
    asset_id = uuid.uuid4()
    key = f"bench/video/{asset_id}/original.mp4"
    await storage.put(key, source.read_bytes())
    ctx = Ctx(settings, storage, key)
    ctx.asset_id = asset_id
    renditions = await host.processors["hls"].run(ctx)
    engine = engine_for(settings.database_url)
    bind_tables(engine, CORE_TABLES)
    await open_pool(engine, max_size=2)
    try:
        tenant = await Tenant.select(Tenant.id).where(Tenant.slug == "bench").first()
        await Asset(id=asset_id, tenant=tenant["id"], profile="video_response", kind="video", status="ready",
                    original_name="source.mp4", storage_key=key, bucket="video-responses").save()
        for r in renditions:
            await Rendition(asset=asset_id, kind=r.kind, name=r.name, storage_key=r.storage_key,
                            content_type=r.content_type, size_bytes=r.size_bytes).save()
    finally:
        await close_pool(engine)
        await storage.close()
    master = next(r for r in renditions if r.name == "master")
    return str(asset_id), master.storage_key.rsplit("/", 1)[0]


WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_BYTES = re.compile(r"Transfer/sec:\s+([\d.]+)([KMG]?B)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    if WRK_NON2XX.search(out):
        raise RuntimeError(f"{url} answered errors:\n{out}")
    value, unit = WRK_BYTES.search(out).groups()
    mib = float(value) * {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[unit]
    return {"rps": float(WRK_RATE.search(out).group(1)), "mib_s": mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve-static", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_static:
        serve_static(int(args.serve_static[0]), args.serve_static[1])
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install -y wrk")

    db_name = f"mediasvc_bench_playback_{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="bench-playback-"))
    database_url = asyncio.run(create_database(db_name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | {
        "MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_DATA_DIR": str(data_dir), "MEDIASVC_SECRET_KEY": SECRET,
        "MEDIASVC_STORAGE__ROOT": str(data_dir / "storage"), "MEDIASVC_LOG_LEVEL": "WARNING"}
    servers: list[subprocess.Popen[Any]] = []
    try:
        cli(env, "migrate")
        cli(env, "apikey", "create", "--tenant", "bench")
        asset_id, hls_folder = asyncio.run(prepare(env, data_dir))
        from mediasvc.delivery.tokens import issue_token
        from mediasvc.settings import load_settings

        token, _ = issue_token(load_settings(env=env), uuid.UUID(asset_id), "bench", ttl_seconds=3600)
        segment = sorted((data_dir / "storage" / hls_folder / "720p").glob("seg_*.ts"))[1]
        app_port, static_port = free_port(), free_port()
        servers.append(subprocess.Popen([sys.executable, "-m", "mediasvc.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(app_port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
        servers.append(subprocess.Popen([sys.executable, __file__, "--serve-static", str(static_port),
                                         str(data_dir / "storage")], cwd=BENCH, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        wait_listening(app_port, servers[0])
        wait_listening(static_port, servers[1])
        app_base = f"http://127.0.0.1:{app_port}/hls/{token}/{asset_id}"
        static_base = f"http://127.0.0.1:{static_port}/static/{hls_folder}"
        cases = {
            "playlist (720p/index.m3u8)": ("720p/index.m3u8",),
            f"segment ({segment.name}, {segment.stat().st_size // 1024} KiB)": (f"720p/{segment.name}",),
        }
        results: dict[str, dict[str, list[dict[str, float]]]] = {}
        for label, (path,) in cases.items():
            wrk(f"{app_base}/{path}", 2, args.connections)  # warm-up: caches, connections
            wrk(f"{static_base}/{path}", 2, args.connections)
            for _ in range(args.runs):
                for side, base in (("app", app_base), ("static", static_base)):
                    results.setdefault(label, {}).setdefault(side, []).append(
                        wrk(f"{base}/{path}", args.seconds, args.connections))
        import urllib.request

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{app_port}/metrics").read().decode()
        served = {line.split("route=")[1].split(",")[0]: line.rsplit(" ", 1)[1] for line in metrics.splitlines()
                  if line.startswith("media_http_requests_total") and "/hls/" in line}
        print("requests served, by route:", served)
        print(f"\n{args.runs} runs × {args.seconds} s, {args.connections} connections, medians\n")
        print("| request | app req/s | static req/s | app / static | app MiB/s | static MiB/s |")
        print("|---|---|---|---|---|---|")
        for label, sides in results.items():
            app_rps = statistics.median(r["rps"] for r in sides["app"])
            static_rps = statistics.median(r["rps"] for r in sides["static"])
            app_mib = statistics.median(r["mib_s"] for r in sides["app"])
            static_mib = statistics.median(r["mib_s"] for r in sides["static"])
            print(f"| {label} | {app_rps:,.0f} | {static_rps:,.0f} | {app_rps / static_rps:.2f}× | "
                  f"{app_mib:,.1f} | {static_mib:,.1f} |")
    finally:
        for server in servers:
            stop(server)
        asyncio.run(drop_database(db_name))
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
