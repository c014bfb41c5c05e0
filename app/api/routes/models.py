"""Models: post a layer list, get an id; its weights as TF.js ``model.json`` + ``weights.bin``
(and its 4 MiB shards), safetensors, ``.npz`` and Keras 3 ``.weights.h5`` (api.md, Models).
Artifacts are immutable: strong ETags (made weak by gzip), 304s; an ``Accept`` without the
file's media type is a 406. The files are one table, ``FILES`` (path, media type, body), each
entry a GET route."""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Header, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import ModelStoreDep, SettingsDep
from app.api.formats import etag_matches, negotiate
from app.api.tensor_response import ETAG_VERSION, IMMUTABLE
from app.config import Settings
from app.errors import InitlabError, InvalidInputError, NotFoundError, TooLargeError
from app.models import (
    Limits,
    ModelPlan,
    ModelSpecError,
    ModelTooLargeError,
    h5_stream,
    iter_weights,
    model_json,
    npz_stream,
    plan_model,
    safetensors_head,
    shard_count,
    shard_stream,
    weights_paths,
)

router = APIRouter(prefix="/v1/models", tags=["models"])

# Bump when the files of the same model may change (layout or encoding of an artifact).
ARTIFACTS_VERSION = "models-4"
# A file up to this size is generated in the endpoint's thread and sent as one body (memory: it
# and one weight); a stream costs a thread hop and a send per weight (the MLP of issue #8,
# 0.9 MB: GET weights.bin 5.5 → 4.0 ms side by side, bench/results/models.md).
INLINE_MAX_BYTES = 4 << 20
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# Keras 3's load_weights wants this suffix on the local file; the URL keeps it.
KERAS_WEIGHTS = "model.weights.h5"


def _limits(settings: Settings) -> Limits:
    return Limits(
        max_params=settings.max_model_params,
        max_layers=settings.max_model_layers,
        max_weight_elements=settings.max_elements_binary,
        max_orthogonal_work=settings.max_orthogonal_work,
        max_rank=settings.max_rank,
        max_depth=settings.max_model_depth,
        max_topology_bytes=settings.max_topology_bytes,
    )


def _client_error(exc: ModelSpecError) -> InitlabError:
    """problem+json naming the field as written (``layers[3].units``) and its value."""
    loc: list[str | int] = ["body"]
    for name, index in _PART.findall(exc.field):
        loc.append(int(index) if index else name)
    error: InitlabError
    if isinstance(exc, ModelTooLargeError):
        error = TooLargeError(exc.msg, loc=loc, value=exc.value)
    else:
        error = InvalidInputError(loc, exc.value, exc.msg)
    error.detail = f"{exc.field}: {exc.msg}"
    return error


def _plan(body: Any, settings: Settings) -> ModelPlan:
    try:
        return plan_model(body, _limits(settings))
    except ModelSpecError as exc:
        raise _client_error(exc) from exc


def _read(plan: ModelPlan) -> dict[str, Any]:
    base = f"/v1/models/{plan.id}"
    links: dict[str, Any] = {
        "self": base,
        "model_json": f"{base}/model.json",
        "weights_bin": f"{base}/weights.bin",
        "safetensors": f"{base}/weights.safetensors",
        "npz": f"{base}/weights.npz",
        "keras_weights": f"{base}/{KERAS_WEIGHTS}",
    }
    paths = weights_paths(plan)
    shapes = plan.output_shapes
    if len(paths) > 1:
        links["weights_shards"] = [f"{base}/{path}" for path in paths]
    return {
        "id": plan.id,
        "seed": plan.seed,
        "spec": plan.spec,
        "weights": [w.echo() for w in plan.weights],
        "params": plan.params,
        "bytes": plan.nbytes,
        # Each model output's shape (batch excluded), in output order; output_shape is the
        # first of them (a single-output model's only one).
        "output_shape": list(shapes[0]),
        "output_shapes": [list(shape) for shape in shapes],
        "links": links,
    }


# Plans of recently read models per application (an id fixes its spec and seed, so its plan;
# the settings are the app's): every GET still asks Redis whether the model exists, but does not
# plan it again (~0.2 ms for the MLP of issue #8, more for deep models). Emptied when full.
PLANS_MAX = 64
# The bodies of recently sent inline files per application, keyed (model id, file name): an
# artifact is immutable, so its bytes are made once (the MLP's weights.bin: 1.1 ms of generation
# a GET). Memory: at most BODIES_MAX_BYTES of bodies an app; emptied when the next would not fit.
BODIES_MAX_BYTES = 16 << 20


