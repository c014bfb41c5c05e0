"""What the CLI shows people (rich): tables of jobs, runs, summaries, initializers, datasets,
and the live progress bars of a watched job. Machine output (``--json``) does not come here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.client.types import Dataset, Initializer, Job, Run, Stats

# Run statuses whose bar is full (the run trained every batch it was going to).
_COMPLETE = frozenset({"succeeded", "diverged"})


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _mean_std(stats: Stats, digits: int = 3) -> str:
    if stats.mean is None:
        return "–"
    return f"{stats.mean:.{digits}f} ± {_num(stats.std, digits)}"


def _range(stats: Stats, digits: int = 3) -> str:
    return f"{_num(stats.min, digits)}–{_num(stats.max, digits)}"


def summary_table(job: Job) -> Table:
    """The final table: one row per scheme, over its repeats."""
    repeats = int(job.spec.get("repeats") or 1)
    table = Table(title=f"{job.id}: {job.status}")
    for name in ("scheme", "val accuracy", "min–max", "val loss", "last batch loss"):
        table.add_column(name, justify="left" if name == "scheme" else "right")
    table.add_column("diverged", justify="right")
    table.add_column("seconds", justify="right")
    for s in job.summary:
        table.add_row(
            s.label,
            _mean_std(s.final_val_accuracy),
            _range(s.final_val_accuracy),
            _mean_std(s.final_val_loss, 4),
            _num(s.last_batch_loss.mean, 4),
            f"{s.diverged}/{repeats}",
            _num(s.seconds, 1),
        )
    return table


def _last_loss(run: Run) -> float | None:
    return next((x for x in reversed(run.batch_losses) if x is not None), None)


def runs_table(job: Job) -> Table:
    table = Table(title="runs")
    for name in ("run", "scheme", "repeat", "seed", "status", "batch", "last loss", "val acc"):
        table.add_column(name, justify="left" if name in ("scheme", "status") else "right")
    table.add_column("error")
    for run in job.runs:
        val = next(
            (e.val_accuracy for e in reversed(run.epochs) if e.val_accuracy is not None), None
        )
        table.add_row(
            str(run.index),
            run.label,
            str(run.repeat),
            str(run.seed),
            run.status,
            f"{run.batch}/{run.total_batches}",
            _num(_last_loss(run), 4),
            _num(val),
            run.error or "",
        )
    return table


def show_job(console: Console, job: Job) -> None:
    p = job.progress
    console.print(f"[bold]{job.id}[/bold]  {job.status}  {p.fraction:.0%}")
    console.print(
        f"runs {p.runs_done} done, {p.runs_cancelled} cancelled of {p.runs_total}"
        + (f", eta {p.eta_seconds:.0f} s" if p.eta_seconds is not None else "")
    )
    console.print(
        f"created {job.created_at}  started {job.started_at or '–'}  "
        f"finished {job.finished_at or '–'}"
    )
    if job.error:
        console.print(f"[red]error:[/red] {job.error}")
    console.print(runs_table(job))
    if job.summary:
        console.print(summary_table(job))


def jobs_table(jobs: Iterable[Job]) -> Table:
    table = Table()
    # GET /v1/jobs lists the jobs without their runs and summary.
    for name in ("id", "status", "progress", "runs", "schemes", "created"):
        table.add_column(name, justify="right" if name in ("progress", "runs") else "left")
    for job in jobs:
        labels = [
            str(s.get("label") or s.get("initializer")) for s in job.spec.get("schemes") or []
        ]
        table.add_row(
            job.id,
            job.status,
            f"{job.progress.fraction:.0%}",
            str(job.progress.runs_total),
            ", ".join(labels),
            job.created_at,
        )
    return table


def initializers_table(entries: Iterable[Initializer]) -> Table:
    table = Table()
    for name in ("name", "family", "keras", "tfjs", "pytorch", "jax"):
        table.add_column(name)
    for e in entries:
        # The framework's own name without its module path (the column says which).
        fw = e.frameworks
        names = ((fw.get(k) or "–").rpartition(".")[2] for k in ("keras", "tfjs", "pytorch", "jax"))
        table.add_row(e.name, e.family, *names)
    return table


def show_initializer(console: Console, e: Initializer) -> None:
    console.print(f"[bold]{e.name}[/bold] ({e.family})")
    console.print(e.description)
    console.print(f"formula: {e.formula}")
    console.print(f"aliases: {', '.join(e.aliases)}")
    for framework, name in e.frameworks.items():
        console.print(f"{framework}: {name or '–'}")
    if e.params:
        table = Table(title="params")
        for name in ("param", "type", "default", "description"):
            table.add_column(name)
        for name, spec in e.params.items():
            spec = spec if isinstance(spec, dict) else {}
            table.add_row(
                name,
                str(spec.get("type")),
                repr(spec.get("default")),
                str(spec.get("description") or ""),
            )
        console.print(table)
    for ref in e.references:
        console.print(f"reference: {ref}")


def datasets_table(entries: Iterable[Dataset]) -> Table:
    table = Table()
    for name in ("name", "id", "kind", "task", "train", "val", "inputs", "outputs", "available"):
        table.add_column(name)
    for d in entries:
        table.add_row(
            d.name,
            d.id or "",
            d.kind,
            d.task or "",
            *(str(n) if n is not None else "–" for n in (d.n_train, d.n_val)),
            *(str(n) if n is not None else "–" for n in (d.input_dim, d.n_outputs)),
            "yes" if d.available else "no",
        )
    return table


def run_position(run: Run) -> dict[str, Any]:
    """A run of the job document in the form of a ``progress`` event's ``runs`` entry."""
    return {
        "run": run.index,
        "status": run.status,
        "batch": run.batch,
        "total_batches": run.total_batches,
    }


class RunBars:
    """One progress bar per run of a job, fed from the job document and its SSE events."""

    def __init__(self, console: Console, job: Job) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[int, TaskID] = {}
        self._started: set[TaskID] = set()
        for run in job.runs:
            self._tasks[run.index] = self.progress.add_task(
                f"{run.label} · repeat {run.repeat}",
                total=run.total_batches or None,
                status=run.status,
                start=False,  # its clock starts when the run does
            )
            self.update(
                {
                    "run": run.index,
                    "status": run.status,
                    "batch": run.batch,
                    "total_batches": run.total_batches,
                }
            )

    def update(self, run: dict[str, Any]) -> None:
        """Apply one entry of a ``progress`` event's ``runs``."""
        index = run.get("run")
        task = self._tasks.get(index) if isinstance(index, int) else None
        if task is None:
            return
        status = str(run.get("status") or "")
        total = run.get("total_batches") or None
        done = total if status in _COMPLETE and total else run.get("batch")
        self.progress.update(task, total=total, completed=done or 0, status=status)
        if status != "queued" and task not in self._started:
            self._started.add(task)
            self.progress.start_task(task)
        if status in ("failed", "cancelled"):
            self.progress.stop_task(task)

    def __enter__(self) -> RunBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
