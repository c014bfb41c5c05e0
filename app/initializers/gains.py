"""PyTorch's ``torch.nn.init.calculate_gain``, value for value."""

from __future__ import annotations

import math

from app.initializers.errors import InitializerError

LINEAR_FNS: tuple[str, ...] = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
)
NONLINEARITIES: tuple[str, ...] = (*LINEAR_FNS, "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def calculate_gain(
    nonlinearity: str,
    param: float | None = None,
    field: str = "nonlinearity",
    param_field: str = "params.a",
) -> float:
    """Recommended gain for ``nonlinearity`` (PyTorch 2.13 ``calculate_gain``).

    linear / conv* / sigmoid → 1; tanh → 5/3; relu → sqrt(2);
    leaky_relu → sqrt(2 / (1 + slope²)) with slope = ``param`` (0.01 when None);
    selu → 3/4 (Klambauer et al. 2017, as chosen by PyTorch).
    """
    if nonlinearity in LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        negative_slope = 0.01 if param is None else float(param)
        if not math.isfinite(negative_slope):
            raise InitializerError(param_field, param, "negative slope must be finite")
        try:
            square = negative_slope**2  # PyTorch's arithmetic, bit for bit
        except OverflowError:  # |a| > ~1.34e154: PyTorch raises OverflowError here too
            raise InitializerError(
                param_field,
                param,
                "|negative slope| must be below 1.34e154 (its square overflows float64)",
            ) from None
        return math.sqrt(2.0 / (1 + square))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InitializerError(
        field, nonlinearity, f"unsupported nonlinearity; one of {', '.join(NONLINEARITIES)}"
    )
