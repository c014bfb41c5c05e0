"""GET /v1/presets: every preset of app.jobs.presets, each body a valid job body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.jobs.presets import PRESETS, apply_preset
from app.schemas.jobs import JobCreate


def test_presets_list_matches_the_presets_module(client: TestClient) -> None:
    res = client.get("/v1/presets")
    assert res.status_code == 200
    presets = res.json()["presets"]
    assert [p["name"] for p in presets] == list(PRESETS)
    for preset in presets:
        assert preset["body"] == PRESETS[preset["name"]]
        assert isinstance(preset["description"], str) and preset["description"]
        body = preset["body"]
        assert preset["runs"] == len(body["schemes"]) * body["repeats"]


def test_the_udacity_presets_have_the_notebooks_seven_schemes(client: TestClient) -> None:
    presets = {p["name"]: p for p in client.get("/v1/presets").json()["presets"]}
    assert {"udacity-mnist", "udacity-fashion", "too-small", "dlai-circles"} <= set(presets)
    assert presets["udacity-mnist"]["runs"] == 7
    assert presets["dlai-circles"]["runs"] == 3


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_body_validates_as_a_job(client: TestClient, name: str) -> None:
    body = client.get(f"/v1/presets/{name}").json()["body"]
    job = JobCreate.model_validate(body)
    job.check_consistency()
    assert len(job.schemes) * job.repeats == client.get(f"/v1/presets/{name}").json()["runs"]
    # The documented usage with an override validates too.
    JobCreate.model_validate(apply_preset({"preset": name, "repeats": 2}))


def test_unknown_preset_is_a_404_problem_listing_the_names(client: TestClient) -> None:
    res = client.get("/v1/presets/no-such-preset")
    assert res.status_code == 404
    assert res.headers["content-type"].startswith("application/problem+json")
    detail = res.json()["detail"]
    assert "no-such-preset" in detail and "udacity-mnist" in detail
