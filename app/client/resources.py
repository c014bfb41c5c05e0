"""The catalog-like resources: ``client.initializers``, ``.models``, ``.datasets``,
``.presets``."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from app.client.http import Transport
from app.client.types import Dataset, Initializer, Model, Preset

MODEL_ARTIFACTS = ("model.json", "weights.bin", "weights.safetensors", "weights.npz")


class Initializers:
    """``client.initializers``: the catalog of ``/v1/initializers``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Initializer]:
        doc = self._t.request("GET", "/v1/initializers").json()
        return [Initializer.from_json(d) for d in doc.get("initializers") or []]

    def get(self, name: str) -> Initializer:
        """One scheme by any alias (``he_normal``, ``HeNormal``, ``kaiming_normal_``)."""
        path = f"/v1/initializers/{quote(name, safe='')}"
        return Initializer.from_json(self._t.request("GET", path).json())


class Models:
    """``client.models``: a whole network's initial weights (``/v1/models``)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, spec: Mapping[str, Any]) -> Model:
        """Post a layer list (or a Keras / TF.js topology); the same spec gives the same id."""
        return Model.from_json(self._t.request("POST", "/v1/models", json=dict(spec)).json())

    def get(self, model_id: str) -> Model:
        return Model.from_json(self._t.request("GET", f"/v1/models/{model_id}").json())

    def download(self, model_id: str, artifact: str) -> bytes:
        """One artifact's bytes: ``model.json``, ``weights.bin``, ``weights.safetensors`` or
        ``weights.npz``."""
        if artifact not in MODEL_ARTIFACTS:
            raise ValueError(f"artifact must be one of {', '.join(MODEL_ARTIFACTS)}")
        return self._t.request("GET", f"/v1/models/{model_id}/{artifact}").content

    def weights(self, model_id: str) -> dict[str, np.ndarray]:
        """Every weight as an array, keyed ``layer/weight``, in manifest order."""
        with np.load(io.BytesIO(self.download(model_id, "weights.npz"))) as npz:
            return {name: npz[name] for name in npz.files}


class Datasets:
    """``client.datasets``: built-in datasets and the caller's ``.npz`` uploads."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Dataset]:
        doc = self._t.request("GET", "/v1/datasets").json()
        return [Dataset.from_json(d) for d in doc.get("datasets") or []]

    def get(self, dataset_id: str) -> Dataset:
        return Dataset.from_json(self._t.request("GET", f"/v1/datasets/{dataset_id}").json())

    def upload(
        self, file: str | Path | bytes, name: str | None = None, task: str | None = None
    ) -> Dataset:
        """Upload an ``.npz`` (``x_train``, ``y_train``, optional ``x_val``, ``y_val``); jobs
        use it as ``{"dataset": upload.ref}``. ``task``: ``multiclass``, ``binary`` or
        ``regression`` (default: from the labels). Sent once (never retried: uploads count
        against the caller's quota)."""
        if isinstance(file, bytes):
            data, filename = file, "upload.npz"
        else:
            data, filename = Path(file).read_bytes(), Path(file).name
        params = {k: v for k, v in (("name", name), ("task", task)) if v is not None}
        files = {"file": (filename, data, "application/octet-stream")}
        response = self._t.request("POST", "/v1/datasets", files=files, params=params)
        return Dataset.from_json(response.json())

    def delete(self, dataset_id: str) -> None:
        self._t.request("DELETE", f"/v1/datasets/{dataset_id}")


class Presets:
    """``client.presets``: complete job bodies of the classic experiments."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self) -> list[Preset]:
        doc = self._t.request("GET", "/v1/presets").json()
        return [Preset.from_json(d) for d in doc.get("presets") or []]

    def get(self, name: str) -> Preset:
        return Preset.from_json(
            self._t.request("GET", f"/v1/presets/{quote(name, safe='')}").json()
        )
