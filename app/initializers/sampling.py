"""Random draws for the canonical stream and for ``compat="keras"``.

Canonical stream
----------------
Seeding. ``seeded(seed)`` returns a ``np.random.Generator`` on a PCG64DXSM bit generator (the
PCG variant NumPy recommends for many parallel streams) whose 128-bit state and increment are
the low and high halves of BLAKE2b-256(seed ‖ 0) (each an 8-byte little-endian integer;
personalisation ``initlab-seed``; increment forced odd). Distinct seeds thus get unrelated
increments — distinct PCG streams, not offsets of one sequence. This replaces
``np.random.default_rng(seed)``: no ``SeedSequence`` and no bit-generator construction per
call (each thread keeps one generator and assigns its state: ~3 µs instead of ~12 µs).

Chunks. A flat buffer of n elements with n ≤ ``SMALL`` is drawn from the generator itself.
Larger buffers are cut into ``chunk_count(n)`` chunks (an even number, ``≈ n / CHUNK``, pairs of
elements split as evenly as possible); one 64-bit word ``base`` is drawn from the generator and
chunk k draws from a PCG64DXSM keyed like above by BLAKE2b-256(base ‖ k) (personalisation
``initlab-chunk``). Chunks are independent, so they fill on a thread pool (NumPy
releases the GIL) and the bytes depend only on (seed, n), never on the number of threads.

float32 normals. Small buffers: NumPy's float32 ziggurat (``standard_normal``). Chunks:
Box–Muller with one 64-bit PCG word per pair of outputs. The low 32 bits ``a`` give the
radius r = sqrt(-2 ln u), u = ((a >> 8) + 1)·2⁻²⁴ ∈ [2⁻²⁴, 1] (so |z| ≤ 5.77, as in PyTorch's
CPU ``normal_``). The high 32 bits ``b``, read as a signed integer, give v = b >> 8 ∈ [-2²³,
2²³) and the angle φ = v·(π/2)·2⁻²³ ∈ [-π/2, π/2); z₁ = r·sin φ and z₂ = ±r·cos φ with the
sign from bit 0 of ``b`` (the pair is then a uniform angle on the whole circle). cos φ is
computed as sin((2²³ − |v|)·(π/2)·2⁻²³), the reflected argument exact in integers. ``ln`` and
``sin`` are evaluated with a fixed sequence of IEEE-754 float32 additions, multiplications and
one division (musl's logf range reduction with the atanh series to s⁹; an odd degree-9
polynomial for sin on [-π/2, π/2]), plus ``sqrt``, integer shifts and masks: ≤ 3 ulp from the
exact Box–Muller value of the same bits. Every one of those operations is correctly rounded,
so the bytes do not depend on which SIMD kernels NumPy dispatches to (AVX2, AVX-512,
baseline) — unlike NumPy's own float32 ``log``/``sin``/``cos``, whose last bits differ between
them (measured: the former ``np.log``/``np.sin`` construction changed bytes under
``NPY_DISABLE_CPU_FEATURES=X86_V3``).
float64 normals: NumPy's ziggurat in every chunk. The ziggurat is integer/table based; its
rare wedge and tail draws call the C library's ``exp``/``log``, not NumPy's SIMD kernels.

Uniforms: ``Generator.random`` in the drawing dtype, then low + (high-low)·u.

Truncated normals: the normal draw, then only the rejected positions are redrawn, in order,
from further float32 (float64) ziggurat draws of the same chunk generator until none is left.

Keras compat (``keras_*``): exactly the calls of Keras 3's NumPy backend
(``keras/src/backend/numpy/random.py``) so the bytes match bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# No standard-normal draw of initlab exceeds this in magnitude: NumPy's float64 ziggurat tail
# returns r + x with x = -ln(1 - U)/r ≤ 53·ln 2 / r, r = 3.6541528853610088, i.e. ≤ 13.708
# (the float32 ziggurat's tail stops at 8.2, Box–Muller at 5.77). Keras compat draws the same
# float64 ziggurat. The engine's overflow checks use it as the bound of |z|.
NORMAL_PEAK = 13.71

SMALL = 1 << 14  # up to this many elements: one draw from the seeded generator, no chunks
CHUNK = 1 << 16  # target chunk size above SMALL
_M128 = (1 << 128) - 1
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


def _pcg_state(key: int, k: int, person: bytes) -> dict[str, object]:
    """PCG64DXSM state and increment from BLAKE2b-256(key ‖ k) (8-byte little-endian each)."""
    digest = _blake2b(
        key.to_bytes(8, "little") + k.to_bytes(8, "little"), digest_size=32, person=person
    ).digest()
    x = int.from_bytes(digest, "little")
    return {
        "bit_generator": "PCG64DXSM",
        "state": {"state": x & _M128, "inc": (x >> 128) | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }


def _thread_generator(slot: str) -> np.random.Generator:
    gen: np.random.Generator | None = getattr(_local, slot, None)
    if gen is None:
        gen = np.random.Generator(np.random.PCG64DXSM(0))
        setattr(_local, slot, gen)
    return gen


def seeded(seed: int, *, reuse: bool = True) -> np.random.Generator:
    """The canonical generator for ``seed`` (see the module docstring).

    With ``reuse`` the calling thread's generator is re-seeded and returned: it is valid until
    the next ``seeded`` call in the same thread (``generate`` finishes with it before then).
    """
    gen = _thread_generator("seeded") if reuse else np.random.Generator(np.random.PCG64DXSM(0))
    gen.bit_generator.state = _pcg_state(seed, 0, b"initlab-seed")
    return gen


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
        gen = _thread_generator("chunk")
        gen.bit_generator.state = _pcg_state(base, k, b"initlab-chunk")
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


# --- float32 Box–Muller from IEEE-exact operations ------------------------------------------

_F = np.float32
# sin x = x + x·x²·(S0 + x²(S1 + x²(S2 + x²·S3))) on [0, π/2] (weighted least squares fit).
_S0, _S1, _S2, _S3 = _F(-0.16666663), _F(0.008333162), _F(-0.00019816557), _F(2.6209891e-06)
_ANGLE = _F(math.pi / 2 / 2**23)
_LN2_M2 = _F(-2.0 * math.log(2.0))
_SQRT_HALF_BITS = 0x3F3504F3  # float32 bits of √½
_ONE_BITS = 0x3F800000


_F32 = np.finfo(np.float32)
# std within this range multiplies float32 draws (and the Box–Muller radius ≤ 5.77) without
# leaving float32's normal range: the product is then correctly rounded in float32 itself.
_F32_STD_MIN, _F32_STD_MAX = float(_F32.smallest_normal), float(_F32.max) / 8.0


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


def _scratch(h: int) -> tuple[np.ndarray, np.ndarray]:
    """Two per-thread buffers of 2h 32-bit words (reused across chunks)."""
    bufs: tuple[np.ndarray, np.ndarray] | None = getattr(_local, "scratch", None)
    if bufs is None or bufs[0].size < 2 * h:
        size = max(2 * h, CHUNK)
        bufs = (np.empty(size, np.uint32), np.empty(size, np.uint32))
        _local.scratch = bufs
    return bufs[0][: 2 * h], bufs[1][: 2 * h]


def _box_muller(gen: np.random.Generator, out: np.ndarray, std: float) -> None:
    """out (float32, even length 2h) ← N(0, std²) pairs; see the module docstring."""
    h = out.size // 2
    words = gen.bit_generator.random_raw(h).view(np.uint32)  # 2h independent 32-bit words
    radius_bits, angle_bits = words[:h], words[h:]
    s1, s2 = _scratch(h)
    f1, f2 = s1.view(np.float32), s2.view(np.float32)

    # out = sin(x) for x = v·(π/2)·2⁻²³ over [v, ±(2²³ − |v|)], v = b >> 8 (arithmetic, 24 bits
    # signed): z₁ = r·sin φ carries the sign of v, z₂ = r·cos φ = r·sin(π/2 − |φ|) gets bit 0 of b.
    v, w = s1[:h].view(np.int32), s1[h:].view(np.int32)
    np.right_shift(angle_bits.view(np.int32), 8, out=v)
    np.abs(v, out=w)
    np.subtract(np.int32(1 << 23), w, out=w)
    np.multiply(s1.view(np.int32), _ANGLE, out=out, dtype=np.float32, casting="unsafe")
    np.multiply(out, out, out=f2)
    np.multiply(f2, _S3, out=f1)
    f1 += _S2
    f1 *= f2
    f1 += _S1
    f1 *= f2
    f1 += _S0
    f1 *= f2
    f1 *= out
    out += f1  # odd polynomial: sin(-x) is exactly -sin(x)

    # r² = -2 ln u with u = m·2^e, m ∈ [√½, √2): ln m = 2(s + s³/3 + … + s⁹/9), s = (m-1)/(m+1).
    ix, e = s1[h:], s1[:h]
    np.right_shift(radius_bits, 8, out=e)
    e += np.uint32(1)
    np.copyto(f1[h:], e.view(np.int32), casting="unsafe")  # exact: ≤ 2²⁴
    ix += np.uint32(_ONE_BITS - _SQRT_HALF_BITS)
    np.right_shift(ix, 23, out=e)
    ix &= np.uint32(0x7FFFFF)
    ix += np.uint32(_SQRT_HALF_BITS)
    f = f1[h:]
    f -= _F(1.0)
    s, z = f2[:h], f2[h:]
    np.add(f, _F(2.0), out=s)
    np.divide(f, s, out=s)
    np.multiply(s, s, out=z)
    np.multiply(z, _F(1 / 9), out=f)
    f += _F(1 / 7)
    f *= z
    f += _F(1 / 5)
    f *= z
    f += _F(1 / 3)
    f *= z
    f *= s
    f += s  # ln(m) / 2
    f *= _F(-4.0)
    np.copyto(z, e.view(np.int32), casting="unsafe")  # biased exponent of u·2²⁴
    z -= _F(127 + 24)
    z *= _LN2_M2
    f += z
    np.sqrt(f, out=f)
    # std folds into the radius only where radius·std stays a normal float32; otherwise the
    # unit normals are scaled afterwards, in float64 (``scale``).
    folded = _F32_STD_MIN <= std <= _F32_STD_MAX
    if folded and std != 1.0:
        f *= _F(std)
    out[:h] *= f
    out[h:] *= f

    mask = s2[:h]
    np.left_shift(angle_bits, 31, out=mask)
    out.view(np.uint32)[h:] ^= mask
    if not folded:
        scale(out, std)


def _normal_into(gen: np.random.Generator, out: np.ndarray, std: float, small: bool) -> None:
    """out ← N(0, std²): ziggurat for float64 and small float32 buffers, else Box–Muller."""
    if out.dtype == np.float64 or small:
        gen.standard_normal(out.size, dtype=out.dtype, out=out)
        scale(out, std)
        return
    if out.size % 2:
        pairs = np.empty(out.size + 1, np.float32)
        _box_muller(gen, pairs, std)
        out[:] = pairs[:-1]
    else:
        _box_muller(gen, out, std)


def normal(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, mean: float, std: float
) -> np.ndarray:
    """A new ``shape`` array of N(mean, std²) in ``dtype`` (float32/float64), as ``fill_normal``."""
    if std == 0.0:
        return np.full(shape, mean, dtype)
    if math.prod(shape) > SMALL:
        out = np.empty(shape, dtype)
        fill_normal(rng, out.reshape(-1), mean, std)
        return out
    values = rng.standard_normal(shape, dtype=dtype)  # the small path of fill_normal, unrolled
    scale(values, std)
    if mean != 0.0:
        values += dtype.type(mean)
    return values


def fill_normal(rng: np.random.Generator, out: np.ndarray, mean: float, std: float) -> None:
    """out ← N(mean, std²); ``out`` is a flat float32/float64 buffer (std 0: all ``mean``)."""
    if std == 0.0:
        out.fill(mean)  # not mean + 0·z, whose negative z give -0.0
        return
    small = out.size <= SMALL
    shift = out.dtype.type(mean)

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        _normal_into(gen, view, std, small)
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


def _truncate(
    gen: np.random.Generator, flat: np.ndarray, std: float, lo: float, hi: float
) -> None:
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
        batch = gen.standard_normal(min(int(todo.size / acceptance * 1.1) + 8, 1 << 22),
                                    dtype=flat.dtype)
        scale(batch, std)
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
    if std == 0.0:
        return np.full(shape, mean, dtype)
    if math.prod(shape) > SMALL:
        out = np.empty(shape, dtype)
        fill_truncated_normal(rng, out.reshape(-1), mean, std, lo, hi)
        return out
    values = rng.standard_normal(shape, dtype=dtype)  # the small path of the fill, unrolled
    flat = values.reshape(-1)
    scale(flat, std)
    _truncate(rng, flat, std, lo, hi)
    if mean != 0.0:
        flat += dtype.type(mean)
    return values


def fill_truncated_normal(
    rng: np.random.Generator,
    out: np.ndarray,
    mean: float,
    std: float,
    lo: float,
    hi: float,
) -> None:
    """out ← mean + std·Z with Z a standard normal restricted to [lo, hi] (σ units).

    The chunk is drawn whole; only the positions outside [lo·std, hi·std] are then redrawn,
    in order, from further ziggurat draws of the same generator until none is left.
    """
    if std == 0.0:
        out.fill(mean)
        return
    small = out.size <= SMALL
    shift = out.dtype.type(mean)

    def fill(gen: np.random.Generator, start: int, stop: int) -> None:
        view = out[start:stop]
        _normal_into(gen, view, std, small)
        _truncate(gen, view, std, lo, hi)
        if mean != 0.0:
            view += shift

    _run_chunked(rng, out.size, fill)


def draw_dtype(dtype: np.dtype) -> np.dtype:
    """float64 targets draw in float64; every other float target draws float32."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


