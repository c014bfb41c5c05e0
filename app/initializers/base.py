"""The ``Initializer`` base class and its parameter declarations.

Kernel layout (Keras): ``(*spatial, in, out)``; PyTorch-named schemes that act on the tensor
structure (dirac, orthogonal_, sparse) read shapes as PyTorch's ``(out, in, *spatial)``.
Every subclass declares its parameters (``PARAMS``) and its catalogue entry; ``sample``
draws from an explicit ``np.random.Generator``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import ml_dtypes
import numpy as np

from app.initializers.errors import InitializerError
from app.initializers.fans import FAN_MAX, check_fan, check_layout, compute_fans, layout_fans
from app.initializers.params import Param

DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16", "int32")
FLOAT_DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16")
SEED_MAX = 2**32 - 1

_NUMPY_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "int32": np.dtype(np.int32),
}


def numpy_dtype(name: str) -> np.dtype:
    return _NUMPY_DTYPES[name]


def check_dtype(dtype: object) -> str:
    if isinstance(dtype, np.dtype):
        dtype = dtype.name
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise InitializerError("dtype", dtype, f"must be one of {', '.join(DTYPES)}")
    return dtype


def check_seed(seed: object, field: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise InitializerError(field, seed, "must be an integer in [0, 2**32 - 1]")
    if not 0 <= int(seed) <= SEED_MAX:
        raise InitializerError(field, seed, "must be in [0, 2**32 - 1]")
    return int(seed)


def check_shape(shape: object) -> tuple[int, ...]:
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence | np.ndarray):
        raise InitializerError("shape", shape, "must be a list of non-negative integers")
    dims: list[int] = []
    for i, dim in enumerate(shape):
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):
            raise InitializerError(f"shape.{i}", dim, "must be a non-negative integer")
        if dim < 0:
            raise InitializerError(f"shape.{i}", dim, "must be ≥ 0")
        dims.append(int(dim))
    return tuple(dims)


class Plan(NamedTuple):
    """A validated request: dims, the fans the scheme uses, the NumPy dtype, element count."""

    dims: tuple[int, ...]
    fans: tuple[int, int]
    dtype: np.dtype
    size: int


class Reach(NamedTuple):
    """A magnitude a scheme's values reach, and the request field that drives it.

    ``size`` is computed in float64 from the parameters (``inf`` when even float64 overflows);
    ``how`` says how, for the error message (``"|mean| + 13.71·stddev"``).
    """

    field: str
    value: Any
    size: float
    how: str


def _finite_in(size: float, dtype: np.dtype) -> bool:
    """Whether every value of magnitude ≤ ``size`` rounds to a finite ``dtype`` number."""
    if not math.isfinite(size):
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float64(size).astype(dtype)))


def check_reach(peak: Reach | None, typical: Reach | None, dtype: str) -> None:
    """Refuse values that would overflow ``dtype`` or be subnormal in it.

    ``peak``: the largest |value| the scheme can produce; it must round to a finite number.
    ``typical``: the size of its typical nonzero values (a standard deviation, a constant);
    when nonzero it must be at least the dtype's smallest normal number, else the values
    would be subnormal (a few significant bits, flushed to zero by some hardware) or 0.
    """
    target = numpy_dtype(dtype)
    info = ml_dtypes.finfo(target)
    if peak is not None and not _finite_in(peak.size, target):
        raise InitializerError(
            peak.field,
            peak.value,
            f"values would reach {peak.how} = {peak.size:.4g}, beyond {dtype}'s largest "
            f"finite number {float(info.max):.4g}",
        )
    if typical is not None and 0.0 < typical.size < float(info.smallest_normal):
        wider = "" if dtype == "float64" else " or use a wider dtype"
        raise InitializerError(
            typical.field,
            typical.value,
            f"values of size {typical.how} = {typical.size:.4g} are below {dtype}'s smallest "
            f"normal number {float(info.smallest_normal):.4g}: they would be subnormal (few "
            f"significant bits) or round to 0; change {typical.field.rsplit('.', 1)[-1]}{wider}",
        )


# Successful validations by (class, params, arguments): a request differing only by its seed
# (or repeated, as when the API checks a tensor and then generates it) is not validated again;
# for a 3×3 tensor validation costs several times the draw (docs/performance.md). Emptied
# when it holds _PLANS_MAX entries.
_PLANS: dict[tuple[Any, ...], Plan] = {}
_PLANS_MAX = 4096


def _plan_key(
    init: Initializer,
    shape: object,
    dtype: object,
    layout: object,
    fan_in: object,
    fan_out: object,
    compat: object,
) -> tuple[Any, ...] | None:
    """Memo key for ``Initializer.plan``, or None when an argument or parameter is not of an
    exact builtin type (so ``True`` is never taken for ``1``, nor a list left unhashed)."""
    if type(shape) is not tuple and type(shape) is not list:
        return None
    for dim in shape:
        if type(dim) is not int:
            return None
    if type(dtype) is not str or type(layout) is not str:
        return None
    if (fan_in is not None and type(fan_in) is not int) or (
        fan_out is not None and type(fan_out) is not int
    ):
        return None
    if compat is not None and type(compat) is not str:
        return None
    params = tuple(init.params.items())
    if not all(type(v) in _KEY_TYPES for _, v in params):
        return None
    return (type(init), params, tuple(shape), dtype, layout, fan_in, fan_out, compat)


_KEY_TYPES = frozenset({int, float, str, type(None)})


def snake(name: str) -> str:
    """camelCase / CamelCase → snake_case (``fanIn`` → ``fan_in``)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def camel(name: str) -> str:
    """snake_case → camelCase (``fan_in`` → ``fanIn``)."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _validated(param: Param, value: Any, field: str) -> Any:
    """``param.validate`` of a string in any framework's spelling (``fanIn``, ``fan-in`` →
    ``fan_in``); an error shows the value as received."""
    spelled = value
    if param.type == "string" and isinstance(value, str):
        spelled = snake(value.strip()).replace("-", "_").replace(" ", "_")
    try:
        return param.validate(spelled, field)
    except InitializerError as exc:
        raise InitializerError(exc.field, value, exc.msg) from None


class Initializer:
    """A resolved initializer: canonical ``name``, validated ``params``, optional ``seed``."""

    # --- declared by every scheme -------------------------------------------------------
    name: str
    family: str
    PARAMS: tuple[Param, ...] = ()
    # Alternative parameter names accepted on input (JAX ``scale`` for ``gain``, ...).
    PARAM_ALIASES: ClassVar[dict[str, str]] = {}
    # Parameters only another framework has (JAX ``in_axis``...): left out of the Keras echo
    # while unset, so that echo stays one Keras itself loads.
    FOREIGN_PARAMS: ClassVar[frozenset[str]] = frozenset()
    aliases: tuple[str, ...] = ()
    formula: str
    description: str
    references: tuple[str, ...] = ()
    frameworks: dict[str, str | None]
    keras_class: str | None = None  # Keras 3 class this scheme *is*
    tfjs_class: str | None = None
    dtypes: tuple[str, ...] = FLOAT_DTYPES
    min_rank: int = 0
    max_rank: int | None = None
    random: bool = True
    uses_fans: bool = False

    def __init__(
        self,
        params: Mapping[str, Any] | None = None,
        seed: int | None = None,
        *,
        field: str = "params",
    ) -> None:
        given = dict(params or {})
        for alias, target in self.PARAM_ALIASES.items():
            if alias in given:
                if target in given:
                    raise InitializerError(
                        f"{field}.{alias}",
                        given[alias],
                        f"given together with its synonym {target!r}",
                    )
                given[target] = given.pop(alias)
        known = {p.name: p for p in self.PARAMS}
        for key in given:
            if key not in known:
                expected = ", ".join(known) or "none"
                raise InitializerError(
                    f"{field}.{key}",
                    given[key],
                    f"unknown parameter for {self.name} (parameters: {expected})",
                )
        self.params: dict[str, Any] = {
            p.name: _validated(p, given[p.name], f"{field}.{p.name}")
            if p.name in given
            else p.default
            for p in self.PARAMS
        }
        self.seed: int | None = None if seed is None else check_seed(seed, "seed")
        self._field = field
        self._validate()

    # --- hooks ------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Cross-parameter checks (minval < maxval, ...)."""

    def _check_shape(self, shape: tuple[int, ...], dtype: str) -> None:
        """Scheme-specific shape checks."""

    def _check_range(self, dtype: np.dtype, fans: tuple[int, int]) -> None:
        """float16/bfloat16 on the canonical stream, whose float32 draws are cast into the
        scheme's range: refuse a range that holds none of the dtype's numbers (hook)."""

    def _check_compat(self, dtype: str) -> None:
        if self.keras_class is None:
            raise InitializerError(
                "compat",
                "keras",
                f"{self.name} has no Keras 3 counterpart; compat 'keras' applies to Keras's "
                "own initializers only (use compat null)",
            )

    def _reach(
        self, dims: tuple[int, ...], fans: tuple[int, int]
    ) -> tuple[Reach | None, Reach | None]:
        """(the largest |value| the scheme can produce, the size of its typical nonzero
        values) for ``check_reach``; None where the scheme's values are bounded by 1."""
        return None, None

    def _param(self, key: str, size: float, how: str) -> Reach:
        """A Reach driven by parameter ``key``."""
        return Reach(f"{self._field}.{key}", self.params[key], size, how)

    def sample(
        self,
        rng: np.random.Generator,
        shape: tuple[int, ...],
        fans: tuple[int, int],
        dtype: np.dtype,
    ) -> np.ndarray:
        """Draw a tensor of ``shape`` (canonical stream) from ``rng``."""
        raise NotImplementedError

    def sample_keras(
        self, seed: int, shape: tuple[int, ...], fans: tuple[int, int], dtype: np.dtype
    ) -> np.ndarray:
        """Keras 3 NumPy-backend values for ``seed``."""
        raise NotImplementedError

    def expected_std(
        self, fan_in: int, fan_out: int, shape: Sequence[int] | None = None
    ) -> float | None:
        """Standard deviation the scheme targets for these fans (None when undefined)."""
        return None

    def work(self, shape: Sequence[int]) -> int:
        """Cost in element-equivalents (orthogonal: rows·cols·min(rows, cols))."""
        return math.prod(shape)

    # --- public -----------------------------------------------------------------------------
    def fans_for(
        self, shape: Sequence[int], layout: str, fan_in: int | None, fan_out: int | None
    ) -> tuple[int, int]:
        """Fans this scheme uses (overridable: Keras ``input_axes``/``output_axes``)."""
        return compute_fans(shape, layout, fan_in, fan_out)

    def check(
        self,
        shape: Sequence[int],
        *,
        dtype: str = "float32",
        layout: str = "keras",
        fan_in: int | None = None,
        fan_out: int | None = None,
        compat: str | None = None,
    ) -> None:
        """Validate shape / dtype / layout / fans / compat without allocating."""
        self.plan(shape, dtype, layout, fan_in, fan_out, compat)

    def plan(
        self,
        shape: Sequence[int],
        dtype: str,
        layout: str,
        fan_in: int | None,
        fan_out: int | None,
        compat: str | None,
    ) -> Plan:
        """Validate (as ``check``) and return what ``generate`` needs: dims, fans, dtype, size.

        Successful validations are memoised on (class, params, arguments) when every argument
        has its exact builtin type (so ``True`` is never taken for ``1``); validation is a pure
        function of those, so a hit skips it and an invalid request is never memoised.
        """
        key = _plan_key(self, shape, dtype, layout, fan_in, fan_out, compat)
        if key is not None:
            found = _PLANS.get(key)
            if found is not None:
                return found
        plan = self._validate_request(shape, dtype, layout, fan_in, fan_out, compat)
        if key is not None:
            if len(_PLANS) >= _PLANS_MAX:
                _PLANS.clear()
            _PLANS[key] = plan
        return plan

    def _validate_request(
        self,
        shape: Sequence[int],
        dtype: str,
        layout: str,
        fan_in: int | None,
        fan_out: int | None,
        compat: str | None,
    ) -> Plan:
        dims = check_shape(shape)
        dtype = check_dtype(dtype)
        check_layout(layout)
        check_fan("fan_in", fan_in)
        check_fan("fan_out", fan_out)
        if compat is not None and compat != "keras":
            raise InitializerError("compat", compat, "must be null or 'keras'")
        if dtype not in self.dtypes:
            raise InitializerError(
                "dtype",
                dtype,
                f"{self.name} produces {', '.join(self.dtypes)} only"
                + (
                    " (int32 only for zeros, ones, constant, identity, eye, dirac)"
                    if dtype == "int32"
                    else ""
                ),
            )
        rank = len(dims)
        if rank < self.min_rank or (self.max_rank is not None and rank > self.max_rank):
            allowed = (
                f"exactly {self.min_rank}"
                if self.max_rank == self.min_rank
                else f"{self.min_rank}–{self.max_rank}"
                if self.max_rank is not None
                else f"≥ {self.min_rank}"
            )
            raise InitializerError(
                "shape", list(dims), f"{self.name} needs rank {allowed}, got rank {rank}"
            )
        self._check_shape(dims, dtype)
        if self.uses_fans:
            fans = self.fans_for(dims, layout, fan_in, fan_out)
        else:
            try:
                fans = self.fans_for(dims, layout, fan_in, fan_out)
            except InitializerError:  # the scheme ignores fans; layout 'torch' at rank < 2
                fans = layout_fans(dims, "keras")
        if self.uses_fans and max(fans) > FAN_MAX:
            raise InitializerError("shape", list(dims), f"fans {fans} exceed {FAN_MAX} (2**63 - 1)")
        if dtype in FLOAT_DTYPES:
            check_reach(*self._reach(dims, fans), dtype)
        if dtype in ("float16", "bfloat16") and compat is None:
            self._check_range(numpy_dtype(dtype), fans)
        if compat == "keras":
            self._check_compat(dtype)
        return Plan(dims, fans, numpy_dtype(dtype), math.prod(dims))

    def keras_config(self, seed: int | None) -> dict[str, Any]:
        """Canonical Keras form ``{"class_name", "config"}`` (seed included when random)."""
        config: dict[str, Any] = {}
        if self.random:
            config["seed"] = seed
        config.update(self._keras_params())
        return {"class_name": self.keras_class or self.class_name(), "config": config}

    def tfjs_unsupported(
        self, shape: Sequence[int] | None = None, fans: tuple[int, int] | None = None
    ) -> str | None:
        """Why TF.js 4.22 cannot load ``tfjs_config`` with this meaning; None when it can.

        Without ``shape``: the reasons in the parameters alone. With ``shape`` (and ``fans``,
        the fans this scheme draws with for the request; by default the Keras layout's), also
        the shape's: TF.js would refuse it, or draw another distribution for it. Responses
        echo the TF.js form only when this is None for their shape (else ``tfjs: null`` and
        this reason as ``tfjs_unsupported``); tests/conformance/tfjs loads every such echo.
        """
        if self.tfjs_class is None:
            return f"TF.js 4.22 has no {self.name} initializer"
        reason = self._tfjs_unsupported()
        if reason is None and shape is not None:
            dims = tuple(shape)
            used = fans if fans is not None else self.fans_for(dims, "keras", None, None)
            reason = self._tfjs_shape_unsupported(dims, used)
        return reason

    def _tfjs_unsupported(self) -> str | None:
        """Parameter values TF.js 4.22 cannot express (hook; the class itself is known)."""
        return None

    def _tfjs_shape_unsupported(self, shape: tuple[int, ...], fans: tuple[int, int]) -> str | None:
        """Shapes (and fans) for which TF.js 4.22 refuses or redraws this config (hook)."""
        return None

    def tfjs_config(self, seed: int | None) -> dict[str, Any]:
        """TF.js form ``{"className", "config"}`` with camelCase keys and values (initlab reads
        it back for every scheme; TF.js 4.22 loads it when ``tfjs_unsupported()`` is None)."""
        class_name, params = self._tfjs_params()
        config: dict[str, Any] = {}
        for key, value in params.items():
            if value is None:
                continue
            config[camel(key)] = camel(value) if isinstance(value, str) else value
        if self.random:
            config["seed"] = seed
        return {"className": class_name, "config": config}

    @classmethod
    def class_name(cls) -> str:
        return "".join(part.capitalize() for part in cls.name.split("_"))

    def _keras_params(self) -> dict[str, Any]:
        foreign = self.FOREIGN_PARAMS
        return {k: v for k, v in self.params.items() if v is not None or k not in foreign}

    def _tfjs_params(self) -> tuple[str, dict[str, Any]]:
        return self.tfjs_class or self.class_name(), dict(self.params)

    # --- value semantics ---------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Initializer)
            and other.name == self.name
            and other.params == self.params
            and other.seed == self.seed
        )

    def __hash__(self) -> int:
        return hash((self.name, repr(sorted(self.params.items())), self.seed))

    def __repr__(self) -> str:
        return f"Initializer({self.name!r}, params={self.params!r}, seed={self.seed!r})"
