"""Synthetic datasets: circles/moons/blobs equal scikit-learn's generators bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.datasets

from app.training.datasets import DatasetError, check_dataset, load_dataset


def _load(ref: dict) -> object:
    return load_dataset(ref, data_dir="/nonexistent", allow_downloads=False)


@pytest.mark.parametrize(
    ("ref", "reference"),
    [
        (
            {"name": "circles", "noise": 0.05, "factor": 0.8},
            lambda n, seed: sklearn.datasets.make_circles(
                n, noise=0.05, factor=0.8, random_state=seed
            ),
        ),
        (
            {"name": "circles", "noise": 0.2, "factor": 0.3},
            lambda n, seed: sklearn.datasets.make_circles(
                n, noise=0.2, factor=0.3, random_state=seed
            ),
        ),
        (
            {"name": "moons", "noise": 0.1},
            lambda n, seed: sklearn.datasets.make_moons(n, noise=0.1, random_state=seed),
        ),
        (
            {"name": "blobs", "centers": 4, "n_features": 3, "cluster_std": 0.5},
            lambda n, seed: sklearn.datasets.make_blobs(
                n, centers=4, n_features=3, cluster_std=0.5, random_state=seed
            ),
        ),
    ],
)
@pytest.mark.parametrize(("n_train", "n_val", "seed"), [(300, 100, 1), (101, 37, 12345)])
def test_equals_scikit_learn(ref, reference, n_train: int, n_val: int, seed: int) -> None:
    ds = _load({**ref, "train_size": n_train, "validation_size": n_val, "seed": seed})
    x_ref, y_ref = reference(n_train, seed)
    xv_ref, yv_ref = reference(n_val, seed + 1)
    assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    np.testing.assert_array_equal(ds.x_train, x_ref.astype(np.float32))
    np.testing.assert_array_equal(ds.x_val, xv_ref.astype(np.float32))
    if ds.task == "binary":
        assert ds.y_train.dtype == np.float32 and ds.y_train.shape == (n_train, 1)
        assert ds.n_outputs == 1 and ds.n_classes == 2
        np.testing.assert_array_equal(ds.y_train[:, 0], y_ref)
        np.testing.assert_array_equal(ds.y_val[:, 0], yv_ref)
    else:
        assert ds.y_train.dtype == np.int64 and ds.n_outputs == ref["centers"]
        np.testing.assert_array_equal(ds.y_train, y_ref)
        np.testing.assert_array_equal(ds.y_val, yv_ref)


def test_deeplearning_ai_circles_data() -> None:
    """The assignment's load_dataset(): global seed 1 for train, 2 for test."""
    np.random.seed(1)
    train_x, train_y = sklearn.datasets.make_circles(n_samples=300, noise=0.05)
    np.random.seed(2)
    test_x, test_y = sklearn.datasets.make_circles(n_samples=100, noise=0.05)
    ds = _load(
        {
            "name": "circles",
            "train_size": 300,
            "validation_size": 100,
            "noise": 0.05,
            "seed": 1,
            "validation_seed": 2,
        }
    )
    np.testing.assert_array_equal(ds.x_train, train_x.astype(np.float32))
    np.testing.assert_array_equal(ds.y_train[:, 0], train_y)
    np.testing.assert_array_equal(ds.x_val, test_x.astype(np.float32))
    np.testing.assert_array_equal(ds.y_val[:, 0], test_y)


def test_spirals_have_one_class_per_arm_within_the_unit_disc() -> None:
    ds = _load(
        {"name": "spirals", "arms": 3, "noise": 0.0, "train_size": 301, "validation_size": 0}
    )
    assert ds.task == "multiclass" and ds.n_outputs == 3 and ds.x_train.shape == (301, 2)
    assert np.bincount(ds.y_train).tolist() == [101, 100, 100]
    radius = np.linalg.norm(ds.x_train, axis=1)
    assert radius.max() <= 1.0 + 1e-6 and radius.min() == 0.0
    assert ds.n_val == 0 and ds.y_val.shape == (0,)


def test_xor_labels_are_the_sign_rule_without_noise() -> None:
    ds = _load({"name": "xor", "noise": 0.0, "train_size": 500, "validation_size": 10})
    x, y = ds.x_train, ds.y_train[:, 0]
    np.testing.assert_array_equal(y, ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.float32))
    assert 0.4 < y.mean() < 0.6 and np.abs(x).max() <= 1.0


@pytest.mark.parametrize("name", ["circles", "moons", "spirals", "xor", "blobs"])
def test_seeded_and_reproducible(name: str) -> None:
    a, b = _load({"name": name, "seed": 7}), _load({"name": name, "seed": 7})
    c = _load({"name": name, "seed": 8})
    assert a.x_train.tobytes() == b.x_train.tobytes() and a.x_val.tobytes() == b.x_val.tobytes()
    assert a.x_train.tobytes() != c.x_train.tobytes()
    assert a.x_train.tobytes() != a.x_val.tobytes()[: a.x_train.nbytes]


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        ({"name": "circles", "noise": -0.1}, "dataset.noise"),
        ({"name": "circles", "noise": float("nan")}, "dataset.noise"),
        ({"name": "circles", "factor": 1.0}, "dataset.factor"),
        ({"name": "circles", "train_size": 0}, "dataset.train_size"),
        ({"name": "circles", "train_size": 2.5}, "dataset.train_size"),
        ({"name": "circles", "centers": 3}, "dataset.centers"),
        ({"name": "blobs", "noise": 0.1}, "dataset.noise"),
        ({"name": "blobs", "centers": 1}, "dataset.centers"),
        ({"name": "spirals", "arms": 11}, "dataset.arms"),
        ({"name": "moons", "seed": -1}, "dataset.seed"),
        ({"name": "blobs", "n_features": 1000, "train_size": 1_000_000}, "dataset.train_size"),
    ],
)
def test_invalid_parameters_name_the_field(ref: dict, field: str) -> None:
    for call in (_load, lambda r: check_dataset(r, data_dir="/x", allow_downloads=False)):
        with pytest.raises(DatasetError) as info:
            call(ref)
        assert info.value.field == field


def test_check_dataset_gives_sizes_without_generating() -> None:
    info = check_dataset(
        {"name": "blobs", "centers": 5, "n_features": 7, "train_size": 40, "validation_size": 9},
        data_dir="/x",
        allow_downloads=False,
    )
    assert (info["n_train"], info["n_val"], info["input_dim"], info["n_outputs"]) == (40, 9, 7, 5)
    assert (info["kind"], info["task"], info["where"]) == ("synthetic", "multiclass", "generated")
    assert info["params"]["cluster_std"] == 1.0 and info["params"]["validation_seed"] is None