# --- Keras 3 NumPy backend, call for call -------------------------------------------------


def keras_rng(seed: int) -> np.random.Generator:
    """``draw_seed(int)`` → ``np.array([seed, 0], uint32)`` → ``default_rng``."""
    return np.random.default_rng(np.array([seed, 0], dtype=np.uint32))


def keras_normal(
    seed: int, shape: tuple[int, ...], mean: float, stddev: float, dtype: np.dtype
) -> np.ndarray:
    rng = keras_rng(seed)
    return np.asarray(rng.normal(size=shape, loc=mean, scale=stddev).astype(dtype))


def keras_uniform(
    seed: int, shape: tuple[int, ...], minval: float, maxval: float, dtype: np.dtype
) -> np.ndarray:
    rng = keras_rng(seed)
    return np.asarray(rng.uniform(size=shape, low=minval, high=maxval).astype(dtype))


def keras_truncated_normal(
    seed: int, shape: tuple[int, ...], mean: float, stddev: float, dtype: np.dtype
) -> np.ndarray:
    rng = keras_rng(seed)
    lower, upper = mean - 2 * stddev, mean + 2 * stddev
    n = math.prod(shape)
    kept: list[np.ndarray] = []
    have = 0
    # Keras appends whole filtered batches of n draws until it has n values.
    while have < n:
        batch = rng.normal(loc=mean, scale=stddev, size=n)
        valid = batch[(batch >= lower) & (batch <= upper)]
        kept.append(valid)
        have += valid.size
    flat = np.concatenate(kept) if kept else np.empty(0)
    return np.asarray(flat[:n].astype(dtype).reshape(shape))
