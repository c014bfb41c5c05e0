"""The initializer engine (NumPy + ml_dtypes; the float32 normal kernels compiled by Numba).

Public surface: ``InitializerError``, ``UnknownInitializerError``, ``DTYPES``, ``LAYOUTS``,
``resolve``, ``compute_fans``, ``generate``, ``catalog``, ``describe``, ``Initializer``,
``warm_up``.
"""

from app.initializers.base import DTYPES, Initializer
from app.initializers.engine import generate
from app.initializers.errors import InitializerError, UnknownInitializerError
from app.initializers.fans import LAYOUTS, compute_fans
from app.initializers.registry import catalog, describe, resolve
from app.initializers.sampling import warm_up

__all__ = [
    "DTYPES",
    "LAYOUTS",
    "Initializer",
    "InitializerError",
    "UnknownInitializerError",
    "catalog",
    "compute_fans",
    "describe",
    "generate",
    "resolve",
    "warm_up",
]
