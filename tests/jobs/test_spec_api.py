"""The job spec through ``POST /v1/jobs`` (the real app in-process, real Redis): every option
the docs document is accepted (202) and reaches the trainer's ``RunSpec``; every documented
example body is accepted; bad options are 422s naming the field and the value.

Accepted jobs are cancelled at once, so a worker started by a later test skips their runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.jobs.runplan import build_run_spec
from app.main import create_app
from app.training.activations import Activation
from app.training.spec import RunSpec

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings())) as c:
        yield c


def job(**over: Any) -> dict[str, Any]:
    """A small circles job; ``model`` / ``training`` / ``record`` / ``scheme`` entries given
    here are merged into the defaults."""
    body: dict[str, Any] = {
        "dataset": {"name": "circles", "train_size": 60, "validation_size": 20},
        "model": {"hidden_layers": [4, 3], "activation": "relu"},
        "training": {"optimizer": {"name": "adam"}, "batch_size": 16, "epochs": 1},
        "schemes": [{"label": "He", "initializer": "he_normal"}],
        "seed": 3,
    }
    for key in ("model", "training", "record"):
        if key in over:
            body[key] = {**body.get(key, {}), **over.pop(key)}
    if "scheme" in over:
        body["schemes"] = [{**body["schemes"][0], **over.pop("scheme")}]
    body.update(over)
    return body


def accepted(client: TestClient, body: Any) -> dict[str, Any]:
    res = client.post("/v1/jobs", json=body)
    assert res.status_code == 202, res.text
    doc: dict[str, Any] = res.json()
    assert client.delete(f"/v1/jobs/{doc['id']}").status_code == 200
    return doc


def run_spec_of(doc: dict[str, Any]) -> RunSpec:
    return build_run_spec(doc["spec"], 0, 0)


def refused(client: TestClient, body: Any, loc: list[Any], value: Any) -> dict[str, Any]:
    res = client.post("/v1/jobs", json=body)
    assert res.status_code == 422, res.text
    assert res.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = res.json()
    assert any(e["loc"] == loc and e.get("input") == value for e in problem["errors"]), problem
    return problem


# Every option of docs/architecture.md's RunSpec section and api.md's job body, and what the
# trainer's RunSpec then holds (attribute path → value).
DOCUMENTED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "optimizer as a plain name",
        {"training": {"optimizer": "sgd"}},
        {"optimizer.name": "sgd", "optimizer.learning_rate": 0.01},
    ),
    (
        "optimizer name in any case",
        {"training": {"optimizer": {"name": "Adam"}}},
        {"optimizer.name": "adam", "optimizer.learning_rate": 0.001},
    ),
    (
        "learning_rate",
        {"training": {"optimizer": {"name": "adam", "learning_rate": 0.02}}},
        {"optimizer.learning_rate": 0.02},
    ),
    (
        "lr",
        {"training": {"optimizer": {"name": "sgd", "lr": 0.3}}},
        {"optimizer.learning_rate": 0.3},
    ),
    (
        "weight_decay",
        {"training": {"optimizer": {"name": "adam", "weight_decay": 0.1}}},
        {"optimizer.weight_decay": 0.1},
    ),
    (
        "AdamW's default weight decay",
        {"training": {"optimizer": "adamw"}},
        {"optimizer.name": "adamw", "optimizer.weight_decay": 0.01},
    ),
    (
        "sgd momentum, nesterov",
        {"training": {"optimizer": {"name": "sgd", "momentum": 0.9, "nesterov": True}}},
        {"optimizer.momentum": 0.9, "optimizer.nesterov": True},
    ),
    (
        "adam beta1, beta2",
        {"training": {"optimizer": {"name": "adam", "beta1": 0.8, "beta2": 0.99}}},
        {"optimizer.beta1": 0.8, "optimizer.beta2": 0.99},
    ),
    (
        "adamw betas",
        {"training": {"optimizer": {"name": "adamw", "betas": [0.7, 0.95]}}},
        {"optimizer.beta1": 0.7, "optimizer.beta2": 0.95},
    ),
    (
        "adam eps",
        {"training": {"optimizer": {"name": "adam", "eps": 1e-7}}},
        {"optimizer.eps": 1e-7},
    ),
    (
        "adam epsilon",
        {"training": {"optimizer": {"name": "adam", "epsilon": 1e-6}}},
        {"optimizer.eps": 1e-6},
    ),
    (
        "rmsprop alpha, eps, momentum, centered",
        {
            "training": {
                "optimizer": {
                    "name": "rmsprop",
                    "alpha": 0.9,
                    "eps": 1e-6,
                    "momentum": 0.5,
                    "centered": True,
                }
            }
        },
        {
            "optimizer.alpha": 0.9,
            "optimizer.eps": 1e-6,
            "optimizer.momentum": 0.5,
            "optimizer.centered": True,
        },
    ),
    (
        "rmsprop rho (Keras)",
        {"training": {"optimizer": {"name": "rmsprop", "rho": 0.8}}},
        {"optimizer.alpha": 0.8},
    ),
    ("loss auto", {"training": {"loss": "auto"}}, {"loss": "auto"}),
    ("loss cross_entropy", {"training": {"loss": "cross_entropy"}}, {"loss": "cross_entropy"}),
    (
        "loss binary_cross_entropy",
        {"training": {"loss": "binary_cross_entropy"}},
        {"loss": "binary_cross_entropy"},
    ),
    (
        "loss Keras spelling",
        {"training": {"loss": "binary_crossentropy"}},
        {"loss": "binary_cross_entropy"},
    ),
    (
        "loss softmax_cross_entropy",
        {"training": {"loss": "softmax_cross_entropy"}},
        {"loss": "softmax_cross_entropy"},
    ),
    ("loss mse", {"training": {"loss": "mse"}}, {"loss": "mse"}),
    ("full batch as null", {"training": {"batch_size": None}}, {"batch_size": None}),
    ("full batch as 'full'", {"training": {"batch_size": "full"}}, {"batch_size": None}),
    ("steps", {"training": {"epochs": None, "steps": 7}}, {"steps": 7, "epochs": None}),
    (
        "shuffle, drop_last",
        {"training": {"shuffle": False, "drop_last": True}},
        {"shuffle": False, "drop_last": True},
    ),
    ("no hidden layers", {"model": {"hidden_layers": []}}, {"hidden_layers": ()}),
    ("dropout", {"model": {"dropout": 0.25}}, {"dropout": 0.25}),
    ("output_units", {"model": {"output_units": 1}}, {"output_units": 1}),
    ("activation Tanh", {"model": {"activation": "Tanh"}}, {"activation": Activation("tanh")}),
    (
        "activation identity",
        {"model": {"activation": "identity"}},
        {"activation": Activation("linear")},
    ),
    (
        "leaky_relu negative_slope",
        {"model": {"activation": {"name": "leaky_relu", "negative_slope": 0.2}}},
        {"activation": Activation("leaky_relu", negative_slope=0.2)},
    ),
    (
        "elu alpha",
        {"model": {"activation": {"name": "elu", "alpha": 0.5}}},
        {"activation": Activation("elu", alpha=0.5)},
    ),
    (
        "model bias_initializer",
        {"model": {"bias_initializer": "ones"}},
        {"bias_initializer": "ones"},
    ),
    (
        "model.kernel_initializer, no scheme initializer",
        {"model": {"kernel_initializer": "glorot_uniform"}, "scheme": {"initializer": None}},
        {"kernel_initializer": "glorot_uniform"},
    ),
    (
        "model.layers",
        {"model": {"layers": [{"layer": 2, "kernel_initializer": "zeros"}]}},
        {"layers.2.kernel_initializer": "zeros"},
    ),
    (
        "scheme bias_initializer and layers",
        {
            "scheme": {
                "bias_initializer": "ones",
                "layers": [{"layer": 0, "kernel_initializer": "orthogonal"}],
            }
        },
        {"bias_initializer": "ones", "layers.0.kernel_initializer": "orthogonal"},
    ),
    (
        "every layer overridden, no initializer anywhere",
        {
            "scheme": {
                "initializer": None,
                "layers": [{"layer": i, "kernel_initializer": "he_uniform"} for i in range(3)],
            }
        },
        {"kernel_initializer": None, "layers.2.kernel_initializer": "he_uniform"},
    ),
    ("record diagnostics off", {"record": {"diagnostics": False}}, {"diagnostics": False}),
    (
        "record diagnostics_batch_size, eval_every",
        {"record": {"diagnostics_batch_size": 32, "eval_every": 2}, "training": {"epochs": 4}},
        {"diagnostics_batch_size": 32, "eval_every": 2},
    ),
]


def _attr(spec: RunSpec, path: str) -> Any:
    value: Any = spec
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    return value


@pytest.mark.parametrize(
    ("over", "expected"), [c[1:] for c in DOCUMENTED], ids=[c[0] for c in DOCUMENTED]
)
def test_every_documented_option_is_accepted_and_reaches_the_trainer(
    client: TestClient, over: dict[str, Any], expected: dict[str, Any]
) -> None:
    doc = accepted(client, job(**json.loads(json.dumps(over))))
    spec = run_spec_of(doc)
    for path, value in expected.items():
        assert _attr(spec, path) == value, path


def test_the_stored_spec_is_canonical(client: TestClient) -> None:
    doc = accepted(
        client,
        job(
            model={"activation": "Leaky-ReLU"},
            training={
                "optimizer": {"name": "RMSprop", "lr": 0.05, "rho": 0.8, "epsilon": 1e-6},
                "loss": "binary_crossentropy",
            },
        ),
    )
    opt = doc["spec"]["training"]["optimizer"]
    assert (opt["name"], opt["learning_rate"], opt["alpha"], opt["eps"]) == (
        "rmsprop",
        0.05,
        0.8,
        1e-6,
    )
    assert not {"lr", "rho", "epsilon"} & set(opt)
    assert doc["spec"]["model"]["activation"] == "leaky_relu"
    assert doc["spec"]["training"]["loss"] == "binary_cross_entropy"


@pytest.mark.parametrize(
    ("over", "loc", "value"),
    [
        (
            {"training": {"optimizer": {"name": "adam", "momentum": 0.9}}},
            ["training", "optimizer", "momentum"],
            0.9,
        ),
        (
            {"training": {"optimizer": {"name": "sgd", "centered": True}}},
            ["training", "optimizer", "centered"],
            True,
        ),
        (
            {"training": {"optimizer": {"name": "rmsprop", "beta1": 0.9}}},
            ["training", "optimizer", "beta1"],
            0.9,
        ),
        (
            {"training": {"optimizer": {"name": "sgd", "nesterov": True}}},
            ["training", "optimizer", "nesterov"],
            True,
        ),
        (
            {"training": {"optimizer": {"name": "adam", "betas": [0.9, 0.999], "beta1": 0.8}}},
            ["training", "optimizer", "beta1"],
            0.8,
        ),
        (
            {"training": {"optimizer": {"name": "adam", "betas": [0.9, 1.5]}}},
            ["training", "optimizer", "betas"],
            [0.9, 1.5],
        ),
        (
            {"training": {"optimizer": {"name": "adam", "lr": -1}}},
            ["training", "optimizer", "lr"],
            -1,
        ),
        ({"training": {"optimizer": "lbfgs"}}, ["training", "optimizer", "name"], "lbfgs"),
        (
            {"training": {"optimizer": {"name": "adam", "amsgrad": True}}},
            ["training", "optimizer", "amsgrad"],
            True,
        ),
        ({"training": {"loss": "hinge"}}, ["training", "loss"], "hinge"),
        (  # a rule over the pair: the loc is the object (as api.md's clients know it)
            {"training": {"steps": 5}},
            ["training"],
            {"optimizer": {"name": "adam"}, "batch_size": 16, "epochs": 1, "steps": 5},
        ),
        ({"model": {"activation": "swishy"}}, ["model", "activation"], "swishy"),
        (
            {"model": {"activation": {"name": "relu", "alpha": 1}}},
            ["model", "activation"],
            {"name": "relu", "alpha": 1},
        ),
        (
            {"model": {"activation": {"name": "elu", "alpha": 0}}},
            ["model", "activation"],
            {"name": "elu", "alpha": 0},
        ),
        ({"record": {"diagnostics_batch_size": 5000}}, ["record", "diagnostics_batch_size"], 5000),
    ],
)
def test_bad_options_are_422_naming_the_field_and_value(
    client: TestClient, over: dict[str, Any], loc: list[Any], value: Any
) -> None:
    refused(client, job(**over), loc, value)


def test_a_dataset_given_by_id_alone_is_an_upload(client: TestClient) -> None:
    import io

    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(
        buf,
        x_train=rng.normal(size=(40, 3)).astype(np.float32),
        y_train=rng.integers(0, 2, size=40),
    )
    res = client.post("/v1/datasets", files={"file": ("d.npz", buf.getvalue())})
    assert res.status_code == 201, res.text
    dataset_id = res.json()["id"]
    doc = accepted(client, job(dataset={"id": dataset_id}))
    assert doc["spec"]["dataset"] == {"name": "upload", "id": dataset_id}
    assert doc["spec"]["dataset_info"]["n_train"] == 40


# ----------------------------------------------------------------------- documented examples


def _json_objects(text: str) -> list[Any]:
    """Every JSON object in ``text`` that starts at a ``{`` and parses (curl ``-d '...'``
    bodies, ```json blocks, inline code)."""
    decoder = json.JSONDecoder()
    found = []
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        found.append(obj)
    return found


def _job_bodies(text: str) -> list[dict[str, Any]]:
    return [
        o
        for o in _json_objects(text)
        if isinstance(o, dict) and ("preset" in o or {"dataset", "schemes"} <= set(o))
    ]


# The HTTP contract's example (api.md, "Training-comparison jobs"), which lives outside the
# repository: read it from there when it is at hand, and keep this copy tested either way.
CONTRACT_EXAMPLE: dict[str, Any] = {
    "dataset": {"name": "fashion-mnist", "validation_size": 5000, "train_size": None},
    "model": {"hidden_layers": [256, 128], "activation": "relu", "bias_initializer": "zeros"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.001},
                 "loss": "cross_entropy", "batch_size": 128, "epochs": 2},
    "schemes": [{"label": "all zeros", "initializer": "zeros"},
                {"label": "general rule", "initializer": "general_rule"},
                {"label": "He normal", "initializer": "he_normal"}],
    "repeats": 3, "seed": 0,
    "record": {"plot_n_batches": 100},
}  # fmt: skip


def _documented_examples() -> list[tuple[str, dict[str, Any]]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    shared_api = Path("/work/shared/docs/api.md")
    if shared_api.is_file():
        pages.append(shared_api)
    out = [("api.md (contract copy)", CONTRACT_EXAMPLE)]
    for page in pages:
        for i, body in enumerate(_job_bodies(page.read_text())):
            out.append((f"{page.name}#{i}", body))
    return out


EXAMPLES = _documented_examples()


def test_the_docs_hold_job_examples() -> None:
    names = {name.split("#")[0] for name, _ in EXAMPLES}
    assert {"README.md", "datasets.md"} <= names
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize(("name", "body"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_every_job_example_in_the_docs_is_accepted(
    client: TestClient, name: str, body: dict[str, Any]
) -> None:
    accepted(client, body)


def test_every_openapi_example_of_post_jobs_is_accepted(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    content = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    examples = content["application/json"]["examples"]
    assert {"spec", "preset"} <= set(examples)
    for example in examples.values():
        accepted(client, example["value"])
