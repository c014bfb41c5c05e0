"""Submission limits: 413 problems carry ``errors[]`` naming the field and the value; the run
memory estimate matches what the trainer allocates; the epoch-record cap; the application's
own Settings (``create_app(Settings(...))``) are the ones jobs are checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.errors import TooLargeError
from app.jobs.runplan import build_run_spec, plan_runs
from app.jobs.service import cap_records, check_limits, check_work, validate_job
from app.main import create_app

CIRCLES_INFO = {"task": "binary", "n_train": 300, "n_val": 100, "input_dim": 2, "n_outputs": 1}
FASHION_INFO = {
    "task": "multiclass",
    "n_train": 60000,
    "n_val": 10000,
    "input_dim": 784,
    "n_outputs": 10,
}


def body(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": {"name": "circles"},
        "model": {"hidden_layers": [10, 5]},
        "training": {"optimizer": {"name": "adam"}, "epochs": 2},
        "schemes": [{"initializer": "he_normal"}],
        "seed": 7,
    }
    base.update(over)
    return base


def too_large(fn: Any, *args: Any) -> TooLargeError:
    with pytest.raises(TooLargeError) as info:
        fn(*args)
    assert info.value.status == 413
    return info.value


def planned(payload: dict[str, Any], info: dict[str, Any]) -> tuple[dict, list[dict]]:
    spec = validate_job(payload).model_dump(mode="json")
    return spec, plan_runs(spec, info)


def test_structural_413s_name_the_field_and_value() -> None:
    limits = Settings(max_runs_per_job=3, max_epochs=5, max_steps=10, max_dataset_elements=500)
    cases = [
        (body(repeats=4), ["repeats"], 4),
        (body(training={"epochs": 6}), ["training", "epochs"], 6),
        (body(training={"steps": 11}), ["training", "steps"], 11),
        (body(), ["dataset", "train_size"], 300),  # 300 × 2 features > 500
    ]
    for payload, loc, value in cases:
        err = too_large(check_limits, validate_job(payload), CIRCLES_INFO, limits)
        assert err.errors == [{"loc": loc, "msg": err.detail, "input": value}], err.errors


def test_the_runs_413_names_what_is_over_the_limit() -> None:
    limits = Settings(max_runs_per_job=64)
    many = [{"label": f"s{i}", "initializer": "he_normal"} for i in range(200)]
    # 200 schemes are over 64 runs on their own: the schemes are what to cut.
    for repeats in (1, 3):
        err = too_large(check_limits, validate_job(body(schemes=many, repeats=repeats)),
                        CIRCLES_INFO, limits)  # fmt: skip
        assert err.errors is not None
        assert err.errors[0]["loc"] == ["schemes"] and err.errors[0]["input"] == 200
        assert "at most 64 schemes" in err.detail
    # 10 schemes fit; 7 repeats of them do not: the repeats pushed it over.
    err = too_large(
        check_limits, validate_job(body(schemes=many[:10], repeats=7)), CIRCLES_INFO, limits
    )
    assert err.errors is not None
    assert err.errors[0]["loc"] == ["repeats"] and err.errors[0]["input"] == 7
    assert "repeats <= 6" in err.detail


def test_work_413s_name_the_field_and_value() -> None:
    _, plans = planned(body(model={"hidden_layers": [64]}), CIRCLES_INFO)
    err = too_large(check_work, plans, 1, Settings(max_params=100))
    assert err.errors is not None
    assert err.errors[0]["loc"] == ["model", "hidden_layers"] and err.errors[0]["input"] == [64]
    err = too_large(check_work, plans, 1, Settings(max_run_work=1000))
    assert err.errors is not None
    assert err.errors[0]["loc"] == ["training", "epochs"] and err.errors[0]["input"] == 2
    err = too_large(check_work, plans, 5, Settings(max_total_work=plans[0]["params"] * 600 * 4))
    assert err.errors is not None and err.errors[0]["loc"] == ["repeats"]


def test_a_wide_full_batch_fashion_mnist_run_is_refused_before_allocating() -> None:
    """The review's case: hidden_layers [20000], full batch, ~14.5 GB of activations."""
    payload = body(
        dataset={"name": "fashion-mnist"},
        model={"hidden_layers": [20000]},
        training={"optimizer": {"name": "adam"}, "epochs": 1, "batch_size": "full"},
    )
    _, plans = planned(payload, FASHION_INFO)
    assert plans[0]["memory"]["activations"] > 14 * 10**9
    err = too_large(check_work, plans, 1, Settings())
    assert err.errors is not None
    assert err.errors[0]["loc"] == ["training", "batch_size"]
    assert err.errors[0]["input"] == "full"
    assert "max_run_memory_bytes" in err.detail and "batch_size" in err.detail
    # Batches of 128 fit: activations are then ~33 MB.
    small = {**payload, "training": {**payload["training"], "batch_size": 128}}
    _, plans = planned(small, FASHION_INFO)
    assert check_work(plans, 1, Settings())["memory_bytes"] < 2 * 1024**3


