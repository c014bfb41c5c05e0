"""Fans in the Keras and PyTorch layouts, with explicit overrides."""

from __future__ import annotations

import pytest

from app.initializers import LAYOUTS, InitializerError, compute_fans, generate, resolve


@pytest.mark.parametrize(
    ("shape", "keras", "torch"),
    [
        ((), (1, 1), None),
        ((7,), (7, 7), None),
        ((784, 256), (784, 256), (256, 784)),
        ((3, 16, 32), (48, 96), (16 * 32, 3 * 32)),
        ((3, 3, 16, 32), (144, 288), (3 * 16 * 32, 3 * 16 * 32)),
        ((2, 3, 3, 4, 8), (18 * 4, 18 * 8), (3 * 96, 2 * 96)),
    ],
)
def test_layout_fans(
    shape: tuple[int, ...], keras: tuple[int, int], torch: tuple[int, int] | None
) -> None:
    assert compute_fans(shape) == keras
    assert compute_fans(shape, "keras") == keras
    if torch is None:
        with pytest.raises(InitializerError) as info:
            compute_fans(shape, "torch")
        assert info.value.field == "shape" and "rank" in info.value.msg
    else:
        assert compute_fans(shape, "torch") == torch


def test_explicit_fans_override_the_layout() -> None:
    assert compute_fans((3, 3, 16, 32), fan_in=10) == (10, 288)
    assert compute_fans((3, 3, 16, 32), "torch", fan_out=5) == (3 * 16 * 32, 5)
    # Both given: the layout is not consulted, so rank 1 is fine even for torch.
    assert compute_fans((7,), "torch", fan_in=3, fan_out=4) == (3, 4)
    assert LAYOUTS == ("keras", "torch")


def test_layout_changes_the_scale_of_fan_based_schemes() -> None:
    init = resolve("kaiming_normal")
    keras = generate(init, (64, 512), seed=0)
    torch = generate(init, (64, 512), seed=0, layout="torch")
    # kaiming fan_in: 64 (keras) vs 512 (torch): same draws, scaled by sqrt(512/64).
    assert keras.std() / torch.std() == pytest.approx((512 / 64) ** 0.5, rel=1e-5)
    explicit = generate(init, (64, 512), seed=0, fan_in=512)
    assert explicit.tobytes() == torch.tobytes()


def test_keras_axes_params_define_the_fans() -> None:
    init = resolve(
        {
            "name": "variance_scaling",
            "params": {"input_axes": [1], "output_axes": [0], "mode": "fan_in"},
        }
    )
    assert init.fans_for((64, 512), "keras", None, None) == (512, 64)
    with pytest.raises(InitializerError) as info:
        generate(
            resolve({"name": "he_normal", "params": {"input_axes": [3], "output_axes": [0]}}),
            (4, 4),
            seed=0,
        )
    assert info.value.field == "params.input_axes"
