"""The shared bad-input harness can fail: a call that does not raise, a message without the
argument's name, and a failed call that changed the watched model are each caught."""

import pytest
import torch

from bad_input_harness import Bad, a, assert_refused, lazy
from compresskit import models


def _raise_after_changing(model):
    with torch.no_grad():
        model.fc1.weight.mul_(2)
    raise ValueError("`model` is bad; got a model")


def test_a_call_that_does_not_raise_fails_the_row():
    with pytest.raises(pytest.fail.Exception):
        assert_refused(Bad(lambda x: x, a(1), ValueError, ["`x`"]))


def test_a_message_without_the_words_fails_the_row():
    def refuse(x):
        raise ValueError("bad input")
    with pytest.raises(AssertionError, match="is not in the message"):
        assert_refused(Bad(refuse, a(1), ValueError, ["`x`"]))


@pytest.mark.parametrize("watch", [0, (0,)])
def test_a_failed_call_that_changed_the_model_fails_the_row(watch):
    with pytest.raises(AssertionError, match="changed by a failed call"):
        assert_refused(Bad(_raise_after_changing, lazy(lambda: ((models.mlp((4,)),), {})), ValueError, ["`model`"], watch=watch))


def test_a_failed_call_that_changed_only_the_mode_fails_the_row():
    def eval_then_raise(model):
        model.eval()
        raise ValueError("`model` is bad")
    with pytest.raises(AssertionError):
        assert_refused(Bad(eval_then_raise, lazy(lambda: ((models.mlp((4,)).train(),), {})), ValueError, ["`model`"], watch=0))