def test_the_parameters_or_the_dataset_are_named_when_they_dominate() -> None:
    _, plans = planned(body(model={"hidden_layers": [4000, 4000]}), CIRCLES_INFO)
    err = too_large(check_work, plans, 1, Settings(max_run_memory_bytes=1024**2 * 100))
    assert err.errors is not None and err.errors[0]["loc"] == ["model", "hidden_layers"]
    _, plans = planned(body(model={"hidden_layers": [4]}), FASHION_INFO)
    err = too_large(check_work, plans, 1, Settings(max_run_memory_bytes=1024**2 * 100))
    assert err.errors is not None
    assert err.errors[0]["loc"] == ["dataset", "train_size"] and err.errors[0]["input"] == 60000


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_the_activation_estimate_is_what_the_network_allocates(dropout: float) -> None:
    from app.training.network import buffer_bytes
    from app.training.trainer import build_network

    payload = body(model={"hidden_layers": [37, 11], "dropout": dropout})
    spec, _ = planned(payload, CIRCLES_INFO)
    rs = build_run_spec(spec, 0, 7)
    loss = rs.check("binary", 2, 1)
    net = build_network(rs, 2, loss)
    for rows in (1, 50, 300):
        buf = net.buffers(rows)
        arrays = [*buf.z, *buf.dz, *buf.relu_mask, *buf.mask, *buf.u]
        arrays += buf.h + (buf.hd if dropout > 0 else [])
        allocated = sum(a.nbytes for a in {id(a): a for a in arrays}.values())
        sizes = rs.layer_sizes(2, loss.units)
        assert buffer_bytes(sizes, rows, dropout=dropout, itemsize=4) == allocated
        assert all(a.dtype in (np.float32, np.bool_) for a in arrays)


def test_many_epochs_are_evaluated_every_kth_epoch_or_refused_when_told_otherwise() -> None:
    settings = Settings()  # max_epoch_records 1000
    spec, plans = planned(body(training={"epochs": 2000, "batch_size": "full"}), CIRCLES_INFO)
    cap_records(spec, plans, settings)
    assert spec["record"]["eval_every"] == 2
    assert build_run_spec(spec, 0, 7).record_every(300) == 2
    spec, plans = planned(body(training={"epochs": 1000}), CIRCLES_INFO)
    cap_records(spec, plans, settings)
    assert spec["record"]["eval_every"] is None  # within the cap: every epoch
    spec, plans = planned(body(training={"epochs": 2000}, record={"eval_every": 1}), CIRCLES_INFO)
    err = too_large(cap_records, spec, plans, settings)
    assert err.errors is not None
    assert err.errors[0]["loc"] == ["record", "eval_every"] and err.errors[0]["input"] == 1
    assert "record.eval_every >= 2" in err.detail


def test_jobs_are_checked_against_the_apps_own_settings(tmp_path: Path) -> None:
    """create_app(Settings(...)): its limits and data_dir apply to POST /v1/jobs (nothing is
    stored: every case is refused before Redis is touched)."""
    settings = Settings(
        max_runs_per_job=1,
        max_run_memory_bytes=1024**2 * 8,
        data_dir=tmp_path,
        allow_downloads=False,
    )
    with TestClient(create_app(settings)) as client:
        res = client.post("/v1/jobs", json=body(repeats=2))
        assert res.status_code == 413, res.text
        assert res.json()["errors"][0]["loc"] == ["repeats"]
        assert "the limit is 1 runs" in res.json()["detail"]
        res = client.post("/v1/jobs", json=body(model={"hidden_layers": [2000, 2000]}))
        assert res.status_code == 413, res.text
        assert res.json()["errors"][0]["loc"] == ["model", "hidden_layers"]
        assert res.headers["content-type"].startswith("application/problem+json")
        res = client.post("/v1/jobs", json={"preset": "udacity-mnist"})
        assert res.status_code == 422 and str(tmp_path) in res.text
