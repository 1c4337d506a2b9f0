"""``magnitude_mask`` selects the k smallest with a k-th-value cut (fast) and falls back to
``torch.topk`` only when ties straddle the cut: its masks equal topk's (torch's pruning) in
every case, ties and zeros included."""

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from compresskit import pruning


def _topk_mask(weight, k):
    mask = torch.ones_like(weight)
    if k:
        mask.view(-1)[torch.topk(weight.abs().flatten(), k, largest=False).indices] = 0
    return mask


CASES = {
    "distinct": torch.randn(64, 33, generator=torch.Generator().manual_seed(0)),
    "pruned zeros": torch.randn(64, 33, generator=torch.Generator().manual_seed(1)) * (torch.arange(64 * 33).view(64, 33) % 3 != 0),
    "few values": torch.randint(-3, 4, (40, 25), generator=torch.Generator().manual_seed(2)).float(),
    "all equal": torch.full((7, 9), 0.5),
    "signed ties": torch.tensor([[-1.0, 1.0, -2.0, 2.0, 0.0, -0.0, 3.0, -3.0]]),
}


@pytest.mark.parametrize("name", CASES)
def test_magnitude_mask_equals_topk_for_every_k(name):
    w = CASES[name]
    for k in range(0, w.numel() + 1, max(1, w.numel() // 97)):
        assert torch.equal(pruning.magnitude_mask(w, k), _topk_mask(w, k)), (name, k)
    assert torch.equal(pruning.magnitude_mask(w, w.numel()), _topk_mask(w, w.numel()))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_magnitude_mask_other_dtypes(dtype):
    w = torch.randn(20, 30, generator=torch.Generator().manual_seed(3)).to(dtype)  # 16-bit: many ties
    for k in (1, 150, 299, 300, 599, 600):
        assert torch.equal(pruning.magnitude_mask(w, k), _topk_mask(w, k)), (dtype, k)


def test_global_masks_equal_torch_global_unstructured_with_ties():
    def model():
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.Linear(30, 10))
        with torch.no_grad():
            for layer in m:
                layer.weight.copy_(torch.round(layer.weight * 8) / 8)  # many ties
        return m

    for amount in (0.3, 0.5, 0.77, 0.9):
        ours, theirs = model(), model()
        pruning.global_unstructured(pruning.prunable_parameters(ours), pruning.L1Unstructured, amount=amount)
        torch_prune.global_unstructured([(m, "weight") for m in theirs], pruning_method=torch_prune.L1Unstructured, amount=amount)
        for a, b in zip(ours, theirs):
            assert torch.equal(a.weight_mask, b.weight_mask), amount