@dataclass
class _Memo:
    """The per-application memo: plans and sent bodies, each bounded."""

    plans: dict[str, ModelPlan] = field(default_factory=dict)
    bodies: dict[tuple[str, str], bytes] = field(default_factory=dict)
    body_bytes: int = 0

    def keep(self, key: tuple[str, str], body: bytes) -> None:
        if self.body_bytes + len(body) > BODIES_MAX_BYTES:
            self.bodies.clear()
            self.body_bytes = 0
        if len(body) <= BODIES_MAX_BYTES:
            self.bodies[key] = body
            self.body_bytes += len(body)


def _memo(request: Request) -> _Memo:
    memo: _Memo | None = getattr(request.app.state, "model_memo", None)
    if memo is None:
        memo = request.app.state.model_memo = _Memo()
    return memo


def _stored(model_id: str, request: Request, store: ModelStoreDep, settings: Settings) -> ModelPlan:
    found = store.get(model_id)
    if found is None:
        raise NotFoundError(
            f"No model {model_id!r}: never posted, or expired "
            f"({settings.model_ttl_seconds} s after its latest POST). Post its spec again."
        )
    plans = _memo(request).plans
    plan = plans.get(model_id)
    if plan is None:
        spec, seed = found
        plan = _plan({**spec, "seed": seed}, settings)
        if len(plans) >= PLANS_MAX:
            plans.clear()
        plans[model_id] = plan
    return plan


_MODEL_BODY = Body(
    examples=[
        {
            "input_shape": [784],
            "layers": [
                {"type": "dense", "units": 256, "activation": "relu"},
                {"type": "dense", "units": 10, "activation": "softmax"},
            ],
            "seed": 1,
        }
    ]
)


@router.post("", status_code=201)
def create_model(
    body: Annotated[dict[str, Any], _MODEL_BODY],
    response: Response,
    store: ModelStoreDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Plan a model; its id is the hash of the canonical spec and the seed.

    A layer list: `input_shape` (batch axis excluded) or `inputs` (`[{"name", "shape"}]`),
    `layers` (each `{"type", "name"?, "inbound"?, fields, "<weight>_initializer"?}`),
    `outputs`?, `seed` (drawn when absent), `defaults` (`keras` | `tfjs`: whose default
    initializers fill the gaps). Or `{"topology": <Keras 3 / Keras 2 / TF.js model JSON>,
    "seed"?, "defaults"?}` (docs/models.md).
    """
    plan = _plan(body, settings)
    store.put(plan.id, plan.spec, plan.seed)
    response.headers["Location"] = f"/v1/models/{plan.id}"
    return _read(plan)


@router.get("/{model_id}")
def read_model(
    request: Request, model_id: str, store: ModelStoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """A posted model: the same body as its POST answered."""
    return _read(_stored(model_id, request, store, settings))


def _etag(request: Request, model_id: str, artifact: str) -> str:
    text = orjson.dumps([ETAG_VERSION, ARTIFACTS_VERSION, request.app.version, model_id, artifact])
    return '"' + hashlib.sha256(text).hexdigest()[:32] + '"'


# What a file's body function makes of the plan and the route's integer path parameters (the
# shard's index and count): the whole body, or (Content-Length, chunks) to stream.
Made = tuple[int, Iterator[bytes | memoryview]] | bytes
IfNoneMatch = Annotated[str | None, Header()]
AcceptHeader = Annotated[
    str | None, Header(description="The media types the client takes (406 without the file's).")
]


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: ``GET /v1/models/{model_id}/<path>``."""

    path: str  # Starlette's form: ``{index:int}`` is an integer path parameter
    media_type: str
    body: Callable[[ModelPlan, dict[str, int]], Made]
    name: str  # the route's (the OpenAPI operation's)
    doc: str
    # weights.bin and the shards: TF.js fetches them with the headers given for model.json
    # (``requestInit``), so an ``Accept: application/json`` there must not refuse them.
    checks_accept: bool = True

    def artifact(self, params: dict[str, int]) -> str:
        """The file's name for these parameters (``group1-shard3of19.bin``): its ETag's key."""
        return _PARAM.sub(r"{\1}", self.path).format(**params)

    def params(self) -> list[str]:
        return _PARAM.findall(self.path)


_PARAM = re.compile(r"\{(\w+):int\}")


def _model_json(plan: ModelPlan, _: dict[str, int]) -> bytes:
    try:
        return orjson.dumps(model_json(plan, weights_paths(plan)))
    except ModelSpecError as exc:
        raise _client_error(exc) from exc


def _safetensors(plan: ModelPlan, _: dict[str, int]) -> Made:
    head = safetensors_head(plan)

    def chunks() -> Iterator[bytes | memoryview]:
        yield head
        yield from iter_weights(plan)

    return len(head) + plan.nbytes, chunks()


def _shard(plan: ModelPlan, params: dict[str, int]) -> Made:
    index, count, n = params["index"], params["count"], shard_count(plan)
    if n == 1 or count != n or not 1 <= index <= count:
        raise NotFoundError(
            f"No shard {index} of {count}: this model's model.json lists "
            + (
                "weights.bin alone (it fits one 4 MiB shard)"
                if n == 1
                else f"shards 1 to {n} of {n}"
            )
        )
    return shard_stream(plan, index)


FILES: tuple[ModelFile, ...] = (
    ModelFile(
        "model.json",
        "application/json",
        _model_json,
        "read_model_json",
        "The TF.js LayersModel artifact: `tf.loadLayersModel(<this URL>)` loads the model.",
    ),
    ModelFile(
        "weights.bin",
        "application/octet-stream",
        lambda plan, _: (plan.nbytes, iter_weights(plan)),
        "read_weights_bin",
        "Every weight as little-endian float32 in manifest order, streamed weight by weight\n"
        "(a file up to ``INLINE_MAX_BYTES`` in one body).",
        checks_accept=False,
    ),
    ModelFile(
        "weights.safetensors",
        "application/vnd.safetensors",
        _safetensors,
        "read_weights_safetensors",
        "A safetensors file: keys `layer/weight`, the canonical spec and seed in the metadata.",
    ),
    ModelFile(
        "weights.npz",
        "application/zip",
        lambda plan, _: npz_stream(plan),
        "read_weights_npz",
        "An uncompressed `.npz` (`numpy.load`), one array per weight keyed `layer/weight`.",
    ),
    ModelFile(
        KERAS_WEIGHTS,
        "application/x-hdf5",
        lambda plan, _: h5_stream(plan),
        "read_keras_weights",
        "Keras 3 weights: save as `model.weights.h5`, then `model.load_weights(path)` on the\n"
        "model Keras builds from the spec (the variables keyed as Keras keeps them).",
    ),
    ModelFile(
        "group1-shard{index:int}of{count:int}.bin",
        "application/octet-stream",
        _shard,
        "read_weights_shard",
        "Shard `index` of `count` of `weights.bin` (4 MiB each, the last shorter), as listed in\n"
        "`model.json` for a model over 4 MiB; each made from the weights it overlaps alone.",
        checks_accept=False,
    ),
)


def _serve(
    file: ModelFile,
    request: Request,
    model_id: str,
    store: ModelStoreDep,
    settings: Settings,
    params: dict[str, int],
    *,
    accept: str | None,
    if_none_match: str | None,
) -> Response:
    if file.checks_accept:
        negotiate(accept, (file.media_type,))  # 406 naming header.accept
    plan = _stored(model_id, request, store, settings)
    artifact = file.artifact(params)
    etag = _etag(request, model_id, artifact)
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers, media_type=file.media_type)
    memo, key = _memo(request), (model_id, artifact)
    body = memo.bodies.get(key)
    if body is None:
        made = file.body(plan, params)
        if isinstance(made, bytes):
            body = made
        else:
            length, chunks = made
            if length > INLINE_MAX_BYTES:
                headers["Content-Length"] = str(length)
                return StreamingResponse(chunks, media_type=file.media_type, headers=headers)
            body = b"".join(chunks)
        memo.keep(key, body)
    return Response(body, media_type=file.media_type, headers=headers)


