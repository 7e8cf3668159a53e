"""Ingest throughput: a 1 GiB upload through tus into the local backend, against a bare Granian handler.

Every server runs the same way, a Granian process with one ASGI worker (what `mediasvc serve` starts):

* **tus**: `python -m server.cli serve`, the real app, on a scratch database this script creates, migrates and
  drops. The upload is a POST (creation) and PATCHes of ``--chunk-mib`` MiB; the last PATCH includes
  completion (sniffing, the sha256 of the whole file, the asset row, the event and the queued processing).
  The asset's sha256 is checked against the source.
* **bare**: a tiny ASGI app in this file that appends each request body to one file and fsyncs it, with the
  same requests (the same chunks, the same fsync per chunk: the durability tus promises before the offset
  moves).
* **bare_sha256**: the same handler that also keeps a running sha256 of what it receives, the one piece of
  work an upload path that records a checksum cannot skip; it tells the protocol's cost apart from the hash's.

The client sends each body with ``sendfile`` from the source file over one keep-alive loopback connection, so
it costs little CPU. Two layouts: the data directory on disk and on tmpfs (``/dev/shm``), where fsync is free
and the figures show the servers' own CPU cost. Peak RSS is VmHWM of the Granian worker process (the one that
runs the app; the Granian parent is reported too), CPU is the worker's user + system time during the upload.

    uv run python bench/ingest.py                  # 1 GiB, 64 MiB chunks, 3 runs per case, disk and tmpfs
    uv run python bench/ingest.py --size-mib 256 --runs 1 --layouts tmpfs
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
PG_ADMIN_URL = os.environ.get("MEDIASVC_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


_BARE_SHA = hashlib.sha256()

# --- the bare handler (imported by its Granian worker as ``ingest:bare_app``) -------------------------------


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Append the request body to ``$BENCH_BARE_FILE``, fsync, answer 204. With ``$BENCH_BARE_SHA256`` set,
    also keep a running sha256 of everything received (the one piece of work tus must do that a bare sink need
    not)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    received = 0
    sha = _BARE_SHA if os.environ.get("BENCH_BARE_SHA256") else None
    with open(os.environ["BENCH_BARE_FILE"], "ab") as f:
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            f.write(body)
            if sha is not None:
                sha.update(body)
            received += len(body)
            more = message.get("more_body", False)
        f.flush()
        os.fsync(f.fileno())
    offset = str(os.path.getsize(os.environ["BENCH_BARE_FILE"])).encode()
    await send({"type": "http.response.start", "status": 204, "headers": [(b"upload-offset", offset)]})
    await send({"type": "http.response.body", "body": b""})


def serve_bare(port: int) -> None:
    """Run ``bare_app`` the way `mediasvc serve` runs the app: ``Granian(target, workers=1)``."""
    from granian import Granian
    from granian.constants import Interfaces

    Granian("ingest:bare_app", address="127.0.0.1", port=port, interface=Interfaces.ASGI, workers=1).serve()


# --- a minimal HTTP/1.1 client that sends bodies with sendfile ----------------------------------------------


class Client:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def request(self, method: str, path: str, headers: dict[str, str],
                body: tuple[Any, int, int] | None = None) -> tuple[int, dict[str, str], bytes]:
        size = body[2] if body else 0
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", f"Content-Length: {size}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if body:
            file, offset, count = body
            sent = 0
            while sent < count:
                sent += self.sock.sendfile(file, offset + sent, count - sent)
        return self._response()

    def _response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._recv()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._recv()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def _recv(self) -> None:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


# --- processes ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}: {output}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- one measured upload ------------------------------------------------------------------------------------


def run_case(kind: str, source: Path, chunk: int, data_dir: Path, env: dict[str, str], key: str,
             source_sha: str) -> dict[str, Any]:
    port = free_port()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    if kind.startswith("bare"):
        target = data_dir / "upload.bin"
        proc_env = {**env, "BENCH_BARE_FILE": str(target), "PYTHONPATH": str(ROOT / "bench")}
        if kind == "bare_sha256":
            proc_env["BENCH_BARE_SHA256"] = "1"
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-bare", str(port)]
    else:
        proc_env = {**env, "MEDIASVC_DATA_DIR": str(data_dir),
                    "MEDIASVC_STORAGE__ROOT": str(data_dir / "storage")}
        command = [sys.executable, "-m", "mediasvc.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=proc_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_listening(port, process)
        workers = children(process.pid)
        time.sleep(0.5)
        idle_rss = max(status_kib(pid, "VmRSS") for pid in workers)
        cpu_before = sum(cpu_seconds(pid) for pid in workers)
        size = source.stat().st_size
        client = Client(port)
        with open(source, "rb") as f:
            started = time.perf_counter()
            if kind.startswith("bare"):
                path, offset = "/", 0
                base_headers: dict[str, str] = {"Content-Type": "application/offset+octet-stream"}
            else:
                meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                                for k, v in {"filename": "bench.mp4", "profile": "bench_video"}.items())
                status, headers, body = client.request("POST", "/api/v1/tus/", {
                    "Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0", "Upload-Length": str(size),
                    "Upload-Metadata": meta})
                assert status == 201, (status, body)
                path = headers["location"].split(f":{port}", 1)[1]
                offset = 0
                base_headers = {"Authorization": f"Bearer {key}", "Tus-Resumable": "1.0.0",
                                "Content-Type": "application/offset+octet-stream"}
            while offset < size:
                count = min(chunk, size - offset)
                status, headers, body = client.request(
                    "PATCH", path, {**base_headers, "Upload-Offset": str(offset)}, (f, offset, count))
                assert status == 204, (status, body[:300])
                offset += count
                assert int(headers["upload-offset"]) == offset
            elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid in workers) - cpu_before
        result: dict[str, Any] = {"seconds": round(elapsed, 3), "mib_per_s": round(size / MIB / elapsed, 1),
                                  "worker_cpu_s": round(cpu, 2)}
        if kind == "tus":
            asset_id = headers["mediasvc-asset-id"]
            status, _, body = client.request("GET", f"/api/v1/assets/{asset_id}",
                                             {"Authorization": f"Bearer {key}"})
            assert status == 200 and json.loads(body)["sha256"] == source_sha, "stored sha256 differs"
        else:
            assert target.stat().st_size == size
        client.close()
        result["idle_rss_mib_worker"] = round(idle_rss / 1024, 1)
        result["peak_rss_mib_worker"] = round(max(status_kib(pid, "VmHWM") for pid in workers) / 1024, 1)
        result["peak_rss_mib_main"] = round(status_kib(process.pid, "VmHWM") / 1024, 1)
        return result
    finally:
        stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- setup --------------------------------------------------------------------------------------------------


def make_source(path: Path, size: int) -> str:
    """A real MP4 (PyAV) padded with a ``free`` box of random bytes to ``size``; returns its sha256."""
    import io

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame(64, 64, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 20 % 256]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    head = buffer.getvalue()
    pad = size - len(head) - 16
    sha = hashlib.sha256()
    with open(path, "wb") as f:
        box = head + struct.pack(">I", 1) + b"free" + struct.pack(">Q", pad + 16)  # 64-bit box size
        f.write(box)
        sha.update(box)
        left = pad
        while left:
            block = os.urandom(min(left, 16 * MIB))
            f.write(block)
            sha.update(block)
            left -= len(block)
    return sha.hexdigest()


async def create_database(name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "mediasvc.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"mediasvc {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--chunk-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--queue-url", default="",
                        help="MEDIASVC_QUEUE__URL for the tus server (default: the scratch database)")
    parser.add_argument("--layouts", default="disk,tmpfs", help="comma-separated: disk, tmpfs")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return

    name = f"mediasvc_bench_{secrets.token_hex(4)}"
    database_url = asyncio.run(create_database(name))
    scratch = Path(tempfile.mkdtemp(prefix="mediasvc-bench-ingest-"))
    try:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
        profile = {"kind": "video", "formats": ["mp4"], "max_bytes": 8 * 1024 * MIB, "bucket": "bench",
                   "steps": []}
        env = {
            **base_env, "MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__NAME": name,
            "MEDIASVC_SECRET_KEY": secrets.token_urlsafe(32), "MEDIASVC_LOG_LEVEL": "WARNING",
            "MEDIASVC_PROFILES": json.dumps({"bench_video": profile}),
        }
        if args.queue_url:  # (an empty MEDIASVC_ value does not parse: leave it out for the default)
            env["MEDIASVC_QUEUE__URL"] = args.queue_url
        cli(env, "migrate")
        key = cli(env, "apikey", "create", "--tenant", "bench")
        source = scratch / "source.mp4"
        size = args.size_mib * MIB
        print(f"writing a {args.size_mib} MiB source file...", file=sys.stderr)
        source_sha = make_source(source, size)
        layouts = {"disk": scratch / "data", "tmpfs": Path("/dev/shm") / f"{name}-data"}
        report: dict[str, Any] = {"size_mib": args.size_mib, "chunk_mib": args.chunk_mib, "runs": args.runs,
                                  "cpus": os.cpu_count(), "python": sys.version.split()[0], "cases": {}}
        for layout in args.layouts.split(","):
            data_dir = layouts[layout]
            results: dict[str, list[dict[str, Any]]] = {"bare": [], "bare_sha256": [], "tus": []}
            for run in range(args.runs):
                for kind in results:  # alternate, so drift (page cache, disk, neighbours) hits all alike
                    result = run_case(kind, source, args.chunk_mib * MIB, data_dir, env, key, source_sha)
                    results[kind].append(result)
                    print(f"{layout} run {run + 1} {kind}: {result}", file=sys.stderr)
            summary: dict[str, Any] = {kind: {
                "mib_per_s_median": statistics.median(r["mib_per_s"] for r in rs),
                "mib_per_s_all": [r["mib_per_s"] for r in rs],
                "worker_cpu_s_median": statistics.median(r["worker_cpu_s"] for r in rs),
                "idle_rss_mib_worker_max": max(r["idle_rss_mib_worker"] for r in rs),
                "peak_rss_mib_worker_max": max(r["peak_rss_mib_worker"] for r in rs),
                "peak_rss_mib_main_max": max(r["peak_rss_mib_main"] for r in rs),
            } for kind, rs in results.items()}
            for baseline in ("bare", "bare_sha256"):
                summary[f"ratio_tus_to_{baseline}"] = round(summary["tus"]["mib_per_s_median"]
                                                            / summary[baseline]["mib_per_s_median"], 3)
            report["cases"][layout] = summary
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        asyncio.run(drop_database(name))


if __name__ == "__main__":
    main()
