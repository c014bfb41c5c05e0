"""Keras 3 models whose ``model.to_json()`` is posted as a topology (``KERAS_BACKEND=numpy``).

``tests/conformance/tfjs/fixtures/keras3_<name>.json`` hold what Keras 3 writes for each (TF.js
loads the served model.json of them in topology.test.mjs); ``test_keras_topology.py`` checks
the files are still what Keras writes. Regenerate: ``python -m tests.conformance.keras_topologies``.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

from collections.abc import Callable
from pathlib import Path

import keras

FIXTURES = Path(__file__).resolve().parent / "tfjs" / "fixtures"
L = keras.layers


def sequential() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((12, 6)),
            L.Conv1D(8, 3, padding="same", activation="relu"),
            L.LSTM(5, return_sequences=True, dropout=0.1),
            L.GRU(4, reset_after=False),
            L.Dense(3, kernel_regularizer=keras.regularizers.L2(0.01)),
        ],
        name="seq",
    )


def branches() -> keras.Model:
    x = keras.Input((8,), name="x")
    a = L.Dense(6, activation="relu", name="a")(x)
    b = L.Dense(6, activation="tanh", name="b")(x)
    s = L.Add(name="sum")([a, b])
    c = L.Concatenate(name="cat")([s, x, a])
    n = L.BatchNormalization(name="bn")(c)
    return keras.Model(x, L.Dense(2, name="out")(n), name="branches")


def two_in_two_out() -> keras.Model:
    img = keras.Input((6, 6, 2), name="img")
    vec = keras.Input((5,), name="vec")
    f = L.Flatten(name="flat")(L.Conv2D(3, 3, name="conv")(img))
    v = L.Dense(48, name="proj")(vec)
    m = L.Multiply(name="mul")([f, v])
    avg = L.Average(name="avg")([m, f, v])
    mx = L.Maximum(name="max")([avg, v])
    mn = L.Minimum(name="min")([mx, f])
    d = L.Dot(axes=1, normalize=True, name="dot")([mn, v])
    out1 = L.Dense(4, name="logits")(mn)
    out2 = L.Dense(1, name="score")(d)
    return keras.Model([img, vec], [out1, out2], name="two_in_two_out")


def token_ids() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((10,), dtype="int32"),
            L.Embedding(50, 8, mask_zero=True),
            L.SimpleRNN(6, return_sequences=True),
            L.LayerNormalization(),
            L.GRU(3, reset_after=False),
        ],
        name="token_ids",
    )


def wrappers() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((7, 5)),
            L.Bidirectional(L.LSTM(4, return_sequences=True)),
            L.TimeDistributed(L.Dense(3)),
            L.Flatten(),
            L.Dense(2),
        ],
        name="wrappers",
    )


def noise_unused() -> keras.Model:
    """The dropout family with noise shapes and seeds, and an input no output uses (Keras and
    TF.js keep it as the model's second input)."""
    seq = keras.Input((8, 4), name="seq")
    aux = keras.Input((3,), name="aux")
    x = L.Dropout(0.2, noise_shape=(None, 1, 4), seed=3)(seq)
    x = L.SpatialDropout1D(0.1, seed=4)(x)
    x = L.GaussianNoise(0.1, seed=5)(x)
    x = L.Conv1D(5, 3, padding="same")(x)
    x = L.GaussianDropout(0.1, seed=6)(x)
    x = L.AlphaDropout(0.1, seed=7)(L.GlobalAveragePooling1D()(x))
    return keras.Model([seq, aux], L.Dense(2)(x), name="noise_unused")


MODELS: dict[str, Callable[[], keras.Model]] = {
    "sequential": sequential,
    "branches": branches,
    "two_in_two_out": two_in_two_out,
    "token_ids": token_ids,
    "wrappers": wrappers,
    "noise_unused": noise_unused,
}


def build(name: str) -> keras.Model:
    keras.backend.clear_session()  # Keras numbers unnamed layers per session
    keras.utils.set_random_seed(0)
    return MODELS[name]()


def fixture(name: str) -> Path:
    return FIXTURES / f"keras3_{name}.json"


if __name__ == "__main__":
    for label in MODELS:
        fixture(label).write_text(build(label).to_json() + "\n")
