"""The worker side of a job record: a run's reporter, its lease, and one run's execution.

:class:`RedisRunReporter` implements the trainer's ``RunReporter`` protocol:

- batch losses are kept for the first ``plot_n_batches`` steps exactly, then every
  ``stride``-th step so that a run stores at most ``max_batch_points`` points (none after
  the first ``plot_n_batches`` when those fill them);
- writes are throttled: at most one per ``progress_interval_seconds`` (default 0.25 s) plus
  one per epoch record and one per diagnostics snapshot; each write is one Lua call that also
  answers "was the job cancelled?" (a write refused because the run was cancelled keeps its
  points, epoch records and diagnostics snapshots for the run's finish, which stores them
  once), and its size does not grow with the run: epoch records and diagnostics snapshots
  are appended (the store assembles them on read). How many a run makes is capped at
  submission (``max_epoch_records``: ``record.eval_every``);
- ``should_stop`` is called by the trainer every batch and costs one ``Event.is_set()``: a
  :class:`app.jobs.watchers.CancelWatcher` thread sets that event when the cancel is
  published (Redis pub/sub: a few ms, the thread waiting for the GIL the training thread
  holds), so a cancelled run stops at its next batch (bench/results/cancel.md); as a fallback
  for a missed message the flag itself is read every ``cancel_check_seconds`` (default 1 s);
- a lease thread (:class:`app.jobs.watchers.LeaseKeeper`) renews the run's lease every
  ``lease_seconds / 3``; if the worker dies the lease lapses and the watchdog
  (``worker/celery_app.py``) re-enqueues the run;
- it is also the run's checkpointer (``app.training.checkpoint.Checkpointer``): at an epoch
  boundary once ``checkpoint_seconds`` passed since the last checkpoint (or the start), within
  an epoch once ``checkpoint_within_epoch_seconds`` did, it flushes its pending points and
  keeps the checkpoint in Redis (one Lua call that also notes the lengths of the run's lists);
  one over ``max_checkpoint_bytes`` is not kept and the run's record says so
  (``checkpoint_skipped``). A redelivered run whose claim finds a checkpoint resumes from it.
- every write is numbered (``seq``), so one the worker's retrying client sends again after a
  lost reply is applied once;
- the job's event stream shows each batch-loss point and epoch record once, across attempts:
  every point goes out in a ``progress`` event with the write that stores it (the events are
  appended in the same Lua call), and an attempt resumed from a checkpoint (or restarted) does
  not publish again the steps and epochs an earlier one published (``published_step`` /
  ``published_epoch``, kept in the run's hash, handed over by the claim): its points below
  that step are stored (the claim cut the lists back to the checkpoint) but not published.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from app.config import Settings, get_settings
from app.jobs.runs import REFUSED_CANCELLED, STALE, WRITTEN, WRITTEN_CANCELLED
from app.jobs.store import JobStore
from app.jobs.uploads import DatasetStore
from app.jobs.watchers import CancelWatcher, LeaseKeeper
from app.training.checkpoint import Checkpoint, CheckpointError

log = logging.getLogger("initlab.jobs")

# A run whose worker died this many times (OOM, hard time limit) is marked failed.
MAX_ATTEMPTS = 3


def loss_stride(total_batches: int, plot_n_batches: int, max_points: int) -> int | None:
    """Keep every step below ``plot_n_batches``, then every ``stride``-th one, so that at most
    ``max_points`` are kept; None when the first ``plot_n_batches`` fill them (none after)."""
    rest = total_batches - plot_n_batches
    room = max_points - plot_n_batches
    if rest <= 0:
        return 1
    if room <= 0:
        return None
    # ceil(rest / stride) points after the first plot_n_batches: at most room.
    return max(1, math.ceil(rest / room))


class RedisRunReporter:
    """Reports one run attempt to the job record (see the module docstring)."""

    def __init__(
        self,
        store: JobStore,
        job_id: str,
        index: int,
        attempt: int,
        *,
        total_batches: int,
        plot_n_batches: int,
        max_batch_points: int,
        settings: Settings | None = None,
        cancelled: threading.Event | None = None,
        published_step: int = 0,
        published_epoch: int = 0,
    ) -> None:
        self.store = store
        # Every point below this step, every epoch record up to this epoch is in the stream.
        self.published_step = published_step
        self.published_epoch = published_epoch
        self._cancelled = cancelled
        self.job_id = job_id
        self.index = index
        self.attempt = attempt
        self.settings = settings or get_settings()
        # The cap holds even when a smaller server limit (INITLAB_MAX_BATCH_POINTS) than the
        # job's plot_n_batches was passed as max_batch_points.
        self.plot_n = min(plot_n_batches, max_batch_points)
        self.stride = loss_stride(total_batches, self.plot_n, max_batch_points)
        self.total_batches = total_batches
        self.step = 0
        self.epoch = 0
        self.batch = 0
        self.last_loss: float | None = None
        self.stopped = False
        self.stale = False
        self._pending: list[tuple[int, float]] = []
        # Epoch records and diagnostics snapshots of writes refused as cancelled (for finish).
        self._pending_epochs: list[dict[str, Any]] = []
        self._pending_diagnostics: list[tuple[str, list[dict]]] = []
        self._last_write = -math.inf  # the first batch is written at once
        self._last_check = -math.inf
        self._seq = 0
        self._last_checkpoint = time.monotonic()
        self._skip_noted = False
        self.checkpoints = 0
        self.checkpoint_seconds = 0.0  # spent serializing and writing them

    def resume_from(self, checkpoint: Checkpoint) -> None:
        """Carry on counting from ``checkpoint`` (the claim cut the lists back to it)."""
        self.step = self.batch = checkpoint.step
        self.epoch = checkpoint.epochs_done
        self.last_loss = float(checkpoint.losses[-1]) if checkpoint.step else None

    # -- RunReporter protocol

    def should_stop(self) -> bool:
        if self.stopped:
            return True
        if self._cancelled is not None and self._cancelled.is_set():
            self.stopped = True
            return True
        now = time.monotonic()
        if now - self._last_check >= self.settings.cancel_check_seconds:
            self._last_check = now
            if self.store.cancel_requested(self.job_id):
                self.stopped = True
        return self.stopped

    def on_batch(self, epoch: int, batch: int, loss: float) -> None:
        step = self.step
        self.step += 1
        self.epoch, self.batch = epoch, batch
        self.last_loss = float(loss)
        if step < self.plot_n or (
            self.stride is not None and (step - self.plot_n) % self.stride == 0
        ):
            self._pending.append((step, self.last_loss))
        if time.monotonic() - self._last_write >= self.settings.progress_interval_seconds:
            self.flush()

    def on_epoch(self, record: Mapping[str, Any]) -> None:
        rec = dict(record)
        epoch = int(rec.get("epoch") or 0)
        if epoch <= self.published_epoch:  # an earlier attempt published it
            self.flush(epochs=[rec])
            return
        if self.flush(
            epochs=[rec],
            event={"type": "epoch", "run": self.index, "record": rec},
            fields={"published_epoch": epoch},
        ):
            self.published_epoch = epoch

    def on_diagnostics(self, when: str, layers: list[dict]) -> None:
        self.flush(diagnostics=[(when, layers)], progress=False)

    # -- Checkpointer protocol

    def checkpoint_due(self, epoch_end: bool) -> bool:
        if self.stale or self.stopped or not self.settings.max_checkpoint_bytes:
            return False
        wait = (
            self.settings.checkpoint_seconds
            if epoch_end
            else self.settings.checkpoint_within_epoch_seconds
        )
        return time.monotonic() - self._last_checkpoint >= wait

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        started = time.monotonic()
        limit = self.settings.max_checkpoint_bytes
        # Checked on the arrays' size first, so an oversized checkpoint is never serialized.
        size = checkpoint.array_bytes()
        data = checkpoint.to_bytes() if size <= limit else b""
        size = max(size, len(data))
        if size > limit:
            if not self._skip_noted:
                self._skip_noted = True
                note = (
                    f"a checkpoint of {size} bytes is over INITLAB_MAX_CHECKPOINT_BYTES "
                    f"({limit}): not kept, a lost worker restarts this run from zero"
                )
                log.warning("run %d of %s: %s", self.index, self.job_id, note)
                self.flush(progress=False, fields={"checkpoint_skipped": note})
        else:
            if self._pending:  # the lists hold every point up to the checkpoint's step
                self.flush(progress=False)
            if not self.stale:
                out = self.store.save_checkpoint(
                    self.job_id,
                    self.index,
                    self.attempt,
                    data,
                    step=checkpoint.step,
                    epoch=checkpoint.epoch,
                    epochs_done=checkpoint.epochs_done,
                )
                self._noted(out)
                self.checkpoints += 1
        self._last_checkpoint = time.monotonic()
        self.checkpoint_seconds += self._last_checkpoint - started

    # -- writes

    def flush(
        self,
        *,
        event: Mapping[str, Any] | None = None,
        epochs: list[dict[str, Any]] | None = None,
        diagnostics: list[tuple[str, list[dict]]] | None = None,
        progress: bool = True,
        fields: Mapping[str, Any] | None = None,
    ) -> bool:
        """Write pending points (plus new epoch records / diagnostics snapshots, appended,
        and ``fields``) now, with a progress event carrying the points not yet published (one
        without points too when ``progress`` and no ``event``, if the run got further than
        published), then ``event``; notices cancellation and staleness. Returns whether it
        was written: a write refused as cancelled keeps its points, records and snapshots for
        the run's finish (which stores them once; its events are not published)."""
        if self.stale:
            return False
        points, self._pending = self._pending, []
        epochs = self._pending_epochs + list(epochs or ())
        diagnostics = self._pending_diagnostics + list(diagnostics or ())
        self._pending_epochs, self._pending_diagnostics = [], []
        published_step = self.published_step
        new = [point for point in points if point[0] >= self.published_step]
        events: list[Mapping[str, Any]] = []
        written: dict[str, Any] = {"epoch": self.epoch, "batch": self.step, **(fields or {})}
        if new or (progress and event is None and self.step > self.published_step):
            events.append(
                {
                    "type": "progress",
                    "run": self.index,
                    "epoch": self.epoch,
                    "batch": self.step,
                    "points": new,
                }
            )
            self.published_step = written["published_step"] = max(self.step, self.published_step)
        if event is not None:
            events.append(event)
        self._seq += 1
        out = self.store.update_run(
            self.job_id,
            self.index,
            self.attempt,
            seq=self._seq,
            fields=written,
            points=points,
            events=events,
            epochs=epochs,
            diagnostics=diagnostics,
        )
        self._last_write = time.monotonic()
        if out == REFUSED_CANCELLED:  # not stored: they go with the run's finish, once
            self._pending = points + self._pending
            self._pending_epochs, self._pending_diagnostics = epochs, diagnostics
            self.published_step = published_step
        self._noted(out)
        return out in (WRITTEN, WRITTEN_CANCELLED)

    def _noted(self, out: int) -> None:
        """A write's answer (``app.jobs.runs``): stale, cancelled (written or not), or go on."""
        if out == STALE:
            self.stale = self.stopped = True
        elif out in (WRITTEN_CANCELLED, REFUSED_CANCELLED):
            self.stopped = True

    def finish(
        self,
        status: str,
        *,
        final: Mapping[str, Any] | None = None,
        seconds: float | None = None,
        error: str = "",
    ) -> str:
        """Record the run's end; returns the recorded status (``stale``: nothing written)."""
        if self._pending and not self.stopped:  # a diverged run's last points: published too
            self.flush(progress=False)
        points, self._pending = self._pending, []
        epochs, self._pending_epochs = self._pending_epochs, []
        diagnostics, self._pending_diagnostics = self._pending_diagnostics, []
        fields: dict[str, Any] = {
            "epoch": self.epoch,
            "batch": self.step,
            "final": dict(final) if final is not None else None,
        }
        if seconds is not None:
            fields["seconds"] = float(seconds)
        if self.last_loss is not None:
            fields["last_batch_loss"] = self.last_loss
        return self.store.finish_run(
            self.job_id,
            self.index,
            self.attempt,
            status,
            fields=fields,
            points=points,
            epochs=epochs,
            diagnostics=diagnostics,
            error=error,
        )


