"""Whole models' initial weights (pure NumPy core: no fastapi, redis or celery).

Public surface: ``plan_model`` (validate a layer list or a Keras / TF.js topology, plan
its weights, nothing allocated), ``ModelPlan``, ``Limits``, ``weight_seed``, the errors, and
the artifacts ``iter_weights``, ``weight_values``, ``model_json``, ``safetensors_head``,
``npz_bytes``.
"""

from app.models.artifacts import (
    iter_weights,
    npz_bytes,
    safetensors_head,
    weight_values,
)
from app.models.errors import ModelSpecError, ModelTooLargeError, ModelUnsupportedError
from app.models.layers import LAYER_TYPES
from app.models.spec import Limits, ModelPlan, plan_model, weight_seed
from app.models.tfjs import model_json

__all__ = [
    "LAYER_TYPES",
    "Limits",
    "ModelPlan",
    "ModelSpecError",
    "ModelTooLargeError",
    "ModelUnsupportedError",
    "iter_weights",
    "model_json",
    "npz_bytes",
    "plan_model",
    "safetensors_head",
    "weight_seed",
    "weight_values",
]
