"""Request and response models for ``/v1/tensors`` and ``/v1/initializers``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

from app.schemas.bounds import MAX_DIM, MAX_FAN, SEED_MAX, check_json

Dtype = Literal["float32", "float64", "float16", "bfloat16", "int32"]
Layout = Literal["keras", "torch"]
Compat = Literal["keras"]
TensorFormat = Literal["json", "binary", "npy", "safetensors"]

InitializerRef = Annotated[
    str | dict[str, Any],
    Field(
        description=(
            "A name in any framework's spelling (`he_normal`, `HeNormal`, `heNormal`, "
            "`kaiming_normal_`), a Keras `{class_name, config}`, a TF.js `{className, config}` "
            "or `{name, params}`."
        ),
        examples=["he_normal", {"class_name": "VarianceScaling", "config": {"scale": 2.0}}],
    ),
    AfterValidator(check_json),
]
Dim = Annotated[StrictInt, Field(ge=0, le=MAX_DIM)]
Fan = Annotated[StrictInt, Field(ge=1, le=MAX_FAN)]


class TensorRequest(BaseModel):
    """What to generate: a shape, a scheme and everything that fixes the values."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"shape": [784, 256], "initializer": "he_normal", "seed": 42}]
        },
    )

    shape: list[Dim] = Field(
        description="Tensor shape; Keras layout is `(..., in, out)`, torch `(out, in, ...)`.",
        examples=[[784, 256]],
    )
    initializer: InitializerRef = "glorot_uniform"
    seed: Annotated[StrictInt, Field(ge=0, le=SEED_MAX)] | None = Field(
        default=None,
        description="0..2**32-1. When absent (and none is inside the initializer config) the "
        "server draws one and returns it.",
    )
    dtype: Dtype = "float32"
    layout: Layout = "keras"
    fan_in: Fan | None = Field(default=None, description="Overrides the fan derived from layout.")
    fan_out: Fan | None = Field(default=None, description="Overrides the fan derived from layout.")
    compat: Compat | None = Field(
        default=None, description='`"keras"`: bit-identical to Keras 3 (NumPy backend).'
    )


class TensorStats(BaseModel):
    """Summary statistics of the generated values (``?stats=true``)."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    expected_std: float | None = Field(
        description="The standard deviation the scheme's formula targets, when it defines one."
    )


class TensorRead(BaseModel):
    """The JSON encoding of a tensor: ``tf.tensor(body.values, body.shape)``."""

    shape: list[int]
    dtype: Dtype
    seed: int
    initializer: dict[str, Any] = Field(description="Canonical Keras form, seed included.")
    tfjs: dict[str, Any] | None = Field(
        description="The same initializer in TF.js form, null when TF.js 4.22 cannot load it."
    )
    tfjs_unsupported: str | None = Field(
        default=None, description="Present exactly when `tfjs` is null: why TF.js cannot load it."
    )
    layout: Layout
    compat: Compat | None
    fan_in: int
    fan_out: int
    stats: TensorStats | None = Field(default=None, description="Only with `?stats=true`.")
    values: list[float] = Field(description="Flat, row-major.")


class InitializerParam(BaseModel):
    """One parameter of a scheme."""

    model_config = ConfigDict(extra="allow")

    type: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[Any] | None = None
    description: str = ""


class InitializerRead(BaseModel):
    """One catalog entry."""

    model_config = ConfigDict(extra="allow")

    name: str
    aliases: list[str]
    family: str
    params: dict[str, InitializerParam]
    formula: str
    description: str
    references: list[Any]
    frameworks: dict[str, str | None]


class InitializerList(BaseModel):
    """``GET /v1/initializers``."""

    initializers: list[InitializerRead]
