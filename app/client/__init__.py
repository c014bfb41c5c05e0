"""initlab's Python client, on the public HTTP API only (docs/client.md).

    from app.client import Client

    with Client("http://127.0.0.1:8000", api_key=None) as client:   # or $INITLAB_URL / _API_KEY
        w = client.tensors.get([784, 256], "he_normal", seed=1).array
        job = client.jobs.submit(preset="dlai-circles", overrides={"repeats": 1})
        for event in client.jobs.events(job.id):
            ...
        job = client.jobs.wait(job.id)

Errors: :class:`ProblemError` (any problem+json answer: ``status``, ``field``, ``detail``),
:class:`ServerDownError` (no answer, after the retries an idempotent call gets).
"""

from __future__ import annotations

from types import TracebackType
from typing import Unpack

from app.client.errors import ClientError, ProblemError, ServerDownError
from app.client.http import RetryPolicy, Transport, TransportOptions
from app.client.jobs import Jobs
from app.client.resources import Datasets, Initializers, Models, Presets
from app.client.tensors import TensorOptions, Tensors
from app.client.types import (
    Dataset,
    EpochRecord,
    Event,
    Initializer,
    Job,
    JobPage,
    Model,
    ModelWeight,
    Preset,
    Progress,
    Run,
    Stats,
    Summary,
    Tensor,
)

__all__ = [
    "Client",
    "ClientError",
    "Dataset",
    "EpochRecord",
    "Event",
    "Initializer",
    "Job",
    "JobPage",
    "Model",
    "ModelWeight",
    "Preset",
    "ProblemError",
    "Progress",
    "RetryPolicy",
    "Run",
    "ServerDownError",
    "Stats",
    "Summary",
    "Tensor",
    "TensorOptions",
    "TransportOptions",
]


class Client:
    """A synchronous client of one initlab server.

    ``url`` defaults to ``$INITLAB_URL``, then ``http://127.0.0.1:8000``; ``api_key`` to
    ``$INITLAB_API_KEY`` (sent as ``Authorization: Bearer``); ``timeout``, ``retry`` and
    ``transport`` as :class:`TransportOptions` says. Idempotent calls (every GET, job
    submission with its ``Idempotency-Key``) are retried on connection errors as ``retry``
    says (default: 4 attempts, 0.25 s backoff doubling to 4 s).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        **options: Unpack[TransportOptions],
    ) -> None:
        self._transport = Transport(url, api_key, **options)
        self.url = self._transport.url
        self.tensors = Tensors(self._transport)
        self.initializers = Initializers(self._transport)
        self.models = Models(self._transport)
        self.jobs = Jobs(self._transport)
        self.datasets = Datasets(self._transport)
        self.presets = Presets(self._transport)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
