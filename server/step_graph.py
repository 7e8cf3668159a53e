"""The steps of an asset as a graph: which waiting steps may start, which can never run.

A processor names the steps it needs (``needs``, a class attribute); a need that is not among the asset's steps is
ignored. A processor without ``needs`` keeps the old list semantics: it needs every step before it in the profile.
A step may start when each need it has is ``succeeded`` or ``skipped`` (a skipped step, say one with no installed
processor, never blocked the steps after it). A step whose need ``failed`` can never run, and neither can the
steps that need it, transitively. Pure functions over the newest row of each step; ``mediasvc.processing`` does
the writes.
"""

from __future__ import annotations

from typing import Any

MET = ("succeeded", "skipped")


def newest_runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest row of each step (a reprocess adds rows), in the order the steps were created (profile order)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["created_at"], str(r["id"]))):
        latest.pop(row["step"], None)
        latest[row["step"]] = row
    return sorted(latest.values(), key=lambda r: (r["created_at"], str(r["id"])))


def needs_of(processors: dict[str, Any], step: str, order: list[str]) -> frozenset[str]:
    """The steps ``step`` waits for, among ``order`` (the asset's steps)."""
    declared = getattr(processors.get(step), "needs", None)
    if declared is None:  # undeclared: the old list order
        return frozenset(order[:order.index(step)])
    return frozenset(declared) & frozenset(order) - {step}


def doomed(runs: list[dict[str, Any]], processors: dict[str, Any]) -> dict[str, str]:
    """Waiting steps that can never run: ``{step: the failed step it (transitively) needs}``."""
    order = [r["step"] for r in runs]
    status = {r["step"]: r["status"] for r in runs}
    cause: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for step in order:
            if status[step] != "queued" or step in cause:
                continue
            for need in sorted(needs_of(processors, step, order)):
                if status[need] == "failed" or need in cause:
                    cause[step] = cause.get(need, need)
                    changed = True
                    break
    return cause


def runnable(runs: list[dict[str, Any]], processors: dict[str, Any]) -> list[dict[str, Any]]:
    """Waiting steps whose needs are all met, in profile order."""
    order = [r["step"] for r in runs]
    status = {r["step"]: r["status"] for r in runs}
    return [r for r in runs if r["status"] == "queued" and r["step"] in processors
            and all(status[n] in MET for n in needs_of(processors, r["step"], order))]
