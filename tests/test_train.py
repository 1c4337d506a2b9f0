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
    with pytest.raises(ValueError, match="`train_loader` must hold at least one batch; got an empty list"):
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


# --- failures come before training, name the right argument, and leave no trace -----------------


def _tiny_batches(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 10, (16,), generator=g)) for _ in range(n)]


def test_an_empty_val_loader_is_refused_before_any_training():
    model = models.mlp(hidden=(8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="`val_loader` must hold at least one batch; got an empty list"):
        train.fit(model, _tiny_batches(), epochs=2, val_loader=[], progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # not one step was taken


def test_a_one_shot_loader_is_refused_when_it_must_be_read_every_epoch():
    model = models.mlp(hidden=(8,))
    with pytest.raises(TypeError, match="`train_loader` is read once per epoch, so it must be re-iterable"):
        train.fit(model, iter(_tiny_batches()), epochs=2, progress=False)
    train.fit(model, iter(_tiny_batches()), epochs=1, progress=False)  # one epoch reads it once: fine


def test_a_nan_batch_is_blamed_on_the_input_not_on_lr():
    batches = _tiny_batches(3)
    batches[1][0][0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"`train_loader` must yield finite inputs; the batch at epoch 1, step 2 has 1 NaN"):
        train.fit(models.mlp(hidden=(8,)), batches, epochs=1, progress=False)


def test_nan_parameters_are_blamed_on_the_model():
    model = models.mlp(hidden=(8,))
    with torch.no_grad():
        model.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"`model` must have finite parameters before training; `fc1.weight` has 1 NaN"):
        train.fit(model, _tiny_batches(), epochs=1, progress=False)


def test_a_given_optimizer_is_used_and_lr_with_it_is_refused():
    model = models.mlp(hidden=(8,))
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: an optimizer that never moves a weight
    before = model.fc1.weight.detach().clone()
    train.fit(model, _tiny_batches(), epochs=2, optimizer=frozen, progress=False)
    assert torch.equal(model.fc1.weight, before)  # fit used our optimizer, not a fresh Adam
    with pytest.raises(ValueError, match=r"`lr` and `weight_decay` configure the Adam optimizer.*got optimizer=SGD, lr=0.1"):
        train.fit(model, _tiny_batches(), optimizer=frozen, lr=0.1, progress=False)
    with pytest.raises(ValueError, match=r"weight_decay=0.01"):
        train.fit(model, _tiny_batches(), optimizer=frozen, weight_decay=0.01, progress=False)
    with pytest.raises(TypeError, match="`optimizer` must be a torch.optim.Optimizer; got str 'adam'"):
        train.fit(model, _tiny_batches(), optimizer="adam", progress=False)


def test_the_progress_bar_is_closed_when_training_raises(monkeypatch):
    class Bar:
        closed = False

        def set_postfix(self, **kwargs):
            pass

        def update(self, n):
            pass

        def close(self):
            self.closed = True

    bars = []
    monkeypatch.setattr(train, "_progress", lambda total, enabled: bars.append(Bar()) or bars[-1])

    def failing_loss(model, x, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        train.fit(models.mlp(hidden=(8,)), _tiny_batches(), epochs=1, loss_fn=failing_loss, progress=False)
    assert len(bars) == 1 and bars[0].closed


@pytest.mark.parametrize("call", [train.predict, train.evaluate])
@pytest.mark.parametrize("was_training", [True, False])
def test_predict_and_evaluate_refuse_nan_input_and_restore_the_training_flag(call, was_training):
    model = models.mlp(hidden=(8,)).train(was_training)
    batches = _tiny_batches(2)
    batches[1][0][3, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"`data` must hold finite inputs; batch 1 has 1 NaN or inf value"):
        call(model, batches)
    assert model.training is was_training
    call(model, _tiny_batches(2))
    assert model.training is was_training


def test_predict_refuses_a_nan_tensor():
    x = torch.zeros(4, 1, 8, 8)
    x[2, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"`data` must hold finite inputs; batch 0 has 1 NaN or inf"):
        train.predict(models.mlp(hidden=(8,)), x)


def test_a_module_without_tensors_has_no_device_to_infer():
    with pytest.raises(ValueError, match="`model` must hold at least one parameter or buffer to tell its device; got ReLU"):
        train.predict(torch.nn.ReLU(), torch.zeros(2, 3))
    assert train.predict(torch.nn.Flatten(), torch.eye(3), device="cpu").tolist() == [0, 1, 2]


def test_a_module_with_buffers_only_is_evaluated_on_their_device():
    class Centroids(torch.nn.Module):  # no parameters, one buffer: nearest-centroid classifier
        def __init__(self):
            super().__init__()
            self.register_buffer("centroids", torch.eye(3))

        def forward(self, x):
            return -torch.cdist(x, self.centroids)

    x, y = torch.eye(3) * 0.9, torch.tensor([0, 1, 2])
    assert train.predict(Centroids(), x).tolist() == [0, 1, 2]
    assert train.evaluate(Centroids(), [(x, y)]) == 1.0


def test_fit_checks_seed_device_and_callbacks_up_front():
    model = models.mlp(hidden=(8,))
    with pytest.raises(ValueError, match=r"`seed` must be an integer in \[0, 18446744073709551615\]; got -1"):
        train.fit(model, _tiny_batches(), seed=-1, progress=False)
    with pytest.raises(ValueError, match="`device` must name a device such as 'cpu' or 'cuda'; got 'gpu'"):
        train.fit(model, _tiny_batches(), device="gpu", progress=False)
    with pytest.raises(TypeError, match="`on_step` must be callable; got int 3"):
        train.fit(model, _tiny_batches(), on_step=3, progress=False)
    with pytest.raises(TypeError, match="`train_loader` must be a DataLoader or an iterable of batches; got Tensor"):
        train.fit(model, torch.zeros(3), progress=False)


def test_fit_trains_where_the_model_is_even_when_a_gpu_is_present(monkeypatch):
    """On a learner's GPU machine fit must not move a CPU model to the GPU: the chapter code that
    follows feeds it CPU tensors. (Here a GPU is pretended; moving to it would raise.)"""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert train.default_device().type == "cuda"
    model = models.mlp((8,))
    X, y = data.load_digits_split().tensors("train")
    train.fit(model, data.make_loader(X[:64], y[:64], 32), epochs=1, progress=False)
    assert all(p.device.type == "cpu" for p in model.parameters())
