"""compresskit._validation: the messages name the argument, the rule and the value."""

import numpy as np
import pytest
import torch
from torch.nn.utils import prune as torch_prune
from hypothesis import given, settings, strategies as st

from compresskit import _validation as v


@settings(max_examples=150, deadline=None)
@given(total=st.integers(1, 3_000), amount=st.one_of(st.floats(0, 1), st.sampled_from([0.5, 0.25, 0.125, 0.375, 0.3, 0.7])))
def test_fraction_amount_rounds_like_torch(total, amount):
    """The count is what torch.nn.utils.prune itself prunes for that fraction (ties included:
    0.5 * 5 = 2.5 gives 2, half to even), not a formula restated here."""
    weight = torch.arange(1, total + 1, dtype=torch.float32)  # distinct magnitudes: no ties in the ranking
    mask = torch_prune.L1Unstructured(amount).compute_mask(weight, default_mask=torch.ones_like(weight))
    assert v.check_amount("amount", amount, total) == int((mask == 0).sum())
    assert 0 <= v.check_amount("amount", amount, total) <= total


def test_fraction_amount_of_nothing_is_nothing():
    assert v.check_amount("amount", 0.5, 0) == 0


def test_amount_as_count_and_errors():
    assert v.check_amount("amount", 3, 10) == 3
    with pytest.raises(ValueError, match=r"`amount` must be an integer in \[0, 10\]; got 11"):
        v.check_amount("amount", 11, 10)
    with pytest.raises(ValueError, match=r"`amount` must be in \[0, 1\]; got 1.5"):
        v.check_amount("amount", 1.5, 10)
    with pytest.raises(TypeError, match="got bool True"):
        v.check_amount("amount", True, 10)
    with pytest.raises(TypeError, match="got str '0.5'"):
        v.check_amount("amount", "0.5", 10)


def test_real_intervals():
    assert v.check_real("lr", 0.1, 0, low_open=True) == 0.1
    with pytest.raises(ValueError, match=r"`lr` must be in \(0, inf\); got 0.0"):
        v.check_real("lr", 0, 0, low_open=True)
    with pytest.raises(ValueError, match=r"`x` must be in \[0, 1\]; got nan"):
        v.check_real("x", float("nan"), 0, 1)
    with pytest.raises(TypeError, match="`x` must be a real number; got str"):
        v.check_real("x", "1", 0, 1)


def test_int_rejects_bool_and_float():
    with pytest.raises(TypeError, match="`n` must be an integer; got bool"):
        v.check_int("n", True)
    with pytest.raises(TypeError, match="`n` must be an integer; got float"):
        v.check_int("n", 2.0)
    assert v.check_int("n", np.int64(4), 0, 5) == 4


def test_tensor_checks():
    with pytest.raises(TypeError, match="`w` must be a torch.Tensor; got list"):
        v.check_tensor("w", [1.0])
    with pytest.raises(ValueError, match=r"`w` must have 2 dimensions; got shape \(3,\)"):
        v.check_tensor("w", torch.zeros(3), ndim=2)
    with pytest.raises(TypeError, match="`w` must be a floating-point tensor; got dtype torch.int64"):
        v.check_tensor("w", torch.zeros(3, dtype=torch.int64), floating=True)
    with pytest.raises(ValueError, match=r"`w` must be finite; got 1 NaN or inf value\(s\)"):
        v.check_tensor("w", torch.tensor([1.0, float("inf")]), finite=True)
    with pytest.raises(ValueError, match="`w` must not be empty"):
        v.check_tensor("w", torch.zeros(0))


def test_array_and_choice_checks():
    with pytest.raises(TypeError, match="`X` must hold numbers; got dtype <U1"):
        v.check_array("X", ["a"])
    with pytest.raises(ValueError, match=r"`X` must have 2 dimensions; got shape \(3,\)"):
        v.check_array("X", [1, 2, 3], ndim=2)
    with pytest.raises(ValueError, match="`X` must be finite"):
        v.check_array("X", [1.0, np.nan])
    with pytest.raises(ValueError, match=r"`scheme` must be one of \['affine', 'symmetric'\]; got 'log'"):
        v.check_choice("scheme", "log", ["affine", "symmetric"])


def test_seed_fraction_and_device_checks():
    assert v.check_seed("seed", np.uint32(7)) == 7
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 18446744073709551615\]; got -3"):
        v.check_seed("seed", -3)
    assert v.check_fraction("final_sparsity", 0.5) == 0.5
    with pytest.raises(TypeError, match=r"`final_sparsity` must be a float fraction in \[0, 1\] \(an int would be a count of weights.*got int 1, write 1.0"):
        v.check_fraction("final_sparsity", 1)
    with pytest.raises(ValueError, match=r"`final_sparsity` must be in \[0, 1\]; got 1.5"):
        v.check_fraction("final_sparsity", 1.5)
    buffers_only = torch.nn.Module()
    buffers_only.register_buffer("table", torch.zeros(3, dtype=torch.int8))
    assert v.module_device("model", buffers_only) == torch.device("cpu")
    with pytest.raises(ValueError, match="`model` must hold at least one parameter or buffer to tell its device; got Identity"):
        v.module_device("model", torch.nn.Identity())


def test_long_values_are_shortened_in_messages():
    with pytest.raises(TypeError) as info:
        v.check_module("model", list(range(1000)))
    assert "got list [0, 1, 2" in str(info.value) and len(str(info.value)) < 200


def test_core_modules_declare_their_public_names():
    from compresskit import measure, models, train

    for module in (v, models, train, measure):
        assert "_show" not in module.__all__
        assert all(not name.startswith("_") and hasattr(module, name) for name in module.__all__)
    assert "soft_cross_entropy" in train.__all__ and "check_int" not in train.__all__
