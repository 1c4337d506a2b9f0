"""fit_compressed: compression callbacks in compresskit.train.fit's hooks, in any combination.

PruneWhileTraining is checked against the cubic schedule of Zhu & Gupta (compresskit.pruning's
cubic_sparsity) and against the sparsity the model really has; Distill against
compresskit.distillation.distillation_loss and PyTorch's KL divergence.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from compresskit import data, models, pruning
from compresskit.distillation import distillation_loss
from compresskit.train import evaluate, fit
from compresskit.training import Distill, PruneWhileTraining, fit_compressed, prepare_qat

SPLIT = data.load_digits_split()
X_TRAIN, Y_TRAIN = SPLIT.tensors("train")
X_TEST, Y_TEST = SPLIT.tensors("test")


def loader(seed: int = 0, n: int = 512, batch: int = 64):
    return data.make_loader(X_TRAIN[:n], Y_TRAIN[:n], batch, shuffle=True, seed=seed)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def global_sparsity(model: nn.Module) -> float:
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)


class Recorder:
    """Records every hook call; its loss adds nothing."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.epochs: list[int] = []
        self.losses: list[float] = []

    def loss(self, model, x, y, loss):
        self.losses.append(float(loss.detach()))
        return loss

    def on_step(self, model, step):
        self.steps.append(step)

    def on_epoch_end(self, model, epoch):
        self.epochs.append(epoch)


# --- the loop ------------------------------------------------------------------------------------

def test_without_callbacks_it_trains_exactly_as_fit_does():
    a, b = models.mlp((32,), seed=0), models.mlp((32,), seed=0)
    fit_compressed(a, loader(), epochs=2, lr=1e-2, seed=3)
    fit(b, loader(), epochs=2, lr=1e-2, seed=3, progress=False)
    assert same_state(state(a), state(b))
    assert not same_state(state(a), state(models.mlp((32,), seed=0)))  # it did train


def test_every_hook_is_called_at_every_step_and_epoch():
    rec = Recorder()
    model = fit_compressed(models.mlp((16,), seed=0), loader(n=200, batch=50), epochs=3, lr=1e-2, callbacks=[rec])
    assert rec.steps == list(range(1, 13)) and rec.epochs == [1, 2, 3]
    assert len(rec.losses) == 12 and all(v > 0 for v in rec.losses)
    assert isinstance(model, nn.Sequential)


def test_loss_callbacks_run_in_order_on_the_cross_entropy():
    seen = []

    class Plus1:
        def loss(self, model, x, y, loss):
            seen.append(("plus", float(loss.detach()), nn.functional.cross_entropy(model(x), y).item()))
            return loss + 1.0

    class Times2:
        def loss(self, model, x, y, loss):
            seen.append(("times", float(loss.detach()), None))
            return loss * 2.0

    fit_compressed(models.mlp((8,), seed=0), loader(n=64, batch=64), epochs=1, lr=1e-9, callbacks=[Plus1(), Times2()])
    (_, first, ce), (_, second, _) = seen
    assert first == pytest.approx(ce, rel=1e-5)  # the chain starts from the cross-entropy
    assert second == pytest.approx(first + 1.0, rel=1e-6)  # and runs in the order given


def test_a_loss_that_takes_logits_gets_them_with_one_forward_pass_per_step():
    calls = []

    class UsesLogits:
        def loss(self, model, x, y, loss, *, logits):
            calls.append(torch.allclose(logits, model.eval()(x).detach(), atol=1e-6) or True)
            model.train()
            assert logits.requires_grad
            return loss

    model = models.mlp((8,), seed=0)
    forwards = []
    model.register_forward_hook(lambda m, i, o: forwards.append(1) if torch.is_grad_enabled() and m.training else None)
    fit_compressed(model, loader(n=128, batch=64), epochs=1, lr=1e-2, callbacks=[UsesLogits()])
    assert len(calls) == 2 and len(forwards) == 2  # one training forward per step: the callback reused it


# --- pruning while training -------------------------------------------------------------------------

def test_prune_while_training_follows_the_cubic_schedule_and_reaches_the_amount():
    model = models.mlp((32,), seed=0)
    pruner = PruneWhileTraining(0.8, start_step=4, end_step=20, every=4)
    seen = []

    class Sparsity:
        def on_step(self, m, step):
            seen.append((step, global_sparsity(m)))

    fit_compressed(model, loader(n=256, batch=32), epochs=3, lr=1e-2, callbacks=[pruner, Sparsity()])  # 24 steps
    assert [s for s, _ in pruner.history_] == [4, 8, 12, 16, 20]
    for step, target in pruner.history_:
        assert target == pytest.approx(pruning.cubic_sparsity(step, 0.8, 4, 20))
        assert dict(seen)[step] == pytest.approx(target, abs=1e-3)  # the model has the scheduled sparsity
    assert dict(seen)[3] == 0.0 and dict(seen)[9] == pytest.approx(dict(seen)[8])  # nothing before start, held between
    assert global_sparsity(model) == pytest.approx(0.8, abs=1e-3)
    assert pruner.history_[1][1] - pruner.history_[0][1] > pruner.history_[-1][1] - pruner.history_[-2][1]  # fast, then slow


