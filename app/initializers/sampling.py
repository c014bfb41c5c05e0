"""Random draws for the canonical stream (``compat="keras"``: :mod:`app.initializers.keras_rng`).

Canonical stream
----------------
Seeding. ``seeded(seed)`` returns a ``np.random.Generator`` on a PCG64DXSM bit generator (the
PCG variant NumPy recommends for many parallel streams) whose 128-bit state and increment are
the low and high halves of BLAKE2b-256(seed ‖ 0) (each an 8-byte little-endian integer;
personalisation ``initlab-seed``; increment forced odd). Distinct seeds thus get unrelated
increments — distinct PCG streams, not offsets of one sequence. This replaces
``np.random.default_rng(seed)``: no ``SeedSequence`` and no bit-generator construction per
call (each thread keeps one generator and writes its state in place: ~0.6 µs instead of
~12 µs).

Chunks. A flat buffer of n elements with n ≤ ``SMALL`` is drawn from the generator itself.
Larger buffers are cut into ``chunk_count(n)`` chunks (an even number, ``≈ n / CHUNK``, pairs of
elements split as evenly as possible); one 64-bit word ``base`` is drawn from the generator and
chunk k draws from a PCG64DXSM keyed like above by BLAKE2b-256(base ‖ k) (personalisation
``initlab-chunk``). Chunks are independent, so they fill on a thread pool (NumPy and the
kernels release the GIL) and the bytes depend only on (seed, n), never on the number of threads.

float32 normals: the 256-layer ziggurat of ``app.initializers.ziggurat``, compiled by Numba,
one 32-bit word per element plus the rare second attempts' words (``_ziggurat``). Its kernels
draw the PCG64DXSM words themselves (exactly ``random_raw``'s), advancing the NumPy
generator's state in place (``KeyedGenerator``), or a copy written back for any other
PCG64DXSM generator. Integer operations, a table gather, correctly rounded float products
and our own ``ln`` series: the bytes do not depend on the CPU or its SIMD level.
float64 normals: NumPy's ziggurat in every chunk. The ziggurat is integer/table based; its
rare wedge and tail draws call the C library's ``exp``/``log``, not NumPy's SIMD kernels.

Uniforms: ``Generator.random`` in the drawing dtype, then low + (high-low)·u.

Truncated normals: float32 ones by the same ziggurat, which refuses attempts outside the
bounds; float64 ones by the normal draw, then only the rejected positions are redrawn, in
order, from further ziggurat draws of the same chunk generator until none is left.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from app.initializers import ziggurat

# No standard-normal draw of initlab exceeds this in magnitude: NumPy's float64 ziggurat tail
# returns r + x with x = -ln(1 - U)/r ≤ 53·ln 2 / r, r = 3.6541528853610088, i.e. ≤ 13.708
# (the float32 ziggurat's tail stops at ziggurat.PEAK ≈ 8.21). Keras compat draws the same
# float64 ziggurat. The engine's overflow checks use it as the bound of |z|.
NORMAL_PEAK = 13.71

SMALL = 1 << 17  # up to this many elements: one draw from the seeded generator, no chunks
CHUNK = 1 << 17  # target chunk size above SMALL
_blake2b = hashlib.blake2b

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


def _reset_pool() -> None:
    # A forked child (a Celery worker) inherits the pool object but not its threads.
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_reset_pool)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="initlab-draw"
            )
        return _pool


# --- seeding ----------------------------------------------------------------------------------


_DIGEST = struct.Struct("<4Q")
_SEED_KEY = _blake2b(digest_size=32, person=b"initlab-seed")
_CHUNK_KEY = _blake2b(digest_size=32, person=b"initlab-chunk")


def _pcg_key(key: int, k: int, person: Any) -> tuple[int, int, int, int]:
    """PCG64DXSM (state, inc) from BLAKE2b-256(key ‖ k) (8-byte little-endian each) personalised
    by ``person`` (``_SEED_KEY`` or ``_CHUNK_KEY``), as four 64-bit words: state low, state
    high, inc low (forced odd), inc high."""
    digest = person.copy()
    digest.update((key | k << 64).to_bytes(16, "little"))
    s_lo, s_hi, i_lo, i_hi = _DIGEST.unpack(digest.digest())
    return s_lo, s_hi, i_lo | 1, i_hi


class _PCGWords(ctypes.Structure):
    """NumPy's ``pcg64_random_t`` where the C compiler has 128-bit integers: state, inc."""

    _fields_ = [("words", ctypes.c_uint64 * 4)]


