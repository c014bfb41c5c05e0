"""Whole models' initial weights (pure NumPy core: no fastapi, redis or celery).

Public surface: ``plan_model`` (validate a layer list or a Keras / TF.js topology, plan
its weights, nothing allocated), ``ModelPlan``, ``Limits``, ``weight_seed``, the errors, and
the artifacts ``iter_weights``, ``weight_values``, ``model_json``, ``safetensors_head``,
``npz_stream``, ``h5_stream`` (Keras 3 ``.weights.h5``) and the TF.js shards
(``weights_paths``, ``shard_count``, ``shard_stream``).
"""

from app.models.artifacts import (
    iter_weights,
    safetensors_head,
    weight_values,
)
from app.models.errors import ModelSpecError, ModelTooLargeError, ModelUnsupportedError
from app.models.keras_h5 import h5_stream
from app.models.layers import LAYER_TYPES
from app.models.npz import npz_stream
from app.models.shards import shard_count, shard_name, shard_stream, weights_paths
from app.models.spec import Limits, ModelPlan, plan_model, weight_seed
from app.models.tfjs import model_json

__all__ = [
    "LAYER_TYPES",
    "Limits",
    "ModelPlan",
    "ModelSpecError",
    "ModelTooLargeError",
    "ModelUnsupportedError",
    "h5_stream",
    "iter_weights",
    "model_json",
    "npz_stream",
    "plan_model",
    "safetensors_head",
    "shard_count",
    "shard_name",
    "shard_stream",
    "weight_seed",
    "weight_values",
    "weights_paths",
]
