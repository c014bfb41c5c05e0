"""The initializer engine (pure NumPy + ml_dtypes).

Public surface: ``InitializerError``, ``UnknownInitializerError``, ``DTYPES``, ``LAYOUTS``,
``resolve``, ``compute_fans``, ``generate``, ``catalog``, ``describe``, ``Initializer``.
"""

from app.initializers.base import DTYPES, Initializer
from app.initializers.engine import generate
from app.initializers.errors import InitializerError, UnknownInitializerError
from app.initializers.fans import LAYOUTS, compute_fans
from app.initializers.registry import catalog, describe, resolve

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
]
