"""Every initialization scheme, by family; ``SCHEMES`` is the catalogue's order.

- ``constant``: zeros, ones, constant, identity, eye, dirac, stft
- ``distributions``: random normal / uniform and their torch / JAX variants, small / large
  random, general rule, torch default; ``truncated``: Keras / JAX / torch truncated normals
- ``variance``: VarianceScaling and Glorot / He / LeCun; ``variance_torch``: xavier, kaiming
- ``orthogonal``: orthogonal, torch orthogonal, delta orthogonal, sparse
"""

from __future__ import annotations

from app.initializers.base import Initializer
from app.initializers.schemes.constant import STFT, Constant, Dirac, Eye, Identity, Ones, Zeros
from app.initializers.schemes.distributions import (
    GeneralRule,
    JaxNormal,
    JaxUniform,
    LargeRandom,
    RandomNormal,
    RandomUniform,
    SmallRandom,
    TorchDefault,
    TorchNormal,
    TorchUniform,
)
from app.initializers.schemes.orthogonal import DeltaOrthogonal, Orthogonal, Sparse, TorchOrthogonal
from app.initializers.schemes.truncated import JaxTruncatedNormal, TruncatedNormal, TruncNormal
from app.initializers.schemes.variance import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
)
from app.initializers.schemes.variance_torch import (
    KaimingNormal,
    KaimingUniform,
    XavierNormal,
    XavierUniform,
)

SCHEMES: tuple[type[Initializer], ...] = (
    Zeros,
    Ones,
    Constant,
    RandomUniform,
    RandomNormal,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
    Identity,
    DeltaOrthogonal,
    XavierUniform,
    XavierNormal,
    KaimingUniform,
    KaimingNormal,
    TruncNormal,
    Eye,
    Dirac,
    Sparse,
    TorchOrthogonal,
    TorchDefault,
    TorchNormal,
    TorchUniform,
    GeneralRule,
    SmallRandom,
    LargeRandom,
    JaxUniform,
    JaxNormal,
    JaxTruncatedNormal,
    STFT,
)

__all__ = ["SCHEMES"]
