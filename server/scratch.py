"""Scratch space: where processors and jobs keep temporary files (an input copy, partial outputs), always under the
data dir, never the system temp dir.

Layout: ``<data_dir>/scratch/<host>-<pid>/`` per worker process, and inside it ``step-<processing job id>/`` per
step. A step's folder is made when the step first asks for it (``scratch_dir(ctx)``) and removed when the step
ends, whatever the outcome. When a worker starts it removes the folders of this host's worker processes that are
no longer alive: what a killed worker left. Folders of live processes and of other hosts (a data dir shared over
the network) are left alone; another host clears its own when its worker starts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any
from uuid import UUID

log = logging.getLogger("mediasvc.scratch")

_OWNER = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)$")


def scratch_root(settings: Any) -> Path:
    return Path(settings.data_dir).resolve() / "scratch"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"


def process_folder(settings: Any) -> Path:
    """This process's scratch folder (not created)."""
    return scratch_root(settings) / f"{_host()}-{os.getpid()}"


def step_folder(settings: Any, job_id: UUID | str) -> Path:
    """A step's scratch folder (not created)."""
    return process_folder(settings) / f"step-{job_id}"


def scratch_dir(ctx: Any) -> Path:
    """The folder a processor (or a job) keeps its temporary files in, created if needed.

    For a processor's ``ctx`` it is the step's own folder, removed by the worker when the step ends; for a plain
    job's ``ctx`` (a dict) it is the worker process's folder: make a ``tempfile.TemporaryDirectory(dir=...)`` in
    it. Either way a killed worker's leftovers are removed when a worker starts on this host again."""
    folder = ctx.get("scratch") if isinstance(ctx, dict) else getattr(ctx, "scratch", None)
    if folder is None:
        settings = ctx["settings"] if isinstance(ctx, dict) else ctx.settings
        folder = process_folder(settings)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clear_stale_scratch(settings: Any) -> list[Path]:
    """Remove the scratch folders of this host's dead worker processes (and stray files); return what went."""
    root = scratch_root(settings)
    if not root.is_dir():
        return []
    removed = []
    host = _host()
    for entry in root.iterdir():
        owner = _OWNER.match(entry.name)
        if owner is None:
            stale = True  # not ours to keep: nothing writes there but this module's folders
        else:
            stale = owner["host"] == host and not _alive(int(owner["pid"]))
        if not stale:
            continue
        if entry.is_dir() and not entry.is_symlink():
            remove_folder(entry)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed:
        log.info("removed %d scratch folder(s) left by workers that stopped: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed
