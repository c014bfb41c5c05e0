"""The client commands of ``initlab`` (``jobs``, ``tensors``, ``initializers``, ``datasets``,
``presets``, ``models``): each takes the parsed arguments and returns an exit code."""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from app.client import Client, render
from app.client.exit_codes import ExitCode
from app.client.jobs import merge
from app.client.resources import MODEL_ARTIFACTS
from app.client.tensors import format_for
from app.client.types import Job


@dataclass
class Output:
    """stdout for results (a table, or JSON with ``--json``), stderr for everything else."""

    json: bool
    out: Console
    err: Console

    def doc(self, doc: Any) -> None:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        sys.stdout.flush()

    def say(self, message: str) -> None:
        self.err.print(f"initlab: {message}", highlight=False, markup=False)


Handler = Callable[[Client, argparse.Namespace, Output], int]

# A finished job's status → the exit code of a command that waited for it.
JOB_EXIT = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.JOB_FAILED,
    "cancelled": ExitCode.JOB_CANCELLED,
}


def _json_arg(text: str) -> Any:
    """A value given on the command line: JSON if it parses, else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_sets(items: list[str], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``--set`` items as overrides of ``base`` (the spec they apply to: the spec file and/or
    the preset's body): ``["repeats=3", "training.epochs=1"]`` → ``{"repeats": 3, "training":
    {"epochs": 1}}``. A number in the path indexes a list of the spec
    (``schemes.0.initializer=he_normal``): the overrides then carry that list whole with the
    item changed, as lists are replaced whole when merged. An index into a list the spec does
    not have, or past its end, is an ``ArgumentTypeError`` naming the item."""
    out: dict[str, Any] = {}
    for item in items:
        path, sep, value = item.partition("=")
        keys = path.split(".")
        if not sep or not all(keys):
            raise argparse.ArgumentTypeError(f"--set takes key.path=value, not {item!r}")
        out = _with(out, merge(base or {}, out), keys, _json_arg(value), item, [])
    return out


def _is_index(key: str) -> bool:
    return key.isascii() and key.isdigit()


def _with(over: Any, current: Any, keys: list[str], value: Any, item: str, at: list[str]) -> Any:
    """``over`` (the overrides at path ``at``) with ``value`` set at ``keys`` below it;
    ``current`` is what the job holds there (the spec with the overrides so far)."""
    if not keys:
        return value
    key, rest = keys[0], keys[1:]
    where = ".".join(at) or "the spec"
    if isinstance(current, list):
        if not _is_index(key) or int(key) >= len(current):
            span = f"0-{len(current) - 1}" if current else "none"
            raise argparse.ArgumentTypeError(
                f"--set {item!r}: {where} is a list of {len(current)} items (indexes {span}), "
                f"not {key!r}"
            )
        items = copy.deepcopy(current)
        index = int(key)
        items[index] = _with(items[index], items[index], rest, value, item, [*at, key])
        return items
    if _is_index(key) and not isinstance(current, Mapping):
        raise argparse.ArgumentTypeError(
            f"--set {item!r}: {key} indexes a list, but {where} is not a list in the spec; "
            f"give the list whole instead (--set '{where}=[...]')"
        )
    out = dict(over) if isinstance(over, Mapping) else {}
    below = current.get(key) if isinstance(current, Mapping) else None
    out[key] = _with(out.get(key), below, rest, value, item, [*at, key])
    return out


def _indexes_lists(items: list[str]) -> bool:
    """Whether some ``--set`` path has a list index (then the preset's body is needed)."""
    return any(_is_index(key) for item in items for key in item.partition("=")[0].split("."))


def _read_json(path: str, what: str) -> Any:
    """The JSON document in file ``path`` (``-``: stdin); a ValueError naming ``what`` and
    where it came from if it does not parse."""
    source = "stdin" if path == "-" else path
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the {what} in {source} is not valid JSON: {exc}") from None


# --- jobs -------------------------------------------------------------------------------------


def watch(client: Client, job_id: str, o: Output) -> int:
    """Follow a job to its end (bars per run on stderr), then its summary table on stdout (or
    the job as JSON); the exit code says how it ended. Ctrl-C leaves the job running."""
    try:
        job = client.jobs.get(job_id)
        if not job.finished:
            job = client.jobs.wait(job_id) if o.json else _follow(client, job, o)
    except KeyboardInterrupt:
        o.say(
            f"stopped watching; job {job_id} is still running on the server "
            f"(`initlab jobs watch {job_id}` follows it again, `initlab jobs cancel {job_id}` "
            "stops it)"
        )
        return ExitCode.INTERRUPTED
    _finished(job, o)
    return JOB_EXIT.get(job.status, ExitCode.ERROR)


def _follow(client: Client, job: Job, o: Output) -> Job:
    # The server's progress events carry every run whose status or position changed, and
    # never move a run back when the stream replays the job's history.
    with render.RunBars(o.err, job) as bars:
        for event in client.jobs.events(job.id):
            if event.event == "progress":
                for run in event.data.get("runs") or []:
                    bars.update(run)
        job = client.jobs.get(job.id)
        if not job.finished:  # the stream ended early (the job store went away): poll
            job = client.jobs.wait(job.id)
        for run in job.runs:
            bars.update(render.run_position(run))
    return job


def _finished(job: Job, o: Output) -> None:
    if o.json:
        o.doc(job.raw)
        return
    if job.summary:
        o.out.print(render.summary_table(job))
    o.say(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))


def jobs_submit(client: Client, args: argparse.Namespace, o: Output) -> int:
    spec = _read_json(args.spec, "job spec") if args.spec else None
    if spec is None and args.preset is None:
        raise argparse.ArgumentTypeError("give a spec file (or -) or --preset")
    if spec is not None and not isinstance(spec, Mapping):
        source = "stdin" if args.spec == "-" else args.spec
        raise ValueError(f"the job spec in {source} must be a JSON object")
    base = spec
    if args.preset is not None and _indexes_lists(args.set):
        # The server merges the spec over the preset: a list index needs that body's lists.
        base = merge(client.presets.get(args.preset).body, spec or {})
    job = client.jobs.submit(
        spec, preset=args.preset, overrides=parse_sets(args.set, base), idempotency_key=args.key
    )
    if args.watch:
        o.say(f"submitted {job.id} ({job.progress.runs_total} runs); Ctrl-C stops watching")
        return watch(client, job.id, o)
    if o.json:
        o.doc(job.raw)
    else:
        o.out.print(job.id)
        o.say(f"submitted {job.id} ({job.progress.runs_total} runs, {job.status})")
    return ExitCode.OK


def jobs_watch(client: Client, args: argparse.Namespace, o: Output) -> int:
    return watch(client, args.id, o)


def jobs_list(client: Client, args: argparse.Namespace, o: Output) -> int:
    if args.all:
        jobs = list(client.jobs.iter(args.limit, status=args.status))
        cursor = None
    else:
        page = client.jobs.list(args.limit, args.cursor, status=args.status)
        jobs, cursor = page.jobs, page.next_cursor
    if o.json:
        o.doc({"jobs": [j.raw for j in jobs], "next_cursor": cursor})
        return ExitCode.OK
    o.out.print(render.jobs_table(jobs))
    if cursor:
        again = "".join(f" --status {s}" for s in args.status or [])
        again += f" --limit {args.limit}"  # the same page size
        o.say(f"more: initlab jobs list{again} --cursor {cursor}")
    return ExitCode.OK


def jobs_show(client: Client, args: argparse.Namespace, o: Output) -> int:
    job = client.jobs.get(args.id)
    if o.json:
        o.doc(job.raw)
    else:
        render.show_job(o.out, job)
    return ExitCode.OK


def jobs_cancel(client: Client, args: argparse.Namespace, o: Output) -> int:
    job = client.jobs.cancel(args.id)
    if o.json:
        o.doc(job.raw)
    else:
        o.say(f"job {job.id} {job.status}")
    return ExitCode.OK


REPORT_FORMATS = {".png": "png", ".svg": "svg", ".csv": "csv"}


def jobs_report(client: Client, args: argparse.Namespace, o: Output) -> int:
    fmt = args.format or REPORT_FORMATS.get(Path(args.output or "").suffix, "csv")
    if fmt in ("png", "svg"):
        data = client.jobs.report(args.id, fmt)
    else:
        kind = "summary" if fmt == "summary-csv" else "runs"
        data = client.jobs.results_csv(args.id, kind).encode()
    return _write(data, args.output, o, f"{fmt} report of {args.id}")


def _write(data: bytes, output: str | None, o: Output, what: str) -> int:
    if output is None or output == "-":
        if sys.stdout.isatty() and b"\0" in data[:1024]:
            o.say(f"{what} is binary: give -o FILE")
            return ExitCode.USAGE
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return ExitCode.OK
    Path(output).write_bytes(data)
    o.say(f"wrote {output} ({len(data)} bytes, {what})")
    return ExitCode.OK


# --- tensors, catalog, datasets, presets, models ------------------------------------------------