def _endpoint(file: ModelFile) -> Callable[..., Response]:
    """The route of ``file``: its signature declares the integer path parameters (FastAPI
    reads them from it, for validation and the OpenAPI document)."""

    def endpoint(
        request: Request,
        model_id: str,
        store: ModelStoreDep,
        settings: SettingsDep,
        accept: AcceptHeader = None,
        if_none_match: IfNoneMatch = None,
        **params: int,
    ) -> Response:
        return _serve(
            file,
            request,
            model_id,
            store,
            settings,
            params,
            accept=accept,
            if_none_match=if_none_match,
        )

    signature = inspect.signature(endpoint)
    keyword = inspect.Parameter.KEYWORD_ONLY
    given = [
        p.replace(kind=keyword) for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD
    ]
    # the path's integers before the parameters with defaults (the headers)
    head = [p for p in given if p.default is p.empty]
    headers = [p for p in given if p.default is not p.empty]
    extra = [inspect.Parameter(name, keyword, annotation=int) for name in file.params()]
    new = signature.replace(parameters=[*head, *extra, *headers])
    endpoint.__signature__ = new  # type: ignore[attr-defined]
    endpoint.__name__ = file.name
    endpoint.__doc__ = file.doc
    return endpoint


for _file in FILES:
    router.add_api_route(
        f"/{{model_id}}/{_file.path}",
        _endpoint(_file),
        methods=["GET"],
        name=_file.name,
        response_class=Response,
        responses={
            200: {"content": {_file.media_type: {}}},
            304: {"description": "Unchanged since the given ETag (If-None-Match)."},
            404: {"description": "Unknown or expired model (or shard)."},
            406: {"description": f"The Accept header excludes {_file.media_type}."},
        },
    )
