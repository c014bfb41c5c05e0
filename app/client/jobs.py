"""``client.jobs``: submit (with an ``Idempotency-Key``, so a retry never makes a second job),
read, list page by page, cancel, wait, follow the event stream, download the outputs."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx
from httpx_sse import EventSource

from app.client.errors import ServerDownError
from app.client.http import IDEMPOTENCY_HEADER, Transport
from app.client.types import Event, Job, JobPage

# The server pings an idle event stream every 15 s: a read waits a little longer than that.
EVENTS_TIMEOUT = httpx.Timeout(10.0, read=60.0)


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in key by key (objects merge, anything else
    replaces), as the server merges a preset with its overrides."""
    out = dict(base)
    for key, value in overrides.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out


class Jobs:
    """``client.jobs``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def submit(
        self,
        spec: Mapping[str, Any] | None = None,
        *,
        preset: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Post a job: a full ``spec``, or a ``preset`` name, either with ``overrides``.

        Sent with ``idempotency_key`` (a fresh UUID when None), so connection errors are
        retried: a retry of a request the server already recorded returns the same job.
        """
        body: dict[str, Any] = dict(spec or {})
        if preset is not None:
            body["preset"] = preset
        body = merge(body, overrides or {})
        key = idempotency_key or str(uuid.uuid4())
        response = self._t.request("POST", "/v1/jobs", json=body, headers={IDEMPOTENCY_HEADER: key})
        return Job.from_json(response.json())

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._t.request("GET", f"/v1/jobs/{job_id}").json())

    def list(
        self,
        limit: int = 20,
        cursor: str | None = None,
        *,
        status: str | Iterable[str] | None = None,
    ) -> JobPage:
        """One page of the caller's jobs, newest first; only those with ``status`` (one, or
        several: ``["running", "queued"]``) if given. Pass the same ``status`` with a cursor."""
        params: list[tuple[str, str | int]] = [("limit", limit)]
        if cursor is not None:
            params.append(("cursor", cursor))
        statuses = [status] if isinstance(status, str) else list(status or [])
        params += [("status", s) for s in statuses]
        doc = self._t.request("GET", "/v1/jobs", params=params).json()
        return JobPage(
            [Job.from_json(j) for j in doc.get("jobs") or []], doc.get("next_cursor"), doc
        )

    def iter(
        self, page_size: int = 20, *, status: str | Iterable[str] | None = None
    ) -> Iterator[Job]:
        """Every job of the caller (with ``status``, if given), newest first, page after
        page."""
        cursor: str | None = None
        while True:
            page = self.list(page_size, cursor, status=status)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job (a finished one is a 409 :class:`ProblemError`)."""
        return Job.from_json(self._t.request("DELETE", f"/v1/jobs/{job_id}").json())

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 1.0) -> Job:
        """Poll until the job has finished (succeeded, failed or cancelled); ``TimeoutError``
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(interval)

    def events(self, job_id: str, after: str | None = None) -> Iterator[Event]:
        """The job's Server-Sent Events until its ``end`` event (replayed from the start, or
        from after the event id ``after``). A broken stream is resumed after the last event
        received (``Last-Event-ID``), within the transport's retry policy."""
        last = after
        delays: Iterator[float] = iter(())
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = last
            try:
                with self._t.stream(
                    "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=EVENTS_TIMEOUT
                ) as response:
                    for sse in EventSource(response).iter_sse():
                        delays = self._t.retry.delays()  # progress: a fresh retry budget
                        if sse.id:
                            last = sse.id
                        data = json.loads(sse.data) if sse.data else {}
                        yield Event(sse.id, sse.event, data if isinstance(data, dict) else {})
                        if sse.event == "end":
                            return
            except httpx.TransportError as exc:
                failure: httpx.TransportError = exc
            else:
                failure = httpx.RemoteProtocolError("the event stream closed before its end")
            delay = next(delays, None)
            if delay is None:
                raise ServerDownError(self._t.url, self._t.retry.attempts, failure) from failure
            time.sleep(delay)

    def report(self, job_id: str, fmt: str = "png") -> bytes:
        """The comparison report, ``png`` or ``svg``."""
        return self._t.request("GET", f"/v1/jobs/{job_id}/report.{fmt}").content

    def results_csv(self, job_id: str, kind: str = "runs") -> str:
        """The results as CSV: ``runs`` (a row per run × epoch) or ``summary`` (per scheme)."""
        return self._t.request("GET", f"/v1/jobs/{job_id}/results.csv", params={"kind": kind}).text
