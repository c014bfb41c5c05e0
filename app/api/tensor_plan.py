"""A tensor request checked against the application's limits and the engine, allocating
nothing: rank, element and cost limits first (a request for 10^12 elements is refused by
arithmetic), then the initializer is resolved and checked on the shape, dtype, layout and fans.

The checks of a request do not depend on its seed, so the application keeps them
(:class:`TensorContext`): a request that differs from a recent one only by its seed is not
resolved or checked again. For a 3×3 tensor with a new seed per request, resolving the
initializer again costs about half of what the whole request costs otherwise
(``docs/performance.md``).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from app import initializers as engine
from app.api import formats
from app.config import Settings
from app.errors import InvalidInputError, TooLargeError
from app.schemas.bounds import MAX_FAN, SEED_MAX
from app.schemas.tensors import TensorRequest

Where = Literal["body", "query"]

# The non-zero dimensions of an empty tensor multiply to at most this (× 8-byte items, NumPy's
# size arithmetic stays within 63 bits).
MAX_EMPTY_SPAN = 2**59
# Engine error fields that are request fields rather than initializer parameters.
_REQUEST_FIELDS = frozenset(TensorRequest.model_fields) - {"initializer"}


@dataclass(frozen=True, slots=True)
class Checked:
    """A request checked against the limits and the engine: everything but the seed.

    ``keras`` and ``tfjs`` are the initializer's configs with the seed still to fill in
    (``init.tfjs_config`` costs about as much as generating a 3×3 tensor). Shared: never
    mutate."""

    init: engine.Initializer
    shape: tuple[int, ...]
    work: int
    fan_in: int
    fan_out: int
    keras: dict[str, Any]
    tfjs: dict[str, Any]
    tfjs_unsupported: str | None  # why TF.js 4.22 cannot load ``tfjs`` (None: it can)

    def keras_config(self, seed: int) -> dict[str, Any]:
        """``init.keras_config(seed)`` without building it again."""
        return _with_seed(self.keras, seed)

    def tfjs_config(self, seed: int) -> dict[str, Any]:
        """``init.tfjs_config(seed)`` without building it again."""
        return _with_seed(self.tfjs, seed)


def _with_seed(template: dict[str, Any], seed: int) -> dict[str, Any]:
    config = template["config"]
    if "seed" not in config:  # a deterministic scheme: the template is the config
        return template
    return {**template, "config": {**config, "seed": seed}}  # same key order as the engine's


@dataclass(frozen=True, slots=True)
class TensorPlan:
    """A validated request: everything that fixes the bytes, nothing allocated yet."""

    request: TensorRequest
    checked: Checked
    seed: int
    seeded: bool  # the client chose the seed (top level or inside the initializer)
    media_type: str
    stats: bool

    @property
    def init(self) -> engine.Initializer:
        return self.checked.init

    @property
    def shape(self) -> tuple[int, ...]:
        return self.checked.shape

    @property
    def work(self) -> int:
        return self.checked.work

    @property
    def fan_in(self) -> int:
        return self.checked.fan_in

    @property
    def fan_out(self) -> int:
        return self.checked.fan_out

    @property
    def keras_config(self) -> dict[str, Any]:
        """The resolved initializer in canonical Keras form, seed included."""
        return self.checked.keras_config(self.seed)

    @property
    def tfjs_echo(self) -> dict[str, Any]:
        """The response's ``tfjs`` (the same in TF.js form; null when TF.js 4.22 cannot load
        it) and, then only, ``tfjs_unsupported`` (the reason)."""
        if self.checked.tfjs_unsupported is not None:
            return {"tfjs": None, "tfjs_unsupported": self.checked.tfjs_unsupported}
        return {"tfjs": self.checked.tfjs_config(self.seed)}


MemoKey = tuple[Any, ...]


class TensorContext:
    """What the tensor endpoints keep per application (apps built with other settings must
    not share it): the settings, the version (part of every ETag) and the checks of recent
    requests (:class:`Checked` by :func:`memo_key`; emptied when it holds ``MEMO_MAX``)."""

    MEMO_MAX = 1024
    # References longer than this (a Keras object with a long ``module``, padding) are checked
    # every time instead of kept: the memo stays within MEMO_MAX × a few KiB.
    MEMO_REF_MAX_CHARS = 512

    def __init__(self, settings: Settings, version: str) -> None:
        self.settings, self.version = settings, version
        self.checked: dict[MemoKey, Checked] = {}


def memo_key(req: TensorRequest, media_type: str) -> MemoKey:
    """Everything :func:`check_tensor`'s result depends on besides the settings. A reference
    object is keyed by its ``repr``: lossless for JSON values (``2`` and ``2.0``, ``NaN`` and
    ``null``, ``true`` and ``1`` all differ), and validation gives every other field its exact
    type."""
    ref = req.initializer
    initializer = ref if isinstance(ref, str) else repr(ref)
    return (
        media_type,
        tuple(req.shape),
        type(ref),
        initializer,
        req.dtype,
        req.layout,
        req.fan_in,
        req.fan_out,
        req.compat,
    )


def _engine_error(exc: engine.InitializerError, where: Where) -> Exception:
    """An engine error as the domain error the API renders (404 unknown name, else 422)."""
    if isinstance(exc, engine.UnknownInitializerError):
        # Imported here: app.api.routes imports every router, this module's among them.
        from app.api.routes.initializers import unknown_initializer

        return unknown_initializer(exc, [where, "initializer"])
    parts = [p for p in str(exc.field).split(".") if p]
    loc: list[str | int]
    if parts and parts[0] in _REQUEST_FIELDS:
        loc = [where, *parts]
    else:
        loc = [where, "initializer", *parts]
    return InvalidInputError(loc, exc.value, exc.msg)


def _too_large(detail: str, where: Where, shape: list[int], msg: str) -> TooLargeError:
    return TooLargeError(detail, errors=[{"loc": [where, "shape"], "msg": msg, "input": shape}])


def _check_size(shape: list[int], media_type: str, settings: Settings, where: Where) -> None:
    """Rank and element limits: arithmetic on the shape only."""
    if len(shape) > settings.max_rank:
        raise InvalidInputError(
            [where, "shape"],
            shape,
            f"rank {len(shape)} exceeds the maximum rank {settings.max_rank}",
        )
    elements = math.prod(shape)
    if elements == 0 and math.prod(d for d in shape if d) > MAX_EMPTY_SPAN:
        # NumPy refuses to describe such an array even with no elements in it.
        raise InvalidInputError(
            [where, "shape"],
            shape,
            "an empty tensor's non-zero dimensions must multiply to at most "
            f"{MAX_EMPTY_SPAN} (2**59)",
        )
    if media_type == formats.JSON:
        limit, setting = settings.max_elements_json, "INITLAB_MAX_ELEMENTS_JSON"
        advice = (
            f"Request a binary format (?format=binary, npy or safetensors; limit "
            f"{settings.max_elements_binary:,} elements) or a smaller shape."
        )
    else:
        limit, setting = settings.max_elements_binary, "INITLAB_MAX_ELEMENTS_BINARY"
        advice = "Request a smaller shape (e.g. fewer rows per tensor)."
    if elements > limit:
        raise _too_large(
            f"shape {shape} has {elements:,} elements; the limit for {media_type} is "
            f"{limit:,} ({setting}). {advice}",
            where,
            shape,
            f"{elements:,} elements is over the limit of {limit:,}",
        )


def check_tensor(
    req: TensorRequest, *, media_type: str, settings: Settings, where: Where = "body"
) -> Checked:
    """Check ``req`` (all but its seed) against the limits and the engine, allocating nothing."""
    shape = req.shape
    _check_size(shape, media_type, settings, where)
    try:
        init = engine.resolve(req.initializer)
        plan = init.plan(shape, req.dtype, req.layout, req.fan_in, req.fan_out, req.compat)
        work = init.work(shape)
        if work > settings.max_orthogonal_work:
            raise _too_large(
                f"{init.name} on shape {shape} costs {work:,} element-operations (it grows as "
                f"rows·cols·min(rows, cols)); the limit is {settings.max_orthogonal_work:,} "
                "(INITLAB_MAX_ORTHOGONAL_WORK). Request a smaller shape.",
                where,
                shape,
                f"cost {work:,} is over the limit of {settings.max_orthogonal_work:,}",
            )
        fan_in, fan_out = engine.compute_fans(shape, req.layout, req.fan_in, req.fan_out)
    except engine.InitializerError as exc:
        raise _engine_error(exc, where) from None
    if max(fan_in, fan_out) > MAX_FAN:  # possible for empty tensors with huge dimensions
        raise InvalidInputError(
            [where, "shape"],
            shape,
            f"the fans it implies ({fan_in}, {fan_out}) are over {MAX_FAN} (2**62); "
            "give fan_in / fan_out explicitly or use smaller dimensions",
        )
    templates = init.keras_config(0), init.tfjs_config(0), init.tfjs_unsupported(shape, plan.fans)
    return Checked(init, tuple(shape), work, fan_in, fan_out, *templates)


def _seed_conflict(req: TensorRequest, inner: int, where: Where) -> InvalidInputError:
    """Two different seeds, the request's and its initializer's: a 422 naming both."""
    ref = req.initializer
    loc: list[str | int] = [where, "initializer", "seed"]
    for key in ("config", "params"):  # Keras / TF.js config, or {name, params}
        holder = ref.get(key) if isinstance(ref, dict) else None
        if isinstance(holder, dict) and "seed" in holder:
            loc = [where, "initializer", key, "seed"]
    inner_field = ".".join(str(part) for part in loc)
    error = InvalidInputError(
        [where, "seed"],
        req.seed,
        f"conflicts with {inner_field} = {inner}: give one seed, or the same value in both",
    )
    assert error.errors is not None
    error.errors.append(
        {"loc": loc, "msg": f"conflicts with {where}.seed = {req.seed}", "input": inner}
    )
    return error


def plan_tensor(
    req: TensorRequest,
    *,
    media_type: str,
    stats: bool,
    settings: Settings,
    where: Where = "body",
    memo: dict[MemoKey, Checked] | None = None,
) -> TensorPlan:
    """Validate ``req`` against the limits and the engine without allocating the tensor, and
    fix its seed (drawn here when neither the request nor its initializer gives one).

    ``memo`` (a :class:`TensorContext`'s, for the same ``settings``) keeps
    :func:`check_tensor`'s results. Errors are raised each time, never kept."""
    key = memo_key(req, media_type) if memo is not None else ()
    checked = memo.get(key) if memo is not None else None
    if checked is None:
        checked = check_tensor(req, media_type=media_type, settings=settings, where=where)
        if memo is not None and len(key[3]) <= TensorContext.MEMO_REF_MAX_CHARS:
            if len(memo) >= TensorContext.MEMO_MAX:
                memo.clear()
            memo[key] = checked
    inner = checked.init.seed
    if req.seed is not None and inner is not None and req.seed != inner:
        raise _seed_conflict(req, inner, where)
    seeded = req.seed is not None or inner is not None
    seed = req.seed if req.seed is not None else inner
    if seed is None:
        seed = secrets.randbelow(SEED_MAX + 1)
    return TensorPlan(req, checked, seed, seeded, media_type, stats)