class _PCGState(ctypes.Structure):
    """NumPy's ``pcg64_state``: the PCG words and the buffered half of a 64-bit output."""

    _fields_ = [
        ("pcg", ctypes.POINTER(_PCGWords)),
        ("has_uint32", ctypes.c_int),
        ("uinteger", ctypes.c_uint32),
    ]


class KeyedGenerator(np.random.Generator):
    """A ``np.random.Generator`` on PCG64DXSM whose (state, inc) is assigned per call.

    Assigning ``bit_generator.state`` goes through a dict and costs ~0.9 µs. When the bit
    generator's C state has the layout this module expects (checked on creation by writing
    through both paths and reading back), the four words are written in place instead, and
    ``state_words`` (a uint64 view of them) lets the compiled kernels draw the stream and
    advance it in place. Otherwise ``state_words`` is None and the kernels work on a copy of the
    state that is written back afterwards: the same bytes either way.
    """

    def __init__(self) -> None:
        super().__init__(np.random.PCG64DXSM(0))
        self._c_state = self._in_place()
        self._c_words = None if self._c_state is None else self._c_state.pcg.contents.words
        self.state_words = None if self._c_words is None else np.ctypeslib.as_array(self._c_words)

    def _in_place(self) -> _PCGState | None:
        bitgen = self.bit_generator
        state = _PCGState.from_address(bitgen.ctypes.state_address)
        probe = (0x0123456789ABCDEF, 0x0FEDCBA987654321, 0x1111111111111111, 0x2222222222222223)
        self._by_dict(probe)
        if tuple(state.pcg.contents.words) != probe:
            return None
        back = tuple(w ^ 0xFFFF for w in probe)  # inc stays odd
        state.pcg.contents.words[:] = back
        read = bitgen.state["state"]
        if (read["state"], read["inc"]) != (back[0] | back[1] << 64, back[2] | back[3] << 64):
            return None
        return state

    def _by_dict(self, words: tuple[int, int, int, int]) -> None:
        _set_pcg_words(self.bit_generator, words)

    def key(self, words: tuple[int, int, int, int]) -> KeyedGenerator:
        """Re-key to (state low, state high, inc low, inc high); returns ``self``."""
        if self._c_state is None or self._c_words is None:
            self._by_dict(words)
        else:
            self._c_words[:] = words
            self._c_state.has_uint32 = self._c_state.uinteger = 0
        return self


def _set_pcg_words(bitgen: np.random.BitGenerator, words: Sequence[int]) -> None:
    """A PCG64DXSM's (state low, state high, inc low, inc high), through its ``state`` dict."""
    s_lo, s_hi, i_lo, i_hi = (int(w) for w in words)
    bitgen.state = {
        "bit_generator": "PCG64DXSM",
        "state": {"state": s_lo | s_hi << 64, "inc": i_lo | i_hi << 64},
        "has_uint32": 0,
        "uinteger": 0,
    }


def _pcg_words(bitgen: np.random.BitGenerator) -> np.ndarray:
    """A PCG64DXSM's (state low, state high, inc low, inc high), copied out of its ``state``."""
    state = bitgen.state
    if state["bit_generator"] != "PCG64DXSM":
        raise TypeError(f"the canonical stream is PCG64DXSM, not {state['bit_generator']}")
    pcg = state["state"]
    words = (pcg["state"] & _M64, pcg["state"] >> 64, pcg["inc"] & _M64, pcg["inc"] >> 64)
    return np.array(words, np.uint64)