@lru_cache(maxsize=2)
def _cached_dataset(ref_json: bytes, data_dir: str, allow_downloads: bool, url: str | None) -> Any:
    from app.training.datasets import load_dataset

    uploads = DatasetStore.from_settings()
    return load_dataset(
        orjson.loads(ref_json),
        data_dir=data_dir,
        allow_downloads=allow_downloads,
        uploaded=uploads.get,
    )


def load_job_dataset(ref: Mapping[str, Any]) -> Any:
    """The job's dataset, cached per worker process (MNIST takes ~1 s to decode)."""
    from app.config import get_settings

    settings = get_settings()
    key = orjson.dumps(dict(ref), option=orjson.OPT_SORT_KEYS)
    return _cached_dataset(
        key, str(settings.data_dir), settings.allow_downloads, settings.redis_url
    )


def execute_run(store: JobStore, job_id: str, index: int, worker: str) -> str:
    """Claim run ``index`` of ``job_id``, train it, and record the outcome.

    Idempotent: a run that already finished, belongs to a finished or expired job, or is held
    by another live worker is skipped (returns the claim state). Never raises for problems of
    the run itself: they are recorded as a ``failed`` run.
    """
    from app.jobs.runplan import build_run_spec
    from app.training import train_run

    settings = get_settings()
    claim = store.claim_run(job_id, index, worker, settings.lease_seconds)
    if not claim.ok:
        log.info("skip %s run %d: %s", job_id, index, claim.state)
        return claim.state
    lease = LeaseKeeper(store, job_id, index, claim.token, settings.lease_seconds)
    watcher = CancelWatcher(store, job_id, settings.cancel_check_seconds)
    reporter: RedisRunReporter | None = None
    try:
        spec = store.get_spec(job_id)
        run = store.get_run(job_id, index)
        if spec is None or run is None:
            return "gone"
        record = spec.get("record") or {}

        def new_reporter() -> RedisRunReporter:
            return RedisRunReporter(
                store,
                job_id,
                index,
                claim.attempt,
                total_batches=int(run["total_batches"]),
                plot_n_batches=int(record.get("plot_n_batches", 100)),
                max_batch_points=min(
                    int(record.get("max_batch_points", 5000)), settings.max_batch_points
                ),
                settings=settings,
                cancelled=watcher.event,
                published_step=claim.published_step,
                published_epoch=claim.published_epoch,
            )

        reporter = new_reporter()
        if claim.attempt > MAX_ATTEMPTS:
            return reporter.finish(
                "failed",
                error=f"the worker running this run was lost {claim.attempt - 1} times "
                "(killed, out of memory or over the hard time limit)",
            )
        started = time.perf_counter()
        try:
            data = load_job_dataset(spec["dataset"])
            run_spec = build_run_spec(spec, int(run["scheme"]), int(run["seed"]))
            resume = _checkpoint(store, job_id, index, claim.attempt) if claim.resumed else None
            try:
                if resume is not None:
                    reporter.resume_from(resume)
                    log.info("run %d of %s resumes from step %d", index, job_id, resume.step)
                result = train_run(run_spec, data, reporter, checkpointer=reporter, resume=resume)
            except CheckpointError as exc:  # raised before the run trained or reported anything
                log.warning("run %d of %s restarts from zero: %s", index, job_id, exc)
                store.discard_checkpoint(job_id, index, claim.attempt)
                reporter = new_reporter()
                result = train_run(run_spec, data, reporter, checkpointer=reporter)
            if reporter.checkpoints:
                log.info(
                    "run %d of %s: %d checkpoints, %.3f s",
                    index,
                    job_id,
                    reporter.checkpoints,
                    reporter.checkpoint_seconds,
                )
        except Exception as exc:
            if lease.lost or reporter.stale:
                return "stale"
            log.exception("run %d of %s failed", index, job_id)
            return reporter.finish(
                "failed",
                seconds=time.perf_counter() - started,
                error=_describe_failure(exc),
            )
        if reporter.stale or lease.lost:
            return "stale"
        status = str(result.status)
        return reporter.finish(
            status if status in ("succeeded", "diverged", "cancelled") else "failed",
            final=_final_metrics(result),
            seconds=float(result.seconds),
        )
    finally:
        watcher.close()
        lease.close()


def _checkpoint(store: JobStore, job_id: str, index: int, attempt: int) -> Checkpoint | None:
    """The checkpoint the claim found, or None (dropped, the run's lists reset) if it is gone
    or unreadable."""
    data = store.get_checkpoint(job_id, index)
    try:
        if data is None:
            raise CheckpointError("the checkpoint is gone")
        return Checkpoint.from_bytes(data)
    except CheckpointError as exc:
        log.warning("run %d of %s restarts from zero: %s", index, job_id, exc)
        store.discard_checkpoint(job_id, index, attempt)
        return None


def _describe_failure(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "SoftTimeLimitExceeded":
        limit = get_settings().run_time_limit_seconds
        return f"the run exceeded the per-run time limit of {limit} s"
    last = traceback.format_exception_only(exc)[-1].strip()
    return last[:500]


def _final_metrics(result: Any) -> dict[str, Any]:
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    out = {k: _json_float(getattr(result, f"final_{k}", None)) for k in keys}
    out["steps"] = int(result.steps)
    out["diverged_at_step"] = result.diverged_at_step
    return out


def _json_float(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
