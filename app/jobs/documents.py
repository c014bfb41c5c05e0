"""The api.md job document, built from the raw Redis hashes and lists: runs, progress and the
per-scheme summary. Pure functions of what was read (no Redis here).

Progress (the job document's and every SSE ``progress`` event's): ``runs_done`` counts runs
that finished (succeeded, diverged or failed), ``runs_cancelled`` the runs a cancel stopped;
``fraction`` is the work done: finished runs count whole, running and cancelled runs by the
batches they ran. A succeeded or failed job reads 1.0; a cancelled one reads what it did
before the cancel, never 1.0 unless every run had finished.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from app.jobs.status import JobStatus, RunStatus

# Runs counted in runs_done: finished by themselves (not by a cancel).
_DONE = frozenset({RunStatus.SUCCEEDED, RunStatus.DIVERGED, RunStatus.FAILED})
# Runs whose batches so far count as part of the work done.
_PARTIAL = frozenset({RunStatus.RUNNING, RunStatus.CANCELLED})
_COMPLETE = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED})


def iso(ts: bytes | str | float | None) -> str | None:
    """A Unix time as ISO 8601 UTC (``...Z``); None for a missing one."""
    if ts in (None, b"", ""):
        return None
    value = float(ts)
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def finite(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def stats(values: Sequence[float | None]) -> dict[str, float | None]:
    """mean / std (population) / min / max over the finite values; all None if there are none."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return {"mean": None, "std": None, "min": None, "max": None}
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    return {"mean": mean, "std": math.sqrt(var), "min": min(xs), "max": max(xs)}


def progress(
    status: str, runs: Sequence[Mapping[str, Any]], started: float | None, now: float
) -> dict[str, Any]:
    """``{runs_total, runs_done, runs_cancelled, fraction, eta_seconds}`` of a job in
    ``status`` whose runs (``status``, ``batch``, ``total_batches`` each) are ``runs``;
    ``started`` is when the job started running (Unix time, None before)."""
    total = len(runs)
    done = sum(1 for run in runs if run["status"] in _DONE)
    cancelled = sum(1 for run in runs if run["status"] == RunStatus.CANCELLED)
    if status in _COMPLETE:
        fraction = 1.0
    else:
        partial = sum(
            min(1.0, run["batch"] / run["total_batches"])
            for run in runs
            if run["status"] in _PARTIAL and run["total_batches"]
        )
        fraction = min(1.0, (done + partial) / total) if total else 0.0
    eta = None
    if status == JobStatus.RUNNING and started is not None and fraction > 0:
        eta = round(max(0.0, (now - started) * (1.0 - fraction) / fraction), 1)
    return {
        "runs_total": total,
        "runs_done": done,
        "runs_cancelled": cancelled,
        "fraction": round(fraction, 4),
        "eta_seconds": eta,
    }


def run_doc(
    index: int,
    raw: Mapping[bytes, bytes],
    chunks: Iterable[bytes] = (),
    epochs: Iterable[bytes] = (),
    diagnostics: Iterable[bytes] = (),
    *,
    with_curves: bool = True,
) -> dict:
    """One run of the job document, from its hash (and, ``with_curves``, its lists)."""
    g = {k.decode(): v.decode() for k, v in raw.items()}
    steps: list[int] = []
    losses: list[float | None] = []
    for chunk in chunks:
        for step, loss in orjson.loads(chunk):
            steps.append(step)
            losses.append(loss)
    status = g.get("status", RunStatus.QUEUED)
    doc: dict[str, Any] = {
        "index": index,
        "scheme": int(g.get("scheme", 0)),
        "label": g.get("label"),
        "initializer": g.get("initializer") or None,
        "repeat": int(g.get("repeat", 0)),
        "seed": int(g.get("seed", 0)),
        "status": status,
        "epoch": int(g.get("epoch") or 0),
        "batch": int(g.get("batch") or 0),
        "total_batches": int(g.get("total_batches") or 0),
        "diverged": status == RunStatus.DIVERGED,
        "attempt": int(g.get("attempt") or 0),
        "requeues": int(g.get("requeues") or 0),
        # Where this attempt resumed from (its checkpoint), None if it started from zero.
        "resumed_from_step": int(g["resumed_from_step"]) if g.get("resumed_from_step") else None,
        "resumed_from_epoch": (
            int(g["resumed_from_epoch"]) if g.get("resumed_from_epoch") else None
        ),
        "checkpoint_step": int(g["checkpoint_step"]) if g.get("checkpoint_step") else None,
        "checkpoint_bytes": int(g["checkpoint_bytes"]) if g.get("checkpoint_bytes") else None,
        "checkpoint_skipped": g.get("checkpoint_skipped") or None,
        "worker": g.get("worker") or None,
        "started_at": iso(g.get("started_at")),
        "finished_at": iso(g.get("finished_at")),
        "seconds": finite(g["seconds"]) if g.get("seconds") else None,
        "last_batch_loss": finite(g["last_batch_loss"]) if g.get("last_batch_loss") else None,
        "final": orjson.loads(g.get("final") or "null"),
        "error": g.get("error") or None,
    }
    if with_curves:
        doc["batch_losses"] = losses
        doc["batch_steps"] = steps
        doc["epochs"] = [orjson.loads(e) for e in epochs]
        doc["diagnostics"] = dict(orjson.loads(d) for d in diagnostics)
        # Runs recorded before the append-only lists kept them in the hash.
        if not doc["epochs"] and g.get("epochs"):
            doc["epochs"] = orjson.loads(g["epochs"])
        if not doc["diagnostics"] and g.get("diagnostics"):
            doc["diagnostics"] = orjson.loads(g["diagnostics"])
    return doc