_M64 = (1 << 64) - 1


def _thread_generator(slot: str) -> KeyedGenerator:
    gen: KeyedGenerator | None = getattr(_local, slot, None)
    if gen is None:
        gen = KeyedGenerator()
        setattr(_local, slot, gen)
    return gen


def seeded(seed: int, *, reuse: bool = True) -> np.random.Generator:
    """The canonical generator for ``seed`` (see the module docstring).

    With ``reuse`` the calling thread's generator is re-seeded and returned: it is valid until
    the next ``seeded`` call in the same thread (``generate`` finishes with it before then).
    """
    gen = _thread_generator("seeded") if reuse else KeyedGenerator()
    return gen.key(_pcg_key(seed, 0, _SEED_KEY))


# --- chunking ---------------------------------------------------------------------------------


def chunk_bounds(n: int) -> list[tuple[int, int]]:
    """[start, stop) of every chunk of a buffer of ``n > SMALL`` elements (pairs kept whole)."""
    count = max(2, -(-n // CHUNK))
    count += count & 1
    pairs = (n + 1) // 2
    step, extra = divmod(pairs, count)
    bounds = []
    start = 0
    for k in range(count):
        stop = start + 2 * (step + (k < extra))
        bounds.append((start, min(stop, n)))
        start = stop
    return bounds


def _run_chunked(
    rng: np.random.Generator,
    n: int,
    fill: Callable[[np.random.Generator, int, int], None],
) -> None:
    """``fill(rng, 0, n)`` for small buffers, else ``fill(chunk_generator, start, stop)``."""
    if n <= SMALL:
        fill(rng, 0, n)
        return
    base = int(rng.bit_generator.random_raw())

    def task(k: int, start: int, stop: int) -> None:
        gen = _thread_generator("chunk").key(_pcg_key(base, k, _CHUNK_KEY))
        fill(gen, start, stop)

    tasks = [(k, start, stop) for k, (start, stop) in enumerate(chunk_bounds(n))]
    if (os.cpu_count() or 1) == 1:
        for item in tasks:
            task(*item)
        return
    for future in [_executor().submit(task, *item) for item in tasks]:
        future.result()


def normal_acceptance(lo: float, hi: float) -> float:
    """P(lo ≤ Z ≤ hi) for a standard normal Z."""
    return 0.5 * (math.erf(hi / math.sqrt(2.0)) - math.erf(lo / math.sqrt(2.0)))


_F32 = np.finfo(np.float32)
# std within this range multiplies float32 draws (|z| ≤ ziggurat.PEAK ≈ 8.21) without leaving
# float32's normal range: the product is then correctly rounded in float32 itself.
_F32_STD_MIN, _F32_STD_MAX = float(_F32.smallest_normal), float(_F32.max) / 16.0


def scale(values: np.ndarray, std: float) -> None:
    """values *= std in place, correctly rounded for any finite std.

    float32 values whose std is not comfortably a normal float32 (tiny: it would be
    subnormal or 0; huge: it would overflow) are multiplied in float64 and rounded once.
    """
    if std == 1.0:
        return
    if values.dtype == np.float32 and not _F32_STD_MIN <= abs(std) <= _F32_STD_MAX:
        with np.errstate(over="ignore", under="ignore"):
            np.multiply(values, std, out=values, dtype=np.float64, casting="unsafe")
        return
    if abs(std) < 1e300:
        values *= values.dtype.type(std)
        return
    with np.errstate(over="ignore"):  # truncated normals: beyond the cut, redrawn anyway
        values *= values.dtype.type(std)


@functools.lru_cache(maxsize=1024)
def _truncation(lo: float, hi: float) -> tuple[float, float, float]:
    """(low, high, rate) for the kernels: [lo, hi] rounded inwards to float32 (±inf stay: a
    float32 z between them lies in [lo, hi]) and the second-attempt word rate for its
    acceptance p = P(lo ≤ Z ≤ hi)."""
    with np.errstate(over="ignore"):
        low, high = np.float32(lo), np.float32(hi)
    if low < lo:
        low = np.nextafter(low, np.float32(np.inf))
    if high > hi:
        high = np.nextafter(high, np.float32(-np.inf))
    rate = 1.25 * (1.0 / normal_acceptance(lo, hi) - 1.0) + ziggurat.UNTRUNCATED_RATE
    return float(low), float(high), rate


def _ziggurat(
    gen: np.random.Generator,
    out: np.ndarray,
    std: float,
    lo: float = -math.inf,
    hi: float = math.inf,
) -> None:
    """out (flat float32) ← std·Z, Z a standard normal restricted to [lo, hi] (σ units), by
    the compiled ziggurat (``app.initializers.ziggurat``).

    Words (the kernels run ``gen``'s PCG64DXSM themselves, exactly as ``random_raw`` would),
    for each block of ``ziggurat.BLOCK`` outputs in turn (m of them): ⌈m/2⌉ + pad 64-bit
    words read as 32-bit words (low half of each 64-bit word first).
    The first ⌈m/2⌉·2 give the first attempts, one per output (for odd m the last is unused);
    the rest feed the second attempts (rare; more with truncation) in output order.
    pad = ⌊m·(1.25·(1/p − 1) + 0.025)⌋ // 2 + 4 with p the probability of [lo, hi]
    (``ziggurat.layout``). When they run out, pad more words extend them and the block is
    drawn again.
    """
    # std folds into the kernel where std·z stays a normal float32; otherwise unit normals
    # are scaled afterwards, in float64 (``scale``).
    folded = _F32_STD_MIN <= std <= _F32_STD_MAX
    factor = std if folded else 1.0
    untruncated = lo == -math.inf and hi == math.inf
    if untruncated:
        low, high, rate = lo, hi, ziggurat.UNTRUNCATED_RATE
    else:
        low, high, rate = _truncation(lo, hi)
    view: np.ndarray | None = getattr(gen, "state_words", None)
    # Without an in-place view (another layout, a plain Generator): draw from a copy of the
    # state, then write it back.
    state = _pcg_words(gen.bit_generator) if view is None else view
    if untruncated:
        ziggurat.standard(state, out, factor)
    else:
        ziggurat.normals(state, out, factor, low, high, rate)
    if view is None:
        _set_pcg_words(gen.bit_generator, state.tolist())
    if not folded:
        scale(out, std)


def warm_up() -> None:
    """Load (or, the first time on a machine, compile: ~1.5 s) the float32 kernels now, so the
    first request or run that draws normals does not pay for it. Numba caches the machine code
    under ``NUMBA_CACHE_DIR`` when set, else beside this package, or in ``~/.cache/numba``
    where that is not writable."""
    gen = seeded(0, reuse=False)
    fill_normal(gen, np.empty(2, np.float32), 0.0, 1.0)
    fill_truncated_normal(gen, np.empty(2, np.float32), 0.0, 1.0, -2.0, 2.0)


def _normal_into(gen: np.random.Generator, out: np.ndarray, std: float) -> None:
    """out ← N(0, std²): the compiled ziggurat for float32, NumPy's for float64."""
    if out.dtype == np.float32:
        _ziggurat(gen, out, std)
        return
    gen.standard_normal(out.size, dtype=out.dtype, out=out)
    scale(out, std)


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, mean: float, std: float
) -> np.ndarray:
    """A new ``shape`` array of N(mean, std²) in ``dtype`` (float32/float64), as ``fill_normal``."""
    out = np.empty(shape, dtype)
    if mean == 0.0 and std > 0.0 and dtype == np.float32 and out.size <= SMALL:
        _ziggurat(rng, out.reshape(-1), std)  # fill_normal's path for these, without the checks
    else:
        fill_normal(rng, out.reshape(-1), mean, std)
    return out


def fill_normal(rng: np.random.Generator, out: np.ndarray, mean: float, std: float) -> None:
    """out ← N(mean, std²); ``out`` is a flat float32/float64 buffer (std 0: all ``mean``)."""
    if std == 0.0:
        out.fill(mean)  # not mean + 0·z, whose negative z give -0.0
        return
    shift = out.dtype.type(mean)
    if out.size <= SMALL:  # the small path of _run_chunked, without its closure
        _normal_into(rng, out, std)
        if mean != 0.0:
            out += shift
        return

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        _normal_into(gen, view, std)
        if mean != 0.0:
            view += shift

    _run_chunked(rng, out.size, fill)


def fill_uniform(rng: np.random.Generator, out: np.ndarray, low: float, high: float) -> None:
    """out ← U[low, high): low + (high − low)·u.

    When high − low overflows the buffer's dtype (finite bounds of opposite signs near its
    largest number) the value is computed as low·(1 − u) + high·u instead.
    """
    kind = out.dtype.type
    with np.errstate(over="ignore"):
        width, shift = kind(high - low), kind(low)
    wide = not np.isfinite(width)

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        gen.random(view.size, dtype=out.dtype, out=view)
        if wide:
            rest = kind(1.0) - view
            rest *= shift
            view *= kind(high)
            view += rest
            return
        view *= width
        if low != 0.0:
            view += shift

    _run_chunked(rng, out.size, fill)


def _truncate(gen: np.random.Generator, flat: np.ndarray, std: float, lo: float, hi: float) -> None:
    """Redraw, in order, the entries of ``flat`` outside [lo·std, hi·std] (ziggurat refills)."""
    kind = flat.dtype.type
    with np.errstate(over="ignore"):  # a bound beyond the dtype is ±inf: nothing cut there
        low, high = kind(lo * std), kind(hi * std)
    if lo == -hi:
        todo = np.flatnonzero(np.abs(flat) > high)
    else:
        todo = np.flatnonzero((flat < low) | (flat > high))
    if not todo.size:
        return
    acceptance = max(normal_acceptance(lo, hi), 1e-12)
    while todo.size:
        batch = np.empty(min(int(todo.size / acceptance * 1.1) + 8, 1 << 22), flat.dtype)
        _normal_into(gen, batch, std)
        if lo == -hi:
            kept = batch[np.abs(batch) <= high]
        else:
            inside = batch >= low
            inside &= batch <= high
            kept = batch[inside]
        kept = kept[: todo.size]
        flat[todo[: kept.size]] = kept
        todo = todo[kept.size :]


def truncated_normal(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    dtype: np.dtype,
    mean: float,
    std: float,
    lo: float,
    hi: float,
) -> np.ndarray:
    """A new ``shape`` array as ``fill_truncated_normal`` (float32/float64)."""
    out = np.empty(shape, dtype)
    fill_truncated_normal(rng, out.reshape(-1), mean, std, lo, hi)
    return out


def fill_truncated_normal(
    rng: np.random.Generator,
    out: np.ndarray,
    mean: float,
    std: float,
    lo: float,
    hi: float,
) -> None:
    """out ← mean + std·Z with Z a standard normal restricted to [lo, hi] (σ units).

    float32: the ziggurat refuses attempts outside [lo, hi] itself. float64: the chunk is
    drawn whole; only the positions outside [lo·std, hi·std] are then redrawn, in order, from
    further ziggurat draws of the same generator until none is left.
    """
    if std == 0.0:
        out.fill(mean)
        return
    shift = out.dtype.type(mean)
    if out.dtype == np.float32 and mean == 0.0 and out.size <= SMALL:  # fill(), unrolled
        _ziggurat(rng, out, std, lo, hi)
        return

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        if view.dtype == np.float32:
            _ziggurat(gen, view, std, lo, hi)
        else:
            _normal_into(gen, view, std)
            _truncate(gen, view, std, lo, hi)
        if mean != 0.0:
            view += shift

    if out.size <= SMALL:
        fill(rng, 0, out.size)
    else:
        _run_chunked(rng, out.size, fill)


def draw_dtype(dtype: np.dtype) -> np.dtype:
    """float64 targets draw in float64; every other float target draws float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)
