"""Job bodies: presets, validation errors that name the field and the value, run planning."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import Settings
from app.errors import InitlabError
from app.jobs.runplan import build_run_spec, plan_runs, run_seed
from app.jobs.service import check_limits, check_work, validate_job

CIRCLES = {"name": "circles"}
CIRCLES_INFO = {"task": "binary", "n_train": 300, "n_val": 100, "input_dim": 2, "n_outputs": 1}


def body(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dataset": CIRCLES,
        "model": {"hidden_layers": [10, 5]},
        "training": {"optimizer": {"name": "adam"}, "epochs": 2},
        "schemes": [{"label": "zeros", "initializer": "zeros"}, {"initializer": "he_normal"}],
        "seed": 7,
    }
    base.update(over)
    return base


def error_of(payload: Any) -> InitlabError:
    with pytest.raises(InitlabError) as info:
        validate_job(payload)
    return info.value


def test_a_valid_body_fills_defaults_and_labels() -> None:
    job = validate_job(body())
    assert [s.label for s in job.schemes] == ["zeros", "he_normal"]
    assert job.repeats == 1 and job.record.plot_n_batches == 100
    assert job.training.batch_size == 128 and job.model.bias_initializer == "zeros"


def test_every_preset_validates_and_accepts_overrides() -> None:
    from app.jobs.presets import PRESETS

    for name in PRESETS:
        assert validate_job({"preset": name}).schemes
    job = validate_job({"preset": "udacity-fashion", "repeats": 5})
    assert job.repeats == 5 and job.dataset.name == "fashion-mnist"
    assert len(job.schemes) == 7


@pytest.mark.parametrize(
    ("payload", "loc", "value"),
    [
        (
            body(schemes=[{"initializer": "no_such_init"}]),
            ["schemes", 0, "initializer"],
            "no_such_init",
        ),
        (body(bogus=1), ["bogus"], 1),
        (body(repeats=0), ["repeats"], 0),
        (body(seed=-1), ["seed"], -1),
        (body(schemes=[]), ["schemes"], []),
        (body(model={"hidden_layers": [0]}), ["model", "hidden_layers", 0], 0),
        (body(training={"epochs": 1, "batch_size": 0}), ["training", "batch_size"], 0),
        (
            body(training={"optimizer": {"name": "lbfgs"}, "epochs": 1}),
            ["training", "optimizer", "name"],
            "lbfgs",
        ),
        ({"preset": "no-such-preset"}, ["preset"], "no-such-preset"),
        (
            body(
                schemes=[
                    {"label": "a", "initializer": "zeros"},
                    {"label": "a", "initializer": "ones"},
                ]
            ),
            ["schemes", 1, "label"],
            "a",
        ),
        (
            body(
                schemes=[
                    {"initializer": "zeros", "layers": [{"layer": 3, "kernel_initializer": "ones"}]}
                ]
            ),
            ["schemes", 0, "layers", 0, "layer"],
            3,
        ),
    ],
)
def test_invalid_bodies_are_422_naming_field_and_value(
    payload: dict[str, Any], loc: list[Any], value: Any
) -> None:
    err = error_of(payload)
    assert err.status == 422
    assert err.errors is not None
    assert any(e["loc"] == loc and e.get("input") == value for e in err.errors), err.errors


# JSON's types: true is not a number, "7" is not a number, 1 is not a boolean.
NOT_JSON_TYPED: list[tuple[dict[str, Any], list[Any], Any]] = [
    (body(training={"epochs": 1, "batch_size": True}), ["training", "batch_size"], True),
    (body(training={"epochs": 1, "batch_size": "64"}), ["training", "batch_size"], "64"),
    (body(training={"epochs": True}), ["training", "epochs"], True),
    (body(training={"steps": "10"}), ["training", "steps"], "10"),
    (body(repeats=True), ["repeats"], True),
    (body(seed="7"), ["seed"], "7"),
    (body(model={"hidden_layers": ["8"]}), ["model", "hidden_layers", 0], "8"),
    (body(model={"dropout": "0.1"}), ["model", "dropout"], "0.1"),
    (
        body(training={"epochs": 1, "optimizer": {"name": "sgd", "learning_rate": "0.1"}}),
        ["training", "optimizer", "learning_rate"],
        "0.1",
    ),
    (
        body(training={"epochs": 1, "optimizer": {"name": "sgd", "learning_rate": "NaN"}}),
        ["training", "optimizer", "learning_rate"],
        "NaN",
    ),
    (
        body(training={"epochs": 1, "optimizer": {"name": "adam", "betas": [0.9, True]}}),
        ["training", "optimizer", "betas", 1],
        True,
    ),
    (body(training={"epochs": 1, "shuffle": 1}), ["training", "shuffle"], 1),
    (body(record={"diagnostics": "false"}), ["record", "diagnostics"], "false"),
    (body(record={"plot_n_batches": 10.5}), ["record", "plot_n_batches"], 10.5),
]


@pytest.mark.parametrize(("payload", "loc", "value"), NOT_JSON_TYPED)
def test_booleans_and_strings_are_not_numbers(
    payload: dict[str, Any], loc: list[Any], value: Any
) -> None:
    err = error_of(payload)
    assert err.status == 422 and err.errors is not None
    # One error, at the field, with the value (not one per member of a union).
    assert [(e["loc"], e["input"]) for e in err.errors] == [(loc, value)], err.errors
    assert ".".join(str(p) for p in loc) in err.detail and repr(value) in err.detail
    if "learning_rate" in loc:
        assert "valid number" in err.detail  # not a misleading bound


def test_whole_number_floats_are_integers_as_in_json_schema() -> None:
    job = validate_job(body(training={"epochs": 2.0, "batch_size": 32.0}, seed=1e3))
    assert (job.training.epochs, job.training.batch_size, job.seed) == (2, 32, 1000)
    assert all(type(v) is int for v in (job.training.epochs, job.training.batch_size, job.seed))


def test_integers_stay_valid_for_float_fields() -> None:
    job = validate_job(
        body(training={"epochs": 1, "optimizer": {"name": "sgd", "learning_rate": 1}})
    )
    assert job.training.optimizer.learning_rate == 1.0
    assert isinstance(job.training.optimizer.learning_rate, float)
    assert validate_job(body(training={"epochs": 1, "batch_size": "full"})).training.batch_size


def test_a_detail_shows_the_value_whole_or_marks_the_cut() -> None:
    # The preset's training object with epochs added: the rule blames the pair, and the
    # detail must show the steps (15000, not a cut "150") and the epochs given.
    err = error_of({"preset": "dlai-circles", "training": {"epochs": 300}})
    assert "'steps': 15000, 'epochs': 300}" in err.detail
    long_label = "x" * 500
    err = error_of(body(schemes=[{"label": long_label, "initializer": "zeros"}]))
    assert err.detail.endswith("...)") and long_label not in err.detail
    assert err.errors is not None and err.errors[0]["input"] == long_label


def test_shown_cuts_at_an_item_boundary_and_says_so() -> None:
    from app.errors import DETAIL_CHARS, shown

    assert shown([1, 2, 3]) == "[1, 2, 3]"
    numbers = list(range(15000, 15100))
    text = shown(numbers)
    assert len(text) <= DETAIL_CHARS and text.endswith(", ...")
    items = text.removeprefix("[").removesuffix(", ...").split(", ")
    assert [int(i) for i in items] == numbers[: len(items)]  # no number cut in two
    assert shown("y" * 1000).endswith("...") and len(shown("y" * 1000)) <= DETAIL_CHARS


def test_epochs_and_steps_together_are_refused() -> None:
    err = error_of(body(training={"epochs": 1, "steps": 5}))
    assert err.status == 422 and "either epochs or steps" in err.detail


def test_a_non_object_body_is_refused() -> None:
    assert error_of([1, 2]).status == 422


def test_plan_checks_schemes_against_the_dataset() -> None:
    spec = validate_job(body(training={"loss": "mse", "epochs": 1})).model_dump(mode="json")
    plans = plan_runs(spec, CIRCLES_INFO)
    assert plans[0]["params"] == 2 * 10 + 10 + 10 * 5 + 5 + 5 * 1 + 1
    spec = validate_job(body(model={"hidden_layers": [4], "output_units": 3})).model_dump(
        mode="json"
    )
    with pytest.raises(InitlabError) as info:
        plan_runs(spec, CIRCLES_INFO)
    assert info.value.status == 422 and "output_units" in info.value.detail


def test_run_specs_carry_scheme_overrides_and_seeds() -> None:
    spec = validate_job(
        body(
            model={
                "hidden_layers": [10, 5],
                "layers": [{"layer": 2, "kernel_initializer": "ones"}],
            },
            schemes=[
                {"initializer": "zeros", "layers": [{"layer": 0, "bias_initializer": "ones"}]}
            ],
        )
    ).model_dump(mode="json")
    rs = build_run_spec(spec, 0, run_seed(7, 1))
    assert rs.seed == 8
    inits = rs.layer_initializers()
    assert inits[0] == ("zeros", "ones")
    assert inits[1] == ("zeros", "zeros")
    assert inits[2] == ("ones", "zeros")


def test_limits_refuse_oversize_jobs_with_413() -> None:
    limits = Settings(max_runs_per_job=3, max_epochs=5, max_params=100, max_total_work=10**6)
    with pytest.raises(InitlabError) as info:
        check_limits(validate_job(body(repeats=2)), CIRCLES_INFO, limits)
    assert info.value.status == 413 and "4 runs" in info.value.detail
    with pytest.raises(InitlabError) as info:
        check_limits(validate_job(body(training={"epochs": 6})), CIRCLES_INFO, limits)
    assert info.value.status == 413 and "epochs" in info.value.detail
    big = validate_job(body(model={"hidden_layers": [64]})).model_dump(mode="json")
    with pytest.raises(InitlabError) as info:
        check_work(plan_runs(big, CIRCLES_INFO), 1, limits)
    assert info.value.status == 413 and "parameters" in info.value.detail


def test_the_run_plan_loads_without_the_submission_code_redis_or_celery() -> None:
    """The worker builds its runs with ``app.jobs.runplan``: a fresh process importing it loads
    none of the API's submission code, Redis, Celery or FastAPI."""
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import sys, app.jobs.runplan; "
        "print(sorted(m for m in ('app.jobs.service', 'app.jobs.queue', 'app.jobs.store', "
        "'app.api', 'redis', 'celery', 'fastapi') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root
    ).stdout
    assert out.strip() == "[]"
