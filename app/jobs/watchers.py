"""The threads beside a running run: :class:`CancelWatcher` (the job's cancel, published or
read) and :class:`LeaseKeeper` (the run's lease renewals), used by
:func:`app.jobs.reporter.execute_run`."""

from __future__ import annotations

import logging
import threading
import time

from app.jobs.store import JobStore, cancel_channel

log = logging.getLogger("initlab.jobs")


class CancelWatcher:
    """Sets :attr:`event` as soon as the job's cancel is published (or, as a fallback for a
    missed message, found by reading the flag every ``fallback_seconds``)."""

    POLL_SECONDS = 0.5

    def __init__(self, store: JobStore, job_id: str, fallback_seconds: float) -> None:
        self.store = store
        self.job_id = job_id
        self.fallback_seconds = fallback_seconds
        self.event = threading.Event()
        self._stop = threading.Event()
        self._pubsub = store.redis.pubsub(ignore_subscribe_messages=True)
        # Subscribe before the first flag read, so a cancel between the two is not missed.
        self._pubsub.subscribe(cancel_channel(job_id))
        if store.cancel_requested(job_id):
            self.event.set()
        self._thread = threading.Thread(target=self._run, name="initlab-cancel", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_read = time.monotonic() + self.fallback_seconds
        try:
            while not (self._stop.is_set() or self.event.is_set()):
                try:
                    # Short waits, so close() is prompt; the flag is read every fallback period.
                    if self._pubsub.get_message(timeout=self.POLL_SECONDS) is not None:
                        self.event.set()
                    elif time.monotonic() >= next_read:
                        next_read = time.monotonic() + self.fallback_seconds
                        if self.store.cancel_requested(self.job_id):
                            self.event.set()
                except Exception:  # Redis blip: the lease and the writes notice real trouble
                    log.warning("cancel watch failed for %s; retrying", self.job_id)
                    self._stop.wait(self.POLL_SECONDS)
        finally:
            self._pubsub.close()

    def close(self) -> None:
        """Ask the thread to stop. No join: the task returns at once (the worker is free for
        its next run), and the thread closes its own pub/sub connection within one poll."""
        self._stop.set()


class LeaseKeeper:
    """Renews a run's lease from a daemon thread until :meth:`close` (NumPy releases the GIL
    in BLAS calls, so renewals happen even during long matmuls)."""

    def __init__(
        self, store: JobStore, job_id: str, index: int, token: str, lease_seconds: float
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.index = index
        self.token = token
        self.lease_seconds = lease_seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="initlab-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not self.store.renew_lease(
                    self.job_id, self.index, self.token, self.lease_seconds
                ):
                    self.lost = True
                    return
            except Exception:  # Redis blip: try again next period; the lease has slack
                log.warning("lease renewal failed for %s run %d", self.job_id, self.index)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
