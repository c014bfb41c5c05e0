"""``/openapi.json``: every error response documented as problem+json with the Problem schema."""

from __future__ import annotations

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
