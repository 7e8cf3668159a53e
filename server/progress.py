"""Overall progress and ETA of an asset's processing, weighted by each step's expected cost.

A processor may say what its step costs relative to the others (``cost(asset) -> float``, default 1; the video
steps use duration x pixels from ``metadata.probe``). A step's cost may depend on metadata an earlier step writes
(the probe's), so two weights are used: the estimate at upload (``cost`` on the asset without metadata), which
never changes and fixes the share of the steps whose cost the metadata changed; and the real cost, which splits
that share between them. Those steps need the step that wrote the metadata, so they are at 0 % when their cost
changes, and the overall number never goes backwards: each step's progress only rises (``StepContext.progress``
keeps the highest value) and a finished step (succeeded, failed or skipped) counts 100.

ETA: seconds per unit of cost, from the steps that ran or run (elapsed time over the cost they got done), times
the cost left; ``None`` while nothing has made measurable progress.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("mediasvc.progress")

DONE = ("succeeded", "failed", "skipped")


def step_cost(processor: Any, asset: dict[str, Any]) -> float:
    """The processor's ``cost(asset)``, 1 when it has none or it gives nothing usable (never an error)."""
    cost = getattr(processor, "cost", None)
    if cost is None:
        return 1.0
    try:
        value = float(cost(asset))
    except Exception:  # a cost is a hint: a bad one must not break the status endpoint
        log.warning("cost() of processor %r failed", getattr(processor, "name", processor), exc_info=True)
        return 1.0
    return value if math.isfinite(value) and value > 0 else 1.0


def _percent(step: dict[str, Any]) -> float:
    return 100.0 if step["status"] in DONE else max(0.0, min(100.0, step["progress"] or 0.0))


def overall(steps: list[dict[str, Any]], processors: dict[str, Any], asset: dict[str, Any]) -> float:
    """Overall progress (0-100) of the newest run of each step (``steps``: dicts with step, status, progress)."""
    if not steps:
        return 0.0
    bare = {**asset, "metadata": {}}
    estimate = [step_cost(processors.get(s["step"]), bare) for s in steps]
    real = [step_cost(processors.get(s["step"]), asset) for s in steps]
    total = sum(estimate)
    fixed = [i for i in range(len(steps)) if real[i] == estimate[i]]
    moved = [i for i in range(len(steps)) if real[i] != estimate[i]]
    done = sum(estimate[i] * _percent(steps[i]) for i in fixed) / total
    if moved:
        share = sum(estimate[i] for i in moved) / total
        done += share * sum(real[i] * _percent(steps[i]) for i in moved) / sum(real[i] for i in moved)
    return max(0.0, min(100.0, done))


def etas(steps: list[dict[str, Any]], processors: dict[str, Any], asset: dict[str, Any],
         now: datetime | None = None) -> tuple[list[float | None], float | None]:
    """Seconds left for each step and overall (``None`` when unknown). Steps that run side by side overlap: the
    overall figure assumes the rest runs one after another, so it errs long."""
    now = now or datetime.now(timezone.utc)
    costs = [step_cost(processors.get(s["step"]), asset) for s in steps]
    spent = got = 0.0
    for step, cost in zip(steps, costs):
        started, ended = step.get("started_at"), step.get("completed_at")
        if started is None or step["status"] in ("failed", "skipped"):
            continue
        elapsed = ((ended if step["status"] == "succeeded" and ended else now) - started).total_seconds()
        fraction = _percent(step) / 100
        if elapsed > 0 and fraction > 0:
            spent += elapsed
            got += cost * fraction
    per_unit = spent / got if got > 0 else None
    left: list[float | None] = []
    for step, cost in zip(steps, costs):
        if step["status"] in DONE:
            left.append(0.0)
        elif step["status"] == "running" and step.get("started_at") and (step["progress"] or 0) > 0:
            elapsed = (now - step["started_at"]).total_seconds()
            p = step["progress"] / 100
            left.append(max(0.0, elapsed * (1 - p) / p))
        elif per_unit is not None:
            left.append(cost * per_unit * (1 - _percent(step) / 100))
        else:
            left.append(None)
    if all(s["status"] in DONE for s in steps):
        return left, 0.0
    if any(v is None for v in left):
        return left, None
    running = [v for s, v in zip(steps, left) if s["status"] == "running"]
    waiting = [v for s, v in zip(steps, left) if s["status"] == "queued"]
    return left, round(max(running, default=0.0) + sum(waiting), 1)  # type: ignore[arg-type]
