"""``/openapi.json``: every error response documented as problem+json with the Problem schema."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def test_every_error_response_is_problem_json(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    operations = [op for item in doc["paths"].values() for op in item.values()]
    assert len(operations) >= 20
    for op in operations:
        errors = {s: r for s, r in op["responses"].items() if s == "default" or s[0] in "45"}
        assert {"414", "429", "431", "default"} <= set(errors), op["operationId"]
        for status, response in errors.items():
            assert response["content"] == PROBLEM, (op["operationId"], status)
    assert "422" in doc["paths"]["/v1/jobs"]["get"]["responses"]
    schemas = doc["components"]["schemas"]
    assert schemas["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert "HTTPValidationError" not in schemas


def test_security_is_declared_only_when_keys_are_configured() -> None:
    def secured(settings: Settings) -> list[str]:
        with TestClient(create_app(settings)) as c:
            doc = c.get("/openapi.json").json()
        return [p for p, item in doc["paths"].items() for op in item.values() if "security" in op]

    assert secured(Settings()) == []
    with_keys = secured(Settings(api_keys=["k"]))
    assert "/v1/jobs" in with_keys and "/v1/tensors" not in with_keys


def _job_body_validator(doc: dict[str, Any]) -> Any:
    """A JSON Schema validator of ``POST /v1/jobs``'s published body (its refs resolved in
    the document's components)."""
    content = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    return jsonschema_rs.Draft202012Validator(
        {**content["schema"], "components": doc["components"]}
    )


def test_the_job_body_is_published_as_the_jobcreate_schema(client: TestClient) -> None:
    from app.schemas.jobs import JobCreate

    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/jobs"]["post"]["requestBody"]
    assert body["required"] is True
    variants = body["content"]["application/json"]["schema"]["anyOf"]
    assert variants[0] == {"$ref": "#/components/schemas/JobCreate"}
    assert variants[1]["required"] == ["preset"]
    schemas = doc["components"]["schemas"]
    job = schemas["JobCreate"]
    assert set(job["properties"]) == set(JobCreate.model_fields)
    assert job["required"] == ["dataset", "training", "schemes"]
    assert job["additionalProperties"] is False
    # Every model the spec uses is a component, under its own name.
    for name in ("DatasetRef", "ModelSpec", "TrainingSpec", "OptimizerSpec", "SchemeSpec"):
        assert schemas[name]["title"] == name
    assert "x-initlab-components" not in str(doc)


@pytest.mark.parametrize(
    ("training", "valid"),
    [
        ({"epochs": 2, "batch_size": 32}, True),
        ({"epochs": 2, "batch_size": "full"}, True),
        ({"optimizer": "SGD", "epochs": 2}, True),
        ({"optimizer": {"name": "sgd", "learning_rate": 1}, "epochs": 2}, True),  # int: a number
        ({"epochs": 2.0, "batch_size": 32.0}, True),  # whole numbers: integers in JSON Schema
        ({"epochs": 2.5}, False),
        ({"epochs": 2, "batch_size": True}, False),
        ({"epochs": "2"}, False),
        ({"optimizer": {"name": "sgd", "learning_rate": "0.1"}, "epochs": 2}, False),
        ({"epochs": 2, "shuffle": 1}, False),
    ],
)
def test_the_published_job_schema_and_the_server_agree(
    client: TestClient, training: dict[str, Any], valid: bool
) -> None:
    validator = _job_body_validator(client.get("/openapi.json").json())
    body = {
        "dataset": {"name": "circles", "train_size": 60, "validation_size": 20},
        "model": {"hidden_layers": [4]},
        "training": training,
        "schemes": [{"initializer": "he_normal"}],
        "seed": 1,
    }
    assert validator.is_valid(body) is valid
    res = client.post("/v1/jobs", json=body)
    assert res.status_code == (202 if valid else 422), res.text
    if valid:
        assert client.delete(f"/v1/jobs/{res.json()['id']}").status_code == 200
    else:
        assert res.json()["errors"][0]["loc"][0] == "training"


def test_the_published_job_examples_fit_the_published_schema(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    validator = _job_body_validator(doc)
    content = doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert {"spec", "preset"} <= set(content["examples"])
    for example in content["examples"].values():
        assert validator.is_valid(example["value"]), example
    assert not validator.is_valid({"preset": "no-such-preset"})