def tensors_get(client: Client, args: argparse.Namespace, o: Output) -> int:
    options: dict[str, Any] = {
        "seed": args.seed,
        "dtype": args.dtype,
        "layout": args.layout,
        "fan_in": args.fan_in,
        "fan_out": args.fan_out,
        "compat": args.compat,
    }
    initializer = (
        _json_arg(args.initializer) if args.initializer.startswith("{") else args.initializer
    )
    if args.output:
        fmt = args.format or format_for(args.output)
        response = client.tensors.fetch(args.shape, initializer, format=fmt, **options)
        meta = {
            "file": args.output,
            "format": fmt,
            "shape": args.shape,
            "dtype": response.headers.get("x-tensor-dtype", args.dtype),
            "seed": int(response.headers["x-seed"]) if "x-seed" in response.headers else None,
            "initializer": json.loads(response.headers.get("x-initializer", "null")),
        }
        Path(args.output).write_bytes(response.content)
    else:
        tensor = client.tensors.get(args.shape, initializer, **options)
        values = tensor.array.astype(np.float64)
        meta = {
            "shape": list(tensor.array.shape),
            "dtype": args.dtype,
            "seed": tensor.seed,
            "initializer": tensor.initializer,
            "fan_in": tensor.fan_in,
            "fan_out": tensor.fan_out,
            "stats": {
                "mean": float(values.mean()) if values.size else None,
                "std": float(values.std()) if values.size else None,
                "min": float(values.min()) if values.size else None,
                "max": float(values.max()) if values.size else None,
            },
        }
    if o.json:
        o.doc(meta)
    else:
        for key, value in meta.items():
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            o.out.print(f"{key}: {shown}", highlight=False, markup=False)
    return ExitCode.OK


def initializers(client: Client, args: argparse.Namespace, o: Output) -> int:
    if args.name:
        entry = client.initializers.get(args.name)
        if o.json:
            o.doc(entry.raw)
        else:
            render.show_initializer(o.out, entry)
        return ExitCode.OK
    entries = client.initializers.list()
    if o.json:
        o.doc({"initializers": [e.raw for e in entries]})
    else:
        o.out.print(render.initializers_table(entries))
    return ExitCode.OK


def datasets_list(client: Client, args: argparse.Namespace, o: Output) -> int:
    entries = client.datasets.list()
    if o.json:
        o.doc({"datasets": [d.raw for d in entries]})
    else:
        o.out.print(render.datasets_table(entries))
    return ExitCode.OK


def datasets_upload(client: Client, args: argparse.Namespace, o: Output) -> int:
    upload = client.datasets.upload(args.file, name=args.name, task=args.task)
    if o.json:
        o.doc(upload.raw)
    else:
        o.out.print(upload.id)
        o.say(
            f"uploaded {args.file} as {upload.id} ({upload.task}, {upload.n_train} training rows);"
            f' use it in a job as "dataset": {json.dumps(upload.ref)}'
        )
    return ExitCode.OK


def datasets_delete(client: Client, args: argparse.Namespace, o: Output) -> int:
    client.datasets.delete(args.id)
    o.say(f"deleted {args.id}")
    return ExitCode.OK


def presets(client: Client, args: argparse.Namespace, o: Output) -> int:
    entries = [client.presets.get(args.name)] if args.name else client.presets.list()
    if o.json:
        o.doc(entries[0].raw if args.name else {"presets": [p.raw for p in entries]})
        return ExitCode.OK
    for p in entries:
        o.out.print(f"[bold]{p.name}[/bold] ({p.runs} runs): {p.description}")
        if args.name:
            o.out.print_json(json.dumps(p.body))
    return ExitCode.OK


def models_create(client: Client, args: argparse.Namespace, o: Output) -> int:
    model = client.models.create(_read_json(args.spec, "model spec"))
    if o.json:
        o.doc(model.raw)
        return ExitCode.OK
    o.out.print(model.id)
    for w in model.weights:
        init = (w.initializer or {}).get("class_name", "")
        o.out.print(f"  {w.name} {tuple(w.shape)} {w.dtype} {init}", highlight=False, markup=False)
    return ExitCode.OK


def models_download(client: Client, args: argparse.Namespace, o: Output) -> int:
    artifact = args.artifact or next(
        (a for a in MODEL_ARTIFACTS if a.endswith(Path(args.output).suffix or "-")), None
    )
    if artifact is None:
        o.say(f"cannot tell the artifact from {args.output!r}: give --artifact")
        return ExitCode.USAGE
    return _write(client.models.download(args.id, artifact), args.output, o, artifact)