def test_the_pruned_weights_stay_zero_while_training_goes_on():
    model = models.mlp((32,), seed=0)
    at_end = {}

    class Zeros:
        def on_step(self, m, step):
            if step == 8:
                at_end.update({n: (mod.weight == 0).clone() for n, mod in m.named_modules() if isinstance(mod, nn.Linear)})

    fit_compressed(model, loader(n=256, batch=32), epochs=4, lr=1e-2, callbacks=[PruneWhileTraining(0.9, 0, 8, every=2), Zeros()])
    assert global_sparsity(model) == pytest.approx(0.9, abs=1e-3)
    for name, zeros in at_end.items():  # 24 more steps of Adam moved no pruned weight
        assert torch.equal(model.get_submodule(name).weight == 0, zeros)


def test_a_schedule_longer_than_training_is_refused_before_any_step():
    model = models.mlp((8,), seed=0)
    before = state(model)
    with pytest.raises(ValueError, match=r"`end_step` must be <= the number of training steps \(8\).*got end_step=50"):
        fit_compressed(model, loader(n=256, batch=64), epochs=2, lr=1e-2, callbacks=[PruneWhileTraining(0.5, 0, 50)])
    assert same_state(state(model), before)


# --- distillation ----------------------------------------------------------------------------------

def test_distill_loss_is_hintons_loss_on_the_cross_entropy():
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 10, requires_grad=True), torch.randn(6, 10), torch.randint(0, 10, (6,))
    teacher = nn.Identity()
    ce = nn.functional.cross_entropy(s, y)
    got = Distill(teacher, temperature=3.0, alpha=0.7).loss(None, t, y, ce, logits=s)  # the Identity teacher returns t
    want = distillation_loss(s, t, y, temperature=3.0, alpha=0.7)
    kl = nn.functional.kl_div(torch.log_softmax(s / 3, 1), torch.softmax(t / 3, 1), reduction="batchmean")
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert got.item() == pytest.approx((0.7 * 9 * kl + 0.3 * ce).item(), rel=1e-5)  # PyTorch's KL


def test_distillation_trains_the_student_and_leaves_the_teacher_alone():
    teacher = models.mlp((64,), seed=1)
    fit(teacher, loader(seed=1), epochs=4, lr=1e-2, progress=False)
    teacher.train()
    before = state(teacher)
    student = models.mlp((16,), seed=0)

    def kd() -> float:
        with torch.no_grad():
            return distillation_loss(student(X_TEST), teacher.eval()(X_TEST), None, temperature=4.0, alpha=1.0).item()

    start = kd()
    teacher.train()
    fit_compressed(student, loader(), epochs=3, lr=1e-2, callbacks=[Distill(teacher, temperature=4.0, alpha=0.9)])
    assert same_state(state(teacher), before) and teacher.training  # not trained, mode given back
    assert kd() < 0.75 * start  # the student moved towards the teacher's soft targets, on unseen images


# --- every callback at once, on a QAT model ----------------------------------------------------------

def test_qat_pruning_and_distillation_combine_in_one_run():
    teacher = models.mlp((64,), seed=1)
    fit(teacher, loader(seed=1), epochs=4, lr=1e-2, progress=False)
    rec = Recorder()
    student = prepare_qat(models.mlp((32,), seed=0), weight_bits=4, act_bits=4)
    fit_compressed(student, loader(), epochs=3, lr=1e-2,
                   callbacks=[PruneWhileTraining(0.7, 0, 16, every=4), Distill(teacher, 4.0, 0.5), rec])
    assert rec.steps == list(range(1, 25))
    layers = [m for m in student.modules() if isinstance(m, nn.Linear)]
    w_hat = [m.weight_quant(m.weight.detach()) for m in layers]  # the weights the forward pass uses
    zeros = sum(int((w == 0).sum()) for w in w_hat) / sum(w.numel() for w in w_hat)
    assert zeros >= 0.7  # pruned weights quantize to exactly 0
    assert all(len(torch.unique(w[0])) <= 15 for w in w_hat)  # on the 4-bit grid: at most 15 levels per row
    assert evaluate(student, [(X_TEST, Y_TEST)]) > 0.4  # it learned (chance is 0.1) in 24 short steps


# --- bad input ------------------------------------------------------------------------------------

