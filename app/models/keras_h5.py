"""A model's Keras 3 ``.weights.h5`` (``model.load_weights``), streamed without holding it.

Keras 3 (keras/src/saving/saving_lib.py) keeps a model's variables by object path, not by
layer name: ``layers/<key>/vars/<i>``, where ``<key>`` is the layer's class in snake case
(``dense``, ``simple_rnn``), numbered per class in ``model.layers`` order (``dense``,
``dense_1``; names given by the user play no part) and ``<i>`` counts the variables the layer
itself owns (trainable first). Variables owned by a sublayer sit under the attribute that
holds it: an RNN layer's in ``cell``, a wrapper's in ``layer`` (TimeDistributed) or
``forward_layer`` / ``backward_layer`` (Bidirectional), whose own rule then applies
(``layers/bidirectional/forward_layer/cell/vars/0``). Every layer and the model get a
``vars`` group (the layer's carries ``name``); the file has no other attributes.

The file is written in two steps so neither the model nor the file is ever held: h5py lays
out every group and dataset (allocated early, never filled: a sparse temporary file of the
metadata alone), then the bytes go out in file order, each dataset's range generated in turn.
h5py records no object times here (datasets ``track_times=False``; groups and the file have
none in HDF5's default format), so the same model gives the same bytes in any process.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import h5py
import numpy as np

from app.models.artifacts import weight_values
from app.models.layers import layer_type
from app.models.spec import ModelPlan, Weight

# Where a layer class keeps its variables below its group: (child attribute, whether that
# child is an inner layer from the config at the weight's ``owner``, with its own rule).
# Classes not listed own their variables. Bidirectional's backward weights (a name part
# ``backward_*``, as in ``bidirectional/backward_lstm/kernel``, or owner ``backward_layer``) go
# to ``backward_layer``. A wrapper's weight without an owner is its ``layer``'s.
_CHILD: dict[str, tuple[str, bool]] = {
    "SimpleRNN": ("cell", False),
    "LSTM": ("cell", False),
    "GRU": ("cell", False),
    "TimeDistributed": ("layer", True),
    "Bidirectional": ("forward_layer", True),
}
_CHUNK = 1 << 20  # metadata is copied from the temporary file this much at a time


def snake_case(class_name: str) -> str:
    """Keras's object key of a class: ``Conv2DTranspose`` -> ``conv2d_transpose``,
    ``ReLU`` -> ``re_lu`` (keras/src/utils/naming.py)."""
    words = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", words).lower()


def _class_of(config: Mapping[str, Any]) -> str:
    if "class_name" in config:
        return str(config["class_name"])
    return layer_type(config.get("type"), "layer").class_name


def _below(
    class_name: str, config: Mapping[str, Any], weight: Weight, owner: tuple[str, ...]
) -> tuple[str, ...]:
    """The child groups between a layer's group and the ``vars`` holding ``weight``."""
    rule = _CHILD.get(class_name)
    if rule is None:
        return ()
    child, wrapper = rule
    if not wrapper:
        return (child,)
    key, rest = (owner[0], owner[1:]) if owner else ("layer", ())
    if class_name == "Bidirectional" and (
        key == "backward_layer"
        or any(part.startswith("backward_") for part in weight.name.split("/")[1:-1])
    ):
        child = "backward_layer"
    inner = config[key]
    if "class_name" in inner and rest[:1] == ("config",):  # a Keras-form inner layer
        return (child, *_below(inner["class_name"], inner["config"], weight, rest[1:]))
    return (child, *_below(_class_of(inner), inner, weight, rest))


def h5_groups(plan: ModelPlan) -> list[tuple[str, str | None, list[Weight]]]:
    """Every ``vars`` group of the file in model order: ``(path, its ``name`` attribute (a
    layer's own group) or None, its weights)``."""
    groups: list[tuple[str, str | None, list[Weight]]] = []
    used: dict[str, int] = {}
    for layer in plan.layers:
        base = snake_case(layer.kind.class_name)
        n = used.get(base, -1) + 1
        used[base] = n
        root = f"layers/{base}" if n == 0 else f"layers/{base}_{n}"
        mine: dict[str, list[Weight]] = {f"{root}/vars": []}
        for weight in layer.weights:
            below = _below(layer.kind.class_name, layer.config, weight, weight.owner)
            mine.setdefault("/".join((root, *below, "vars")), []).append(weight)
        groups.extend(
            (path, layer.name if i == 0 else None, weights)
            for i, (path, weights) in enumerate(mine.items())
        )
    return groups


@dataclass(frozen=True)
class _Data:
    offset: int
    weight: Weight


class H5File:
    """A model's ``.weights.h5``: its metadata laid out in a sparse temporary file, the
    weights' byte ranges known; :meth:`chunks` streams it and closes the file."""

    def __init__(self, plan: ModelPlan) -> None:
        # Closed by chunks() (or here on failure), outliving __init__: no context manager.
        self._file: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        data: list[_Data] = []
        try:
            with h5py.File(self._file, "w") as h5:
                for path, name, weights in h5_groups(plan):
                    group = h5.create_group(path)
                    if name is not None:
                        group.attrs["name"] = name
                    for i, weight in enumerate(weights):
                        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                        ds = group.create_dataset(
                            str(i), weight.shape, "<f4", dcpl=dcpl, fill_time="never"
                        )
                        data.append(_Data(ds.id.get_offset(), weight))
                h5.create_group("vars")
            self._file.seek(0, 2)
            self.length = self._file.tell()
        except BaseException:
            self._file.close()
            raise
        self._data = sorted(data, key=lambda d: d.offset)

    def chunks(self) -> Iterator[bytes | memoryview]:
        """The file in order: metadata from the temporary file, each weight generated."""
        try:
            position = 0
            for item in self._data:
                yield from self._copy(position, item.offset)
                values = weight_values(item.weight).reshape(-1).view(np.uint8)
                yield values.data
                position = item.offset + values.size
                del values
            yield from self._copy(position, self.length)
        finally:
            self._file.close()

    def _copy(self, start: int, end: int) -> Iterator[bytes]:
        self._file.seek(start)
        while start < end:
            piece = self._file.read(min(_CHUNK, end - start))
            start += len(piece)
            yield piece


def h5_stream(plan: ModelPlan) -> tuple[int, Iterator[bytes | memoryview]]:
    """``(Content-Length, chunks)`` of the model's ``.weights.h5``."""
    made = H5File(plan)
    return made.length, made.chunks()
