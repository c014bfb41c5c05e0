"""Run the classic initialization experiments (presets) through a running initlab service.

Start the service first (``make run``, or ``initlab run --port N`` with ``INITLAB_REDIS_URL``
set), then::

    .venv/bin/python bench/run_presets.py --url http://127.0.0.1:8000 udacity-fashion --repeats 3
    .venv/bin/python bench/run_presets.py dlai-circles --repeats 5 --name dlai-circles-r5

For each job this script POSTs ``{"preset": NAME, ...overrides}`` to ``/v1/jobs``, follows
``/v1/jobs/{id}/events`` (Server-Sent Events) until the ``end`` event, falling back to polling
``/v1/jobs/{id}`` if the stream drops, then prints and writes, into ``--out-dir``
(default ``docs/img``):

- ``<name>.md``: a markdown table, one row per scheme in request order: label, final
  validation accuracy mean ± std (min–max), final train accuracy (mean over repeats),
  final validation loss, last-batch loss, diverged runs, seconds per run, followed by the
  service's Udacity-style lines ("After 858 Batches (2 Epochs): Validation Accuracy ...");
- ``<name>.png``: the job's ``report.png``; ``<name>.csv``: the job's ``results.csv``.

Only the standard library is used (urllib), so it also runs outside the project's venv.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"succeeded", "failed", "cancelled", "expired"}


class ServiceError(RuntimeError):
    """The service answered with an error status (the message holds its problem detail)."""


def _request(method: str, url: str, body: Any = None, timeout: float = 30.0) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload: bytes = resp.read()
            return payload
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise ServiceError(f"{method} {url} -> {exc.code}: {detail}") from None


def get_json(url: str) -> Any:
    return json.loads(_request("GET", url))


def sse_events(url: str, timeout: float) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream response, until the server closes it."""
    req = urllib.request.Request(url, headers={"accept": "text/event-stream"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        event, data = "message", list[str]()
        for raw in resp:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    yield event, json.loads("\n".join(data))
                event, data = "message", list[str]()
            elif line.startswith(":"):
                continue  # keep-alive comment
            else:
                key, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if key == "event":
                    event = value
                elif key == "data":
                    data.append(value)


def follow(base: str, job_id: str, timeout: float, quiet: bool = False) -> dict[str, Any]:
    """Follow the job's events to the end (polling if the stream drops); the final job doc."""
    deadline = time.monotonic() + timeout
    last_print = 0.0
    try:
        for event, data in sse_events(f"{base}/v1/jobs/{job_id}/events", timeout=60):
            if event == "progress" and not quiet and time.monotonic() - last_print > 5:
                last_print = time.monotonic()
                print(
                    f"  {job_id}: {data['status']} {data['runs_done']}/{data['runs_total']} "
                    f"runs ({100 * data['fraction']:.0f}%)",
                    file=sys.stderr,
                )
            if event == "end" or time.monotonic() > deadline:
                break
    except (OSError, ValueError) as exc:
        print(f"  event stream dropped ({exc}); polling", file=sys.stderr)
    while True:
        doc: dict[str, Any] = get_json(f"{base}/v1/jobs/{job_id}")
        if doc["status"] in TERMINAL:
            return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {doc['status']} after {timeout} s")
        time.sleep(1.0)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _train_accuracy(doc: dict[str, Any], scheme: int) -> float | None:
    accs = [
        r["final"]["train_accuracy"]
        for r in doc["runs"]
        if r["scheme"] == scheme and r.get("final") and r["final"].get("train_accuracy") is not None
    ]
    return sum(accs) / len(accs) if accs else None


def markdown(doc: dict[str, Any], title: str, wall_seconds: float) -> str:
    """The job's summary as a markdown table plus the service's Udacity-style lines."""
    spec = doc["spec"]
    repeats = spec.get("repeats", 1)
    lines = [
        f"### {title}",
        "",
        f"Job `{doc['id']}`: {doc['status']}, {len(doc['runs'])} runs "
        f"({len(doc['summary'])} schemes × {repeats} repeats, seed {spec.get('seed')}), "
        f"{wall_seconds:.0f} s from POST to end.",
        "",
        "| scheme | val accuracy mean ± std (min–max) | train accuracy | val loss "
        "| last-batch loss | diverged | s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in doc["summary"]:
        acc = s["final_val_accuracy"]
        std = acc["std"] if acc["std"] is not None else 0.0
        acc_cell = (
            "n/a"
            if acc["mean"] is None
            else f"{acc['mean']:.3f} ± {std:.3f} ({acc['min']:.3f}–{acc['max']:.3f})"
        )
        lines.append(
            f"| {s['label']} | {acc_cell} | {_fmt(_train_accuracy(doc, s['scheme']))} "
            f"| {_fmt(s['final_val_loss']['mean'], 4)} | {_fmt(s['last_batch_loss']['mean'], 4)} "
            f"| {s['diverged']}/{s['runs']} | {_fmt(s['seconds'], 1)} |"
        )
    lines += ["", "```"] + [s["text"] for s in doc["summary"]] + ["```", ""]
    return "\n".join(lines)


def run_one(args: argparse.Namespace, preset: str) -> str:
    base = args.url.rstrip("/")
    body: dict[str, Any] = {"preset": preset, **json.loads(args.override or "{}")}
    if args.repeats is not None:
        body["repeats"] = args.repeats
    if args.seed is not None:
        body["seed"] = args.seed
    name = args.name or preset
    started = time.monotonic()
    job = json.loads(_request("POST", f"{base}/v1/jobs", body))
    print(f"{name}: POST {json.dumps(body)} -> {job['id']}", file=sys.stderr)
    doc = follow(base, job["id"], args.timeout, args.quiet)
    wall = time.monotonic() - started
    if doc["status"] != "succeeded":
        raise ServiceError(f"job {job['id']} ended {doc['status']}: {doc.get('error')}")
    text = markdown(doc, name, wall)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.png").write_bytes(_request("GET", f"{base}/v1/jobs/{job['id']}/report.png"))
    (out / f"{name}.csv").write_bytes(_request("GET", f"{base}/v1/jobs/{job['id']}/results.csv"))
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="+", help="preset names (GET /v1/presets)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    parser.add_argument("--repeats", type=int, default=None, help="override the repeats")
    parser.add_argument("--seed", type=int, default=None, help="override the base seed")
    parser.add_argument("--override", default=None, help="JSON deep-merged over the preset")
    parser.add_argument("--name", default=None, help="output name (default: the preset name)")
    parser.add_argument("--out-dir", default=str(ROOT / "docs" / "img"), help="output folder")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per job")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.name and len(args.presets) > 1:
        parser.error("--name needs exactly one preset")
    try:
        for preset in args.presets:
            print(run_one(args, preset))
    except (ServiceError, TimeoutError, urllib.error.URLError) as exc:
        print(f"run_presets: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
