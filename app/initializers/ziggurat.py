"""float32 standard normals from 32-bit words: a 256-layer ziggurat compiled with Numba.

Marsaglia & Tsang, "The Ziggurat Method for Generating Random Variables", J. Stat. Softw. 5(8),
2000, with 256 layers of equal area ``V`` under f(x) = exp(-x²/2), the base layer holding the
tail beyond ``R``. Layer boundaries X[0] = V / f(R) (the base strip's width), X[1] = R,
X[i+1] = f⁻¹(f(X[i]) + V / X[i]), X[256] = 0; layer i covers [0, X[i]] × [f(X[i]), f(X[i+1])].

One word w per output (Doornik's fix: the layer index and the value use disjoint bits):

- j = w & 0xFF picks the layer; v = (int32) w >> 8 ∈ [-2²³, 2²³) is the signed position, and
  h = v + ½ (exact in float32, symmetric about 0) gives z = h · X[j] / 2²³.
- |h| < floor(2²³ · X[j+1] / X[j]): z lies under the curve, accepted (≈ 98.8 % of words).
- Otherwise the attempt goes on from further words of the same stream: layer 0 draws from the
  tail by Marsaglia's method (a = -ln(u₁)/R, b = -ln(u₂) until 2b > a²; z = ±(R + a)); any
  other layer draws y uniform in the layer's height and accepts z when y < f(z); a refused
  attempt starts again from a new word.
- Truncation to [low, high]: an accepted z outside it is refused like any other attempt, so
  the result is exactly the normal restricted to [low, high].

The bulk pass is branch-free (one table gather, a multiply and compares per element) so LLVM
vectorises it; the rare rest runs in a second, sequential pass. Every floating-point operation
is an IEEE-754 addition, multiplication, division or comparison (no FMA contraction: Numba
compiles without fast-math) and ``ln`` is our own series, so the bytes do not depend on the
CPU the kernels were compiled for (tested with ``NUMBA_CPU_NAME=generic``). Uniforms from a
word: u = ((w >> 8) + 1) · 2⁻²⁴ ∈ (0, 1], so the tail stops at R + 24 ln 2 / R ≈ 8.21.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LAYERS = 256
R = 3.6541528853610088  # start of the tail (Marsaglia & Tsang's 256-layer value)
V = 4.92867323399e-3  # area of each layer under exp(-x²/2)
PEAK = R + 24 * math.log(2.0) / R  # largest |z| the kernels return (≈ 8.21)
BLOCK = 8192  # outputs drawn and transformed together (their words stay in the L1/L2 cache)
_LN2 = math.log(2.0)
# PCG64DXSM (NumPy's ``pcg64_cm_random_r``): 128-bit LCG with a 64-bit multiplier.
_PCG_MULT = np.uint64(0xDA942042E4DD58B5)
_LOW32 = np.uint64(0xFFFFFFFF)
_S32, _S48, _ONE = np.uint64(32), np.uint64(48), np.uint64(1)
_SQRT_HALF = math.sqrt(0.5)
_U24 = 2.0**-24


def _exp(x: float) -> float:
    """eˣ for -745 < x ≤ 0 from IEEE-754 double operations only (no C library): x = k·ln 2 + r
    with ln 2 split in two (fdlibm's constants), |r| ≤ ln 2 / 2, e^r by its Taylor series to
    r¹⁴/14! (error below 1e-17), times 2^k (exact)."""
    k = round(x / _LN2)
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    term = total = 1.0
    for n in range(1, 15):
        term *= r / n
        total += term
    return math.ldexp(total, k)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, K, F): W[j] = X[j]/2²³ (float32), K[j] = floor(2²³·X[j+1]/X[j]) (float32, exact),
    F[j] = f(X[j]) for j = 0..256 (float64). Built from IEEE-754 double operations and
    ``_exp``/``_ln`` (not the C library's, whose last bits may differ between machines), so
    the tables, and the bytes, are the same everywhere."""

    def f(x: float) -> float:
        return _exp(-0.5 * x * x)

    ln = _ln.py_func
    x = [V / f(R), R]
    for i in range(1, LAYERS - 1):
        x.append(math.sqrt(-2.0 * ln(V / x[i] + f(x[i]))))
    x.append(0.0)
    w = np.array([x[j] / 2**23 for j in range(LAYERS)], np.float32)
    k = np.array([math.floor(2**23 * x[j + 1] / x[j]) for j in range(LAYERS)], np.float32)
    return w, k, np.array([f(v) for v in x], np.float64)


@njit(cache=True, nogil=True)
def _ln(x: float) -> float:  # pragma: no cover - compiled
    """ln x for x > 0 from +, -, ×, ÷ only: x = m·2^e, m ∈ [√½, √2), s = (m-1)/(m+1),
    ln m = 2·(s + s³/3 + … + s¹⁹/19) (|s| ≤ 0.1716: error below 1e-17)."""
    m, e = math.frexp(x)
    if m < _SQRT_HALF:
        m *= 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = 1.0 / 19.0
    for k in range(17, 0, -2):
        p = p * z + 1.0 / k
    return 2.0 * s * p + e * _LN2


W, K, F = _tables()


@njit(cache=True, nogil=True, boundscheck=False)
def bulk(
    words: np.ndarray,
    out: np.ndarray,
    todo: np.ndarray,
    scale: np.float32,
    low: np.float32,
    high: np.float32,
) -> int:  # pragma: no cover - compiled
    """out[i] ← scale·z(words[i]) where the first attempt is accepted and within [low, high];
    todo[i] marks the others. Returns how many are marked."""
    marked = 0
    half = np.float32(0.5)
    for i in range(out.size):
        w = words[i]
        j = w & np.uint32(0xFF)
        h = np.float32(np.int32(w) >> np.int32(8)) + half
        z = h * W[j]
        miss = (abs(h) >= K[j]) | (z < low) | (z > high)
        out[i] = z * scale
        todo[i] = miss
        marked += miss
    return marked


@njit(cache=True, nogil=True)
def finish(
    words: np.ndarray,
    out: np.ndarray,
    todo: np.ndarray,
    extra: np.ndarray,
    scale: np.float32,
    low: np.float32,
    high: np.float32,
) -> bool:  # pragma: no cover - compiled
    """Complete the marked positions in order, drawing from ``extra``: a z outside [low, high]
    is refused like any other attempt. False when ``extra`` ran out first (the caller then
    runs again with more words: the same prefix, the same bytes). ``todo`` is padded with
    False to a multiple of 8 entries."""
    e = 0
    marks = todo.view(np.uint64)  # 8 marks a word: most words have none (1.2 % are marked)
    for k in range(marks.size):
        if marks[k] == 0:
            continue
        for i in range(8 * k, 8 * k + 8):
            if todo[i]:
                e = _complete(i, words, out, extra, e, scale, low, high)
                if e < 0:
                    return False
    return True


@njit(inline="always")
def _complete(
    i: int,
    words: np.ndarray,
    out: np.ndarray,
    extra: np.ndarray,
    e: int,
    scale: np.float32,
    low: np.float32,
    high: np.float32,
) -> int:  # pragma: no cover - compiled
    """Complete position i (marked by ``bulk``) from extra[e:]: the rest of its first attempt,
    then new attempts until one is accepted within [low, high]. Returns the next unused word,
    or -1 when ``extra`` ran out."""
    m = extra.size
    w = words[i]
    while True:
        j = w & np.uint32(0xFF)
        h = np.float32(np.int32(w) >> np.int32(8)) + np.float32(0.5)
        z = h * W[j]
        accepted = abs(h) < K[j]
        if not accepted and j == 0:  # the tail beyond R
            while True:
                if e + 2 > m:
                    return -1
                a = -_ln(((extra[e] >> 8) + 1) * _U24) / R
                b = -_ln(((extra[e + 1] >> 8) + 1) * _U24)
                e += 2
                if b + b > a * a:
                    break
            z = np.float32(R + a)
            if h < 0:
                z = -z
            accepted = True
        elif not accepted:  # a wedge: y uniform in [f(X[j]), f(X[j+1])], accept y < f(z)
            if e + 1 > m:
                return -1
            y = F[j] + ((extra[e] >> 8) + 1) * _U24 * (F[j + 1] - F[j])
            e += 1
            zz = np.float64(z)
            accepted = -2.0 * _ln(y) > zz * zz
        if accepted and low <= z <= high:
            out[i] = z * scale
            return e
        if e + 1 > m:
            return -1
        w = extra[e]
        e += 1


@njit(cache=True, nogil=True)
def fill(
    words: np.ndarray,
    out: np.ndarray,
    scale: float,
    low: float,
    high: float,
    first: int,
    todo: np.ndarray | None = None,
) -> bool:  # pragma: no cover - compiled
    """out ← scale·Z, Z a standard normal restricted to [low, high] (float32 values, ±inf for
    none), from the 64-bit ``words`` read as 32-bit words w: w[:out.size] for the first
    attempts, w[first:] for the rest (``finish``). False when those ran out. ``todo``: a
    scratch buffer of at least ``marks_size(out.size)`` entries (allocated when None)."""
    w = words.view(np.uint32)
    n = out.size
    size = marks_size(n)
    marks = np.empty(size, np.bool_) if todo is None else todo[:size]
    marks[n:] = False
    factor, lo, hi = np.float32(scale), np.float32(low), np.float32(high)
    if bulk(w, out, marks, factor, lo, hi) == 0:
        return True
    return finish(w, out, marks, w[first:], factor, lo, hi)


@njit(inline="always")
def marks_size(n: int) -> int:  # pragma: no cover - compiled
    """Entries of ``fill``'s marks for n outputs: whole 64-bit words for ``finish``'s scan."""
    return (n + 7) // 8 * 8


@njit(inline="always")
def _mulhi(a: np.uint64, b: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """The high 64 bits of the 128-bit product a·b."""
    a0, a1, b0, b1 = a & _LOW32, a >> _S32, b & _LOW32, b >> _S32
    t = a1 * b0 + ((a0 * b0) >> _S32)
    return a1 * b1 + (t >> _S32) + (((t & _LOW32) + a0 * b1) >> _S32)


@njit(cache=True, nogil=True)
def draw(state: np.ndarray, words: np.ndarray) -> None:  # pragma: no cover - compiled
    """words ← the next 64-bit outputs of PCG64DXSM, exactly NumPy's ``random_raw``;
    ``state`` = (state low, state high, inc low, inc high) is advanced in place."""
    s_lo, s_hi, i_lo, i_hi = state[0], state[1], state[2], state[3]
    for k in range(words.size):
        out = s_hi ^ (s_hi >> _S32)  # DXSM output of the state before the step
        out *= _PCG_MULT
        out ^= out >> _S48
        words[k] = out * (s_lo | _ONE)
        low = s_lo * _PCG_MULT  # state ← state·mult + inc (mod 2¹²⁸)
        high = _mulhi(s_lo, _PCG_MULT) + s_hi * _PCG_MULT
        s_lo = low + i_lo
        s_hi = high + i_hi + (_ONE if s_lo < low else np.uint64(0))
    state[0], state[1] = s_lo, s_hi


@njit(cache=True)
def layout(m: int, rate: float) -> tuple[int, int]:  # pragma: no cover - compiled
    """For a block of m outputs: (first, pad). The first attempts take w[:first] (one 32-bit
    word each, m rounded up to even); the second attempts start with ``pad`` more 64-bit words
    (``rate`` = expected extra 32-bit words per output, with a margin)."""
    return (m + 1) // 2 * 2, int(m * rate) // 2 + 4


@njit(cache=True, nogil=True)
def normals(
    state: np.ndarray, out: np.ndarray, scale: float, low: float, high: float, rate: float
) -> None:  # pragma: no cover - compiled
    """``fill`` block by block (``BLOCK`` outputs, so a block's words stay in cache), with
    words drawn by ``draw`` from ``state``: first // 2 + pad for a block, then pad more at a
    time until ``fill`` succeeds — what the same ``random_raw`` calls would give."""
    first, pad = layout(min(out.size, BLOCK), rate)
    buffer = np.empty(first // 2 + pad, np.uint64)
    todo = np.empty(marks_size(BLOCK), np.bool_)
    for start in range(0, out.size, BLOCK):
        block = out[start : start + BLOCK]
        first, pad = layout(block.size, rate)
        words = buffer[: first // 2 + pad]
        draw(state, words)
        while not fill(words, block, scale, low, high, first, todo):
            more = np.empty(pad, np.uint64)
            draw(state, more)
            words = np.concatenate((words, more))


UNTRUNCATED_RATE = 0.025  # ``rate`` with nothing refused: ≈ 0.018 extra words per output


@njit(cache=True, nogil=True)
def standard(state: np.ndarray, out: np.ndarray, scale: float) -> None:  # pragma: no cover
    """``normals`` untruncated (the common case, one argument-typing less per call)."""
    normals(state, out, scale, -np.inf, np.inf, UNTRUNCATED_RATE)
