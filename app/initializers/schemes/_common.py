"""What the scheme modules share: draws in the target dtype, reach helpers, references.

Kernel layout (Keras, the default): ``(*spatial, in, out)``. Schemes named after PyTorch
functions that act on the tensor's structure (``dirac``, ``torch_orthogonal``, ``sparse``)
read the shape as PyTorch does, ``(out, in, *spatial)``; the ``layout`` argument only decides
how fans are counted.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from app.initializers import sampling
from app.initializers.base import FLOAT_DTYPES, Initializer, Reach
from app.initializers.errors import InitializerError

INT_DTYPES: tuple[str, ...] = (*FLOAT_DTYPES, "int32")
KERAS_REF = "Keras 3 keras/src/initializers/"
TORCH_REF = "PyTorch torch/nn/init.py"
JAX_REF = "JAX jax/_src/nn/initializers.py"
TFJS_REF = "TF.js tfjs-layers/src/initializers.ts"
# TF.js 4.22's RandomNormal and TruncatedNormal read ``args.stddev || 0.05``.
TFJS_ZERO_STDDEV = "TF.js 4.22 replaces stddev 0 with 0.05 (a || default)"
# Standard deviation of a standard normal truncated to (-2, 2) (Keras's constant).
TRUNCATED_STD = 0.87962566103423978


def frameworks(
    keras: str | None = None,
    tfjs: str | None = None,
    pytorch: str | None = None,
    jax: str | None = None,
) -> dict[str, str | None]:
    """The catalogue's ``frameworks``: each framework's name for exactly this scheme, or None."""
    return {
        "keras": f"keras.initializers.{keras}" if keras else None,
        "tfjs": f"tf.initializers.{tfjs}" if tfjs else None,
        "pytorch": f"torch.nn.init.{pytorch}" if pytorch else None,
        "jax": f"jax.nn.initializers.{jax}" if jax else None,
    }


_FLOAT32 = np.dtype(np.float32)


def empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype=sampling.draw_dtype(dtype))


def finish(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast to the target dtype; the result is C-contiguous."""
    if values.dtype != dtype:
        values = values.astype(dtype)
    return values if values.flags.c_contiguous else np.ascontiguousarray(values)


# Targets drawn in float32 and then cast (``sampling.draw_dtype``).
NARROW: tuple[np.dtype, ...] = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def within(dtype: np.dtype, low: float, high: float, *, open_high: bool) -> tuple[float, float]:
    """The least and the greatest ``dtype`` numbers in [low, high] (in [low, high) when
    ``open_high``); the first is above the second when there is none."""
    kind = dtype.type
    with np.errstate(over="ignore"):
        least, greatest = kind(low), kind(high)
    if float(least) < low:
        least = np.nextafter(least, kind(np.inf))
    if float(greatest) > high or (open_high and float(greatest) == high):
        greatest = np.nextafter(greatest, kind(-np.inf))
    return float(least), float(greatest)


def finish_within(
    values: np.ndarray, dtype: np.dtype, low: float, high: float, *, open_high: bool
) -> np.ndarray:
    """``finish``, keeping a float16/bfloat16 cast inside the scheme's range: the float32
    values are first clamped to the target's least and greatest numbers in [low, high] (or
    [low, high)), where rounding to nearest would carry values just inside a bound onto it or
    past it. Those two are float32 numbers too, and rounding is monotonic."""
    if dtype in NARROW:
        least, greatest = within(dtype, low, high, open_high=open_high)
        np.clip(values, least, greatest, out=values)
    return finish(values, dtype)


def check_within(
    init: Initializer, dtype: np.dtype, low: float, high: float, *, open_high: bool, key: str
) -> None:
    """Refuse a float16/bfloat16 range that holds none of the dtype's numbers."""
    least, greatest = within(dtype, low, high, open_high=open_high)
    if least > greatest:
        interval = f"[{low:.6g}, {high:.6g}{')' if open_high else ']'}"
        raise InitializerError(
            f"{init._field}.{key}",
            init.params[key],
            f"no {dtype.name} number lies in the range {interval}: widen it or use float32",
        )


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, mean: float, std: float
) -> np.ndarray:
    if dtype is _FLOAT32:  # drawn in its own dtype, C-contiguous: nothing to finish
        return sampling.normal(rng, shape, dtype, mean, std)
    return finish(sampling.normal(rng, shape, sampling.draw_dtype(dtype), mean, std), dtype)


def uniform(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, low: float, high: float
) -> np.ndarray:
    out = empty(shape, dtype)
    sampling.fill_uniform(rng, out.reshape(-1), low, high)
    return finish_within(out, dtype, low, high, open_high=True)


def truncated(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    dtype: np.dtype,
    mean: float,
    std: float,
    lo: float,
    hi: float,
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """mean + std·Z, Z restricted to [lo, hi]: values in ``bounds`` (mean + lo·std,
    mean + hi·std unless given), in float16/bfloat16 too."""
    draw = sampling.draw_dtype(dtype)
    values = sampling.truncated_normal(rng, shape, draw, mean, std, lo, hi)
    if std == 0.0:  # all the mean, as a constant
        return finish(values, dtype)
    low, high = bounds if bounds is not None else (mean + lo * std, mean + hi * std)
    return finish_within(values, dtype, low, high, open_high=False)


def normal_reach(
    init: Initializer, mean: float, std: float, std_key: str, mean_key: str | None, peak_z: float
) -> tuple[Reach, Reach]:
    """Reach of mean + std·z with |z| ≤ ``peak_z``: the term that dominates names the field."""
    size = abs(mean) + peak_z * std
    how = f"|{mean_key}| + {peak_z:g}·{std_key}" if mean_key else f"{peak_z:g}·{std_key}"
    key = mean_key if mean_key and abs(mean) >= peak_z * std else std_key
    typical_key = mean_key if mean_key and abs(mean) > std else std_key
    typical = max(abs(mean), std)
    return (
        init._param(key, size, how),
        init._param(typical_key, typical, f"max(|{mean_key}|, {std_key})" if mean_key else std_key),
    )


def uniform_limit(var: float) -> float:
    """sqrt(3·var) as Keras computes it, or sqrt(3)·sqrt(var) where 3·var overflows."""
    limit = math.sqrt(3.0 * var)
    return limit if math.isfinite(limit) else math.sqrt(3.0) * math.sqrt(var)


def truncated_std(lo: float, hi: float) -> float:
    """Standard deviation of a standard normal truncated to [lo, hi]."""

    def pdf(x: float) -> float:
        return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0

    z = sampling.normal_acceptance(lo, hi)
    a_term = lo * pdf(lo) if math.isfinite(lo) else 0.0
    b_term = hi * pdf(hi) if math.isfinite(hi) else 0.0
    mean_shift = (pdf(lo) - pdf(hi)) / z
    return math.sqrt(max(1 + (a_term - b_term) / z - mean_shift**2, 0.0))
