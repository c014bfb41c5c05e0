"""A planned tensor generated and encoded: the ETag of a seeded request, the JSON body or the
binary formats with their ``X-*`` headers, inline when cheap or in a worker thread (bounded to
the CPU count) when not, so the event loop stays free.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import numpy as np
import orjson
from starlette.responses import Response

from app import initializers as engine
from app.api import formats
from app.api.tensor_plan import TensorPlan
from app.config import Settings

IMMUTABLE = "public, max-age=31536000, immutable"
# Bump when the bytes for the same request may change (engine or encoding changes).
# tensors-3: float32 normals by the compiled ziggurat, chunks of 2**17 elements.
# tensors-4: float16/bfloat16 uniforms and truncated normals cast inside their range.
ETAG_VERSION = "tensors-4"

_generation_limiter: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar(
    "initlab_generation_limiter"
)


def _limiter() -> anyio.CapacityLimiter:
    """Large generations in flight at once: one per core, so memory stays bounded."""
    try:
        return _generation_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(max(1, os.cpu_count() or 1))
        _generation_limiter.set(limiter)
        return limiter


def tensor_etag(plan: TensorPlan, version: str) -> str:
    """A strong ETag: the hash of the canonical request and the encoding."""
    req = plan.request
    canonical = {
        "v": [ETAG_VERSION, version],
        "shape": plan.shape,
        "initializer": plan.keras_config,
        "dtype": req.dtype,
        "layout": req.layout,
        "fan_in": req.fan_in,
        "fan_out": req.fan_out,
        "compat": req.compat,
        "media_type": plan.media_type,
        "stats": plan.stats and plan.media_type == formats.JSON,
    }
    text = orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)
    return f'"{hashlib.blake2b(text, digest_size=16).hexdigest()}"'


def _ascii_json(value: Any) -> str:
    text = orjson.dumps(value).decode()
    if not text.isascii():  # header values are latin-1: escape anything else
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def _file_stem(plan: TensorPlan) -> str:
    dims = "x".join(str(d) for d in plan.shape) or "scalar"
    return f"{plan.init.name}_{dims}_{plan.request.dtype}_seed{plan.seed}"


def array_for(plan: TensorPlan) -> np.ndarray:
    """The tensor a plan describes (in-process; used by benchmarks and tests)."""
    req = plan.request
    return engine.generate(
        plan.init,
        plan.shape,
        seed=plan.seed,
        dtype=req.dtype,
        layout=req.layout,
        fan_in=req.fan_in,
        fan_out=req.fan_out,
        compat=req.compat,
    )


def render_tensor(plan: TensorPlan, headers: dict[str, str]) -> Response:
    """Generate and encode the tensor (blocking: call inline only when cheap)."""
    req = plan.request
    arr = array_for(plan)
    keras_config = plan.keras_config
    media = plan.media_type
    if media == formats.JSON:  # the body carries everything the X-* headers would
        meta: dict[str, Any] = {
            "shape": plan.shape,
            "dtype": req.dtype,
            "seed": plan.seed,
            "initializer": keras_config,
            **plan.tfjs_echo,
            "layout": req.layout,
            "compat": req.compat,
            "fan_in": plan.fan_in,
            "fan_out": plan.fan_out,
        }
        if plan.stats:
            expected = plan.init.expected_std(plan.fan_in, plan.fan_out)
            meta["stats"] = formats.tensor_stats(arr, expected)
        return Response(formats.encode_json(meta, arr), media_type=media, headers=headers)
    headers = {
        **headers,
        "X-Tensor-Shape": ",".join(str(d) for d in plan.shape),
        "X-Tensor-Dtype": req.dtype,
        "X-Seed": str(plan.seed),
        "X-Initializer": _ascii_json(keras_config),
        "X-Fan-In": str(plan.fan_in),
        "X-Fan-Out": str(plan.fan_out),
    }
    if media == formats.OCTET_STREAM:
        return formats.BufferResponse(b"", formats.raw_view(arr), media_type=media, headers=headers)
    if media == formats.NPY:
        head, suffix = formats.npy_header(arr), "npy"
    else:
        metadata = {
            "initializer": headers["X-Initializer"],
            "seed": headers["X-Seed"],
            "dtype": req.dtype,
            "layout": req.layout,
            "fan_in": headers["X-Fan-In"],
            "fan_out": headers["X-Fan-Out"],
        }
        head, suffix = formats.safetensors_header(arr, req.dtype, metadata), "safetensors"
    headers["Content-Disposition"] = f'attachment; filename="{_file_stem(plan)}.{suffix}"'
    return formats.BufferResponse(head, formats.raw_view(arr), media_type=media, headers=headers)


async def respond(plan: TensorPlan, settings: Settings, headers: dict[str, str]) -> Response:
    """Render inline when cheap; otherwise in a worker thread, off the event loop."""
    if plan.work <= settings.threadpool_threshold_elements:
        return render_tensor(plan, headers)
    return await anyio.to_thread.run_sync(render_tensor, plan, headers, limiter=_limiter())
