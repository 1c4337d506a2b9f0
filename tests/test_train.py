"""compresskit.train: learns, is deterministic for a seed, leaves global RNG alone, rejects bad input."""

import pytest
import torch

from compresskit import data, models, train


def _loaders():
    return data.digits_loaders(batch_size=64, seed=0)


def test_fit_learns_digits():
    tr, va, te = _loaders()
    model = models.mlp(hidden=(64,))
    history = train.fit(model, tr, epochs=8, lr=5e-3, val_loader=va, progress=False)
    assert history.epoch == list(range(1, 9))
    assert history.step[-1] == 8 * len(tr)
    assert history.train_loss[-1] < history.train_loss[0] / 3
    assert history.val_acc[-1] > 0.9
    assert train.evaluate(model, te) > 0.9


def test_same_seed_same_model():
    def run(seed):
        tr, _, _ = data.digits_loaders(seed=seed)
        model = torch.nn.Sequential(models.mlp(hidden=(32,)), torch.nn.Dropout(0.3))
        train.fit(model, tr, epochs=2, seed=seed, progress=False)
        return model[0].fc1.weight.detach().clone()

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


def test_fit_does_not_touch_global_rng():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    tr, _, _ = _loaders()
    train.fit(torch.nn.Sequential(models.mlp(hidden=(16,)), torch.nn.Dropout(0.5)), tr, epochs=1, progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_callbacks_are_called():
    tr, _, _ = _loaders()
    steps, epochs = [], []
    train.fit(models.mlp(hidden=(8,)), tr, epochs=2, progress=False,
              on_step=lambda m, s: steps.append(s), on_epoch_end=lambda m, e: epochs.append(e))
    assert steps == list(range(1, 2 * len(tr) + 1))
    assert epochs == [1, 2]


def test_custom_loss_fn_is_used():
    tr, _, _ = _loaders()
    calls = []

    def loss_fn(model, x, y):
        calls.append(len(x))
        return torch.nn.functional.cross_entropy(model(x), y)

    train.fit(models.mlp(hidden=(8,)), tr, epochs=1, loss_fn=loss_fn, progress=False)
    assert sum(calls) == 1078


def test_predict_and_evaluate_agree():
    _, va, _ = _loaders()
    model = models.mlp(hidden=(8,))
    X, y = data.load_digits_split().tensors("val")
    preds = train.predict(model, X)
    assert preds.shape == (359,) and preds.dtype == torch.int64
    assert train.evaluate(model, va) == pytest.approx((preds == y).double().mean().item())


def test_fit_bad_input():
    tr, _, _ = _loaders()
    model = models.mlp(hidden=(8,))
    with pytest.raises(ValueError, match=r"`epochs` must be an integer in \[0, inf\]; got -1"):
        train.fit(model, tr, epochs=-1)
    with pytest.raises(ValueError, match=r"`lr` must be in \(0, inf\); got 0.0"):
        train.fit(model, tr, lr=0.0)
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module; got str"):
        train.fit("mlp", tr)
    with pytest.raises(ValueError, match="must yield at least one batch"):
        train.fit(model, [], epochs=1, progress=False)
    with pytest.raises(FloatingPointError, match="lower `lr`"):
        train.fit(model, tr, epochs=1, lr=1e30, progress=False)
    with pytest.raises(ValueError, match="at least one sample"):
        train.predict(model, torch.zeros(0, 1, 8, 8))


def test_evaluate_on_a_shuffled_loader_pairs_each_image_with_its_label():
    tr, _, _ = _loaders()  # shuffled: every pass yields a new order
    model = models.mlp(hidden=(64,))
    train.fit(model, tr, epochs=6, lr=5e-3, progress=False)
    X, y = data.load_digits_split().tensors("train")
    in_order = (train.predict(model, X) == y).double().mean().item()
    assert in_order > 0.9
    assert train.evaluate(model, tr) == pytest.approx(in_order)


def test_validation_does_not_change_the_training_batches():
    """Evaluating each epoch must not draw from the training loader's generator."""
    def weights(val_loader):
        tr, _, _ = _loaders()
        model = models.mlp(hidden=(16,))
        train.fit(model, tr, epochs=3, val_loader=val_loader, progress=False)
        return model.fc1.weight.detach().clone()

    _, va, _ = _loaders()
    assert torch.equal(weights(None), weights(va))


def test_soft_cross_entropy_equals_torch_for_soft_and_one_hot_targets():
    logits = torch.randn(6, 4)
    soft = torch.softmax(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(train.soft_cross_entropy(logits, soft), torch.nn.functional.cross_entropy(logits, soft))
    one_hot = torch.nn.functional.one_hot(labels, 4).float()
    torch.testing.assert_close(train.soft_cross_entropy(logits, one_hot), torch.nn.functional.cross_entropy(logits, labels))


def test_soft_cross_entropy_refuses_mismatched_targets():
    with pytest.raises(ValueError, match=r"`targets` must have the shape of `logits` \(6, 4\); got \(6, 3\)"):
        train.soft_cross_entropy(torch.randn(6, 4), torch.rand(6, 3))
