"""Dense, Embedding, the normalizations and the simplest weightless layers (Flatten, Masking,
Activation, the Dropout and noise family: identities at inference)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from app.models.layers.fields import (
    ACTIVATIONS,
    ANY_RANK,
    Fields,
    Inferred,
    Shape,
    WeightShape,
)
from app.models.layers.table import LayerType
from app.models.layers.tfjs import unsupported


def _dense(f: Fields, shape: Shape, _: str) -> Inferred:
    f.rank(shape, ANY_RANK, "(..., features)")
    features = f.known(shape, -1, "features (last)")
    units = f.integer("units")
    f.choice("activation", "linear", ACTIVATIONS)
    weights = [WeightShape("kernel", (features, units), "kernel")]
    if f.flag("use_bias", True):
        weights.append(WeightShape("bias", (units,), "bias"))
    return Inferred(f.out, (*shape[:-1], units), tuple(weights))


def _flatten(f: Fields, shape: Shape, _: str) -> Inferred:
    f.data_format()  # Keras flattens channels_first input channels-last first: same size
    if any(d is None for d in shape):
        raise f.shape_error(shape, "needs every axis known to flatten")
    return Inferred(f.out, (math.prod(d for d in shape if d is not None),), ())


def _seed(f: Fields) -> None:
    """``seed`` (of the dropout's mask: no effect on weights or shapes): null or an integer
    in ``[0, 2**32 - 1]``; kept only when given, so a layer without one is as before."""
    value = f.raw.get("seed")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise f.fail("seed", "must be null or an integer in [0, 2**32 - 1]")
    f.out["seed"] = value


def _noise_shape(f: Fields, shape: Shape) -> None:
    """``noise_shape`` (Dropout, AlphaDropout): null, or the mask's shape with the batch axis,
    each entry null (the input's size) or a size the input broadcasts to (1 or the input's),
    else neither Keras nor TF.js can train the model; kept only when given."""
    value = f.raw.get("noise_shape")
    if value is None:
        return
    if not isinstance(value, list | tuple) or not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 1) for d in value
    ):
        raise f.fail("noise_shape", "must be null or a list of integers >= 1 or null")
    if len(value) != len(shape) + 1:
        raise f.fail("noise_shape", f"must have {len(shape) + 1} entries (the batch axis first)")
    for d, size in zip(value[1:], shape, strict=True):
        if d not in (None, 1, size) and size is not None:
            raise f.fail("noise_shape", f"{d} cannot broadcast to the input's {size}")
    f.out["noise_shape"] = list(value)


def _dropout(f: Fields, shape: Shape, _: str) -> Inferred:
    f.number("rate", 0.5, low=0.0, high=1.0)
    _noise_shape(f, shape)
    _seed(f)
    return Inferred(f.out, shape, ())


def _noise(
    key: str, rank: int | None, has_format: bool, noise_shape: bool = False
) -> Callable[[Fields, Shape, str], Inferred]:
    """SpatialDropout1D/2D/3D (rank 2/3/4 inputs), GaussianDropout, GaussianNoise, AlphaDropout:
    ``rate`` (or ``stddev``) required, ``seed``; AlphaDropout ``noise_shape`` too. The others
    take a null ``noise_shape`` (Keras 2's and TF.js's SpatialDropout write Dropout's
    ``noise_shape: null``; their mask's shape is their own) and leave it out."""

    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        if rank is not None:
            f.rank(shape, (rank,), "(spatial..., channels)")
        if has_format:
            f.data_format()
        f.number(key, None, low=0.0, high=1.0, closed=True)  # Keras 3: rate, stddev in [0, 1]
        if noise_shape:
            _noise_shape(f, shape)
        elif f.raw.get("noise_shape") is not None:
            raise f.fail("noise_shape", "must be null: only dropout and alpha_dropout take one")
        _seed(f)
        return Inferred(f.out, shape, ())

    return infer


def _masking(f: Fields, shape: Shape, _: str) -> Inferred:
    f.number("mask_value", 0.0, low=-float("inf"), high=float("inf"))
    return Inferred(f.out, shape, ())


def _activation(f: Fields, shape: Shape, _: str) -> Inferred:
    f.choice("activation", None, ACTIVATIONS)
    return Inferred(f.out, shape, ())


def _embedding(f: Fields, shape: Shape, _: str) -> Inferred:
    f.rank(shape, ANY_RANK, "(sequence...)")
    vocab = f.integer("input_dim")
    dim = f.integer("output_dim")
    return Inferred(f.out, (*shape, dim), (WeightShape("embeddings", (vocab, dim), "embeddings"),))


def _normalization(batch: bool) -> Callable[[Fields, Shape, str], Inferred]:
    def infer(f: Fields, shape: Shape, _: str) -> Inferred:
        f.rank(shape, ANY_RANK, "(..., features)")
        size = f.axis(shape)
        f.number("epsilon", 1e-3, low=0.0, high=1.0)
        if batch:
            f.number("momentum", 0.99, low=0.0, high=1.0)
        weights = []
        if f.flag("scale", True):
            weights.append(WeightShape("gamma", (size,), "gamma"))
        if f.flag("center", True):
            weights.append(WeightShape("beta", (size,), "beta"))
        if batch:
            weights.append(WeightShape("moving_mean", (size,), "moving_mean"))
            weights.append(WeightShape("moving_variance", (size,), "moving_variance"))
        return Inferred(f.out, shape, tuple(weights))

    return infer


def _tfjs_unseeded(config: dict[str, Any], loc: str, _shapes: tuple[Shape, ...]) -> None:
    """GaussianDropout, GaussianNoise, AlphaDropout: TF.js 4.22 takes no seed (its mask is
    unseeded, as it is for any seed: the frameworks' random streams differ anyway)."""
    config.pop("seed", None)
    noise = config.get("noise_shape")
    if noise is not None and None in noise:
        # TF.js's AlphaDropout draws its mask in noise_shape as given: null is not a size
        raise unsupported(
            f"{loc}.noise_shape", noise, config, "TF.js 4.22's AlphaDropout needs every size"
        )


_SEEDED = ("rate", "noise_shape", "seed")
LAYERS: tuple[LayerType, ...] = (
    LayerType("dense", "Dense", _dense, ("units", "activation", "use_bias"), ("kernel", "bias")),
    LayerType("flatten", "Flatten", _flatten, ("data_format",)),
    LayerType("dropout", "Dropout", _dropout, ("rate", "noise_shape", "seed")),
    LayerType("spatial_dropout1d", "SpatialDropout1D", _noise("rate", 2, False), _SEEDED),
    *(
        LayerType(
            f"spatial_dropout{n}d",
            f"SpatialDropout{n}D",
            _noise("rate", n + 1, True),
            (*_SEEDED, "data_format"),
            tfjs_unsupported=f"TF.js 4.22 has no SpatialDropout{n}D",
        )
        for n in (2, 3)
    ),
    LayerType(
        "gaussian_dropout",
        "GaussianDropout",
        _noise("rate", None, False),
        _SEEDED,
        tfjs=_tfjs_unseeded,
    ),
    LayerType(
        "gaussian_noise",
        "GaussianNoise",
        _noise("stddev", None, False),
        ("stddev", "noise_shape", "seed"),
        tfjs=_tfjs_unseeded,
    ),
    LayerType(
        "alpha_dropout",
        "AlphaDropout",
        _noise("rate", None, False, noise_shape=True),
        ("rate", "noise_shape", "seed"),
        tfjs=_tfjs_unseeded,
    ),
    LayerType("masking", "Masking", _masking, ("mask_value",)),
    LayerType("activation", "Activation", _activation, ("activation",)),
    LayerType("embedding", "Embedding", _embedding, ("input_dim", "output_dim"), ("embeddings",)),
    LayerType(
        "batch_normalization",
        "BatchNormalization",
        _normalization(batch=True),
        ("axis", "epsilon", "momentum", "center", "scale"),
        ("gamma", "beta", "moving_mean", "moving_variance"),
    ),
    LayerType(
        "layer_normalization",
        "LayerNormalization",
        _normalization(batch=False),
        ("axis", "epsilon", "center", "scale"),
        ("gamma", "beta"),
    ),
)