def job_doc(
    job_id: str, raw: Mapping[bytes, bytes], runs: list[dict], *, include_runs: bool, now: float
) -> dict:
    """The api.md job document from the job's hash and its run documents."""
    g = {k.decode(): v for k, v in raw.items()}
    spec = orjson.loads(g["spec"])
    status = g["status"].decode()
    started = float(g["started_at"]) if g.get("started_at") else None
    doc: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "created_at": iso(g.get("created_at")),
        "started_at": iso(g.get("started_at")),
        "finished_at": iso(g.get("finished_at")),
        "progress": progress(status, runs, started, now),
        "spec": spec,
        "error": g.get("error", b"").decode() or None,
        "links": {
            "self": f"/v1/jobs/{job_id}",
            "events": f"/v1/jobs/{job_id}/events",
            "report_png": f"/v1/jobs/{job_id}/report.png",
            "report_svg": f"/v1/jobs/{job_id}/report.svg",
            "results_csv": f"/v1/jobs/{job_id}/results.csv",
        },
    }
    if include_runs:
        doc["runs"] = runs
    # The summary needs no curves: the jobs list carries it too (best accuracy per job).
    doc["summary"] = summarize(spec, runs)
    return doc


def summarize(spec: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> list[dict]:
    """One entry per scheme, in request order, over its finished repeats."""
    schemes = spec.get("schemes") or []
    out = []
    for s_index, scheme in enumerate(schemes):
        mine = [r for r in runs if r["scheme"] == s_index]
        finished = [r for r in mine if r["status"] in (RunStatus.SUCCEEDED, RunStatus.DIVERGED)]
        val_acc, val_loss = [], []
        for r in finished:
            final = r.get("final") or {}
            val_acc.append(finite(final.get("val_accuracy")))
            val_loss.append(finite(final.get("val_loss")))
        last = [r.get("last_batch_loss") for r in finished]
        seconds = [r["seconds"] for r in finished if r.get("seconds") is not None]
        diverged = sum(1 for r in mine if r["status"] == RunStatus.DIVERGED)
        entry: dict[str, Any] = {
            "scheme": s_index,
            "label": scheme.get("label"),
            "initializer": (mine[0].get("initializer") if mine else None),
            "runs": len(mine),
            "runs_finished": len(finished),
            "final_val_accuracy": stats(val_acc),
            "final_val_loss": stats(val_loss),
            "last_batch_loss": stats(last),
            "diverged": diverged,
            "seconds": stats(seconds)["mean"],
        }
        entry["text"] = _summary_line(entry, finished)
        out.append(entry)
    return out


def _summary_line(entry: Mapping[str, Any], finished: Sequence[Mapping[str, Any]]) -> str:
    """The Udacity helper's line: "After 858 Batches (2 Epochs): Validation Accuracy ..."."""
    batches = max((int(r.get("batch") or 0) for r in finished), default=0)
    epochs = max((int(r["epochs"][-1]["epoch"]) for r in finished if r.get("epochs")), default=0)
    if not epochs:
        epochs = max((int(r.get("epoch") or 0) for r in finished), default=0)
    acc = entry["final_val_accuracy"]["mean"]
    loss = entry["final_val_loss"]["mean"]
    acc_s = "n/a" if acc is None else f"{acc:.3f}"
    loss_s = "n/a" if loss is None else f"{loss:.4f}"
    line = (
        f"{entry['label']}: After {batches} Batches ({epochs} Epochs): "
        f"Validation Accuracy (mean) {acc_s} Loss {loss_s}"
    )
    if entry["diverged"]:
        line += f" ({entry['diverged']} diverged)"
    return line