class Nothing:
    pass


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        (dict(callbacks="prune"), TypeError, ["`callbacks`", "'prune'"]),
        (dict(callbacks=PruneWhileTraining(0.5, 0, 4)), TypeError, ["`callbacks`", "wrap a single callback in a list", "PruneWhileTraining"]),
        (dict(callbacks=[Recorder(), Nothing()]), TypeError, ["`callbacks[1]`", "Nothing"]),
        (dict(callbacks=[], loss_fn=lambda m, x, y: 0), TypeError, ["`loss_fn`", "callback"]),
        (dict(callbacks=[], on_step=print), TypeError, ["`on_step`", "callback"]),
        (dict(callbacks=[], lr=-1.0), ValueError, ["`lr`", "-1.0"]),
        (dict(callbacks=[], epochs=1.5), TypeError, ["`epochs`", "1.5"]),
    ],
)
def test_bad_arguments_are_refused_before_training(kwargs, error, words):
    model = models.mlp((8,), seed=0)
    before = state(model)
    args = dict(epochs=1, lr=1e-2) | kwargs
    with pytest.raises(error) as info:
        fit_compressed(model, loader(n=64), **args)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert same_state(state(model), before)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda: PruneWhileTraining(1, 0, 10), TypeError, ["`final_sparsity`", "int 1"]),
        (lambda: PruneWhileTraining(0.5, 10, 10), ValueError, ["`end_step`", "10"]),
        (lambda: PruneWhileTraining(0.5, 0, 10, every=0), ValueError, ["`every`", "0"]),
        (lambda: Distill("teacher"), TypeError, ["`teacher`", "'teacher'"]),
        (lambda: Distill(nn.Linear(2, 2), temperature=0.0), ValueError, ["`temperature`", "0.0"]),
        (lambda: Distill(nn.Linear(2, 2), alpha=1.5), ValueError, ["`alpha`", "1.5"]),
    ],
)
def test_bad_callback_arguments_are_refused(make, error, words):
    with pytest.raises(error) as info:
        make()
    for word in words:
        assert word in str(info.value), str(info.value)


# --- loaders without a length, and failed runs (issue 19) -------------------------------------------

class Stream(torch.utils.data.IterableDataset):
    """An IterableDataset: its DataLoader has no length."""

    def __iter__(self):
        return iter(zip(X_TRAIN[:256], Y_TRAIN[:256]))


def test_a_loader_without_a_length_needs_steps_per_epoch_for_a_schedule():
    stream = torch.utils.data.DataLoader(Stream(), batch_size=64)  # 4 batches, len() raises TypeError
    model = models.mlp((8,), seed=0)
    before = state(model)
    with pytest.raises(ValueError, match="`steps_per_epoch` must be given.*DataLoader"):
        fit_compressed(model, stream, epochs=2, lr=1e-3, callbacks=[PruneWhileTraining(0.5, 0, 8, every=2)])
    assert same_state(before, state(model)) and not torch.nn.utils.prune.is_pruned(model)
    fit_compressed(model, stream, epochs=2, lr=1e-3, steps_per_epoch=4, callbacks=[PruneWhileTraining(0.5, 0, 8, every=2)])
    assert global_sparsity(model) == pytest.approx(0.5, abs=1e-3)  # the amount asked for, not 2%


def test_a_wrong_steps_per_epoch_is_refused_and_the_model_given_back():
    stream = torch.utils.data.DataLoader(Stream(), batch_size=64)
    model = models.mlp((8,), seed=0)
    before = state(model)
    with pytest.raises(ValueError, match="`steps_per_epoch`.*got 6, and the first epoch had 4"):
        fit_compressed(model, stream, epochs=2, lr=1e-3, steps_per_epoch=6, callbacks=[PruneWhileTraining(0.5, 0, 12, every=2)])
    assert same_state(before, state(model)) and not torch.nn.utils.prune.is_pruned(model)
    with pytest.raises(ValueError, match=r"`steps_per_epoch` must equal len\(loader\) \(2\).*got 3"):
        fit_compressed(model, loader(n=128), epochs=1, lr=1e-3, steps_per_epoch=3)


def bn_qat_model() -> nn.Module:
    torch.manual_seed(0)
    float_model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    return prepare_qat(float_model, weight_bits=4, act_bits=8)


def test_a_wrong_teacher_leaves_the_model_as_it_was():
    model = bn_qat_model().eval()
    before = state(model)  # BatchNorm statistics and activation observers included
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(64, 7))  # 7 classes, not 10
    with pytest.raises(Exception):
        fit_compressed(model, loader(n=128), epochs=1, lr=1e-2, callbacks=[Distill(wrong)])
    assert same_state(before, state(model))
    assert not model.training and not any(m.training for m in model.modules())


def test_a_failed_schedule_takes_its_pruning_back():
    model = models.mlp((8,), seed=0)
    before = state(model)

    class Fails:
        def on_epoch_end(self, model, epoch):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fit_compressed(model, loader(n=128), epochs=1, lr=1e-2, callbacks=[PruneWhileTraining(0.5, 0, 2, every=1), Fails()])
    assert not torch.nn.utils.prune.is_pruned(model) and same_state(before, state(model))


@pytest.mark.parametrize("hook, fn", [
    ("on_step", lambda self, model: None),
    ("on_epoch_end", lambda self, model, epoch, extra: None),
    ("loss", lambda self, model, x, y: None),
])
def test_a_callback_of_the_wrong_signature_is_refused_before_any_step(hook, fn):
    model = models.mlp((8,), seed=0)
    before = state(model)
    callback = type("Wrong", (), {hook: fn})()
    with pytest.raises(TypeError, match=rf"`callbacks\[0\]\.{hook}` must accept"):
        fit_compressed(model, loader(n=128), epochs=1, lr=1e-2, callbacks=[callback])
    assert same_state(before, state(model))
