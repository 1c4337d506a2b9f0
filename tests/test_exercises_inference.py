"""Chapter 10's exercise checkers keep tests/exercise_contract.py's contract: each accepts an
independent worked answer (written here, not the checker's reference), rejects the wrong answers
a learner plausibly writes from the notebook's instructions (the K and V factor or the layers
forgotten, bits for bytes, off by one in tokens; Wanda's norm over the wrong axis or squared,
rows compared as one matrix, the smallest kept, the count rounded, ties; LoRA's alpha not divided
by r, transposes, the bias forgotten or scaled; a speculative step that goes on after a mismatch,
takes the draft's token, forgets the bonus token or breaks argmax's ties, ...), each with a line
that names the mistake, and reports an untouched stub as not attempted. The references are
held against plain torch: the bytes of real K and V tensors, a hand-made case with ties, a merged
LoRA weight, and a greedy speculative loop that must give the target's own greedy tokens."""

from __future__ import annotations

import math

import pytest
import torch
from exercise_contract import contract_tests
from torch import nn

from compresskit.course import progress
from compresskit.course.exercises import inference as ex


def stub(*args):
    raise NotImplementedError  # your code here


# --- independent worked answers (as in solutions/10_llm_inference.ipynb) --------------------------

def kv_cache_bytes(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    head_dim = d_model // n_head
    one_token_one_layer = 2 * n_head * head_dim  # a key and a value vector per head
    return n_layer * one_token_one_layer * n_tokens * batch_size * bits // 8


def wanda_mask(W, X, sparsity):
    norms = X.pow(2).sum(dim=0).sqrt()  # ||X_j||_2 over the tokens
    score = W.abs() * norms
    n_prune = int(sparsity * W.shape[1])
    mask = torch.ones(W.shape, dtype=torch.bool)
    for r in range(W.shape[0]):
        row = score[r].tolist()
        for j in sorted(range(len(row)), key=lambda j: (row[j], j))[:n_prune]:  # ties: the lower column first
            mask[r, j] = False
    return score, mask


def lora_forward(x, W, b, A, B, alpha):
    merged = W + (alpha / A.shape[0]) * B @ A  # the merged weight W + (alpha / r) B A
    return nn.functional.linear(x, merged, b)


def accept_draft(draft_tokens, target_logits):
    choices = [max(range(len(row)), key=lambda v: (row[v], -v)) for row in target_logits.tolist()]  # first max
    n = 0
    for d, c in zip(draft_tokens.tolist(), choices):
        if d != c:
            break
        n += 1
    return n, choices[n]


# --- wrong answers a learner plausibly writes ------------------------------------------------------

def kv_no_two(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return n_layer * d_model * n_tokens * batch_size * bits // 8


def kv_no_layers(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return 2 * d_model * n_tokens * batch_size * bits // 8


def kv_heads_times_d_model(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return n_layer * 2 * n_head * d_model * n_tokens * batch_size * bits // 8


def kv_bits(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return n_layer * 2 * d_model * n_tokens * batch_size * bits


def kv_one_token_less(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return kv_cache_bytes(n_layer, n_head, d_model, n_tokens - 1, batch_size, bits)


def kv_one_token_more(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return kv_cache_bytes(n_layer, n_head, d_model, n_tokens + 1, batch_size, bits)


def kv_no_batch(n_layer, n_head, d_model, n_tokens, batch_size, bits):
    return kv_cache_bytes(n_layer, n_head, d_model, n_tokens, 1, bits)


def _keep_per_row(score, n_prune):
    mask = torch.ones_like(score, dtype=torch.bool)
    return mask.scatter(1, torch.sort(score, dim=1, stable=True).indices[:, :n_prune], False)


def _wanda_with_norm(W, X, sparsity, norm):
    score = W.abs() * norm
    return score, _keep_per_row(score, int(sparsity * W.shape[1]))


def wanda_norm_over_features(W, X, sparsity):
    return _wanda_with_norm(W, X, sparsity, X.norm(dim=1))


def wanda_squared_norm(W, X, sparsity):
    return _wanda_with_norm(W, X, sparsity, (X**2).sum(0))


def wanda_mean_abs(W, X, sparsity):
    return _wanda_with_norm(W, X, sparsity, X.abs().mean(0))


def wanda_signed(W, X, sparsity):
    score = W * X.norm(dim=0)
    return score, _keep_per_row(score, int(sparsity * W.shape[1]))


def wanda_whole_matrix(W, X, sparsity):
    score = W.abs() * X.norm(dim=0)
    threshold = score.flatten().kthvalue(int(sparsity * W.shape[1]) * W.shape[0]).values
    return score, score > threshold


def wanda_per_column(W, X, sparsity):
    score = W.abs() * X.norm(dim=0)
    n_prune = int(sparsity * W.shape[0])
    mask = torch.ones_like(score, dtype=torch.bool)
    return score, mask.scatter(0, torch.sort(score, dim=0, stable=True).indices[:n_prune], False)


def wanda_keeps_smallest(W, X, sparsity):
    score = W.abs() * X.norm(dim=0)
    keep = W.shape[1] - int(sparsity * W.shape[1])
    mask = torch.zeros_like(score, dtype=torch.bool)
    return score, mask.scatter(1, torch.sort(score, dim=1, stable=True).indices[:, :keep], True)


def wanda_mask_inverted(W, X, sparsity):
    score, mask = wanda_mask(W, X, sparsity)
    return score, ~mask


def wanda_rounds(W, X, sparsity):
    score = W.abs() * X.norm(dim=0)
    return score, _keep_per_row(score, round(sparsity * W.shape[1]))


def wanda_topk_descending(W, X, sparsity):
    score = W.abs() * X.norm(dim=0)
    keep = W.shape[1] - int(sparsity * W.shape[1])
    kept = torch.sort(score, dim=1, descending=True, stable=True).indices[:, :keep]
    return score, torch.zeros_like(score, dtype=torch.bool).scatter(1, kept, True)


def wanda_threshold(W, X, sparsity):
    score = W.abs() * X.norm(dim=0)
    kth = score.kthvalue(int(sparsity * W.shape[1]), dim=1, keepdim=True).values
    return score, score > kth


def wanda_float_mask(W, X, sparsity):
    score, mask = wanda_mask(W, X, sparsity)
    return score, mask.float()


def wanda_float32(W, X, sparsity):
    score, mask = wanda_mask(W, X, sparsity)
    return score.float(), mask


def wanda_in_place(W, X, sparsity):
    score = W.abs_().mul_(X.norm(dim=0))  # overwrites the caller's weight
    return score, _keep_per_row(score, int(sparsity * W.shape[1]))


def _lora(x, W, b, A, B, scale):
    return x @ W.T + b + scale * (x @ A.T) @ B.T


def lora_unscaled(x, W, b, A, B, alpha):
    return _lora(x, W, b, A, B, 1.0)


def lora_alpha(x, W, b, A, B, alpha):
    return _lora(x, W, b, A, B, alpha)


def lora_r_over_alpha(x, W, b, A, B, alpha):
    return _lora(x, W, b, A, B, A.shape[0] / alpha)


def lora_rank_from_columns(x, W, b, A, B, alpha):
    return _lora(x, W, b, A, B, alpha / A.shape[1])


def lora_no_bias(x, W, b, A, B, alpha):
    return x @ W.T + (alpha / A.shape[0]) * x @ A.T @ B.T


def lora_scales_everything(x, W, b, A, B, alpha):
    return (alpha / A.shape[0]) * (x @ W.T + b + x @ A.T @ B.T)


def lora_update_untransposed(x, W, b, A, B, alpha):
    return x @ W.T + b + (alpha / A.shape[0]) * x @ (B @ A)


def lora_weight_untransposed(x, W, b, A, B, alpha):
    return x @ W + b + (alpha / A.shape[0]) * x @ A.T @ B.T


def lora_float32(x, W, b, A, B, alpha):
    return lora_forward(x, W, b, A, B, alpha).float()


def lora_merges_in_place(x, W, b, A, B, alpha):
    W += (alpha / A.shape[0]) * B @ A  # merges into the caller's weight
    return x @ W.T + b


def _choices(target_logits):
    return target_logits.argmax(dim=-1).tolist()


def accept_after_mismatch(draft_tokens, target_logits):
    choice = _choices(target_logits)
    n = sum(d == c for d, c in zip(draft_tokens.tolist(), choice))
    return n, choice[n]


def accept_takes_draft_token(draft_tokens, target_logits):
    n, next_token = accept_draft(draft_tokens, target_logits)
    return n, (draft_tokens[n].item() if n < len(draft_tokens) else next_token)


def accept_no_bonus(draft_tokens, target_logits):
    n, next_token = accept_draft(draft_tokens, target_logits)
    return n, (next_token if n < len(draft_tokens) else draft_tokens[-1].item())


def accept_counts_emitted(draft_tokens, target_logits):
    n, next_token = accept_draft(draft_tokens, target_logits)
    return n + 1, next_token


def accept_shifted(draft_tokens, target_logits):
    choice, k = _choices(target_logits), len(draft_tokens)
    n = 0
    while n < k and draft_tokens[n].item() == choice[n + 1]:
        n += 1
    return n, choice[min(n + 1, k)]


def accept_any_maximum(draft_tokens, target_logits):
    n, k = 0, len(draft_tokens)
    while n < k and target_logits[n, draft_tokens[n]] == target_logits[n].max():
        n += 1
    return n, int(target_logits[n].argmax())


def accept_last_maximum(draft_tokens, target_logits):
    vocab = target_logits.shape[-1]
    choice = (vocab - 1 - target_logits.flip(-1).argmax(-1)).tolist()
    n = 0
    while n < len(draft_tokens) and draft_tokens[n].item() == choice[n]:
        n += 1
    return n, choice[n]


def accept_in_place(draft_tokens, target_logits):
    choice = target_logits.argmax(-1)
    agree = draft_tokens.eq_(choice[: len(draft_tokens)])  # overwrites the caller's draft tokens
    n = int(agree.cumprod(0).sum())
    return n, int(choice[n])


CHANGED = "your function changed its argument `"
WRONG = {
    "kv_cache_bytes": (ex.check_kv_cache_bytes, kv_cache_bytes, [
        (kv_no_two, "multiply by 2"),
        (kv_no_layers, "multiply by n_layer"),
        (kv_heads_times_d_model, "not n_head * d_model"),
        (kv_bits, "bits, not bytes"),
        (kv_one_token_less, "holds all n_tokens positions"),
        (kv_one_token_more, "not n_tokens + 1"),
        (kv_no_batch, "multiply by batch_size"),
    ]),
    "wanda_mask": (ex.check_wanda_mask, wanda_mask, [
        (wanda_norm_over_features, "over the TOKENS"),
        (wanda_squared_norm, "not its square"),
        (wanda_mean_abs, "not the mean of |x|"),
        (wanda_signed, "uses |W|"),
        (wanda_whole_matrix, "not over the whole matrix"),
        (wanda_per_column, "not within each column"),
        (wanda_keeps_smallest, "keep the LARGEST scores"),
        (wanda_mask_inverted, "True marks a KEPT weight"),
        (wanda_rounds, "int(sparsity * in_features), floored"),
        (wanda_topk_descending, "the LOWER column is pruned first"),
        (wanda_threshold, "prunes every weight tied with it"),
        (wanda_float_mask, "mask: dtype: expected torch.bool"),
        (wanda_float32, "keep the dtype of the input"),
        (wanda_in_place, CHANGED + "W`"),
    ]),
    "lora_forward": (ex.check_lora_forward, lora_forward, [
        (lora_unscaled, "the update is scaled by alpha / r"),
        (lora_alpha, "not alpha: divide by the rank"),
        (lora_r_over_alpha, "not r / alpha"),
        (lora_rank_from_columns, "not A.shape[1]"),
        (lora_no_bias, "bias b is forgotten"),
        (lora_scales_everything, "scale only the low-rank update"),
        (lora_update_untransposed, "not x (B A)"),
        (lora_weight_untransposed, "not x W"),
        (lora_float32, "keep the dtype of the input"),
        (lora_merges_in_place, CHANGED + "W`"),
    ]),
    "accept_draft": (ex.check_accept_draft, accept_draft, [
        (accept_after_mismatch, "stop at the first mismatch"),
        (accept_takes_draft_token, "the TARGET's choice"),
        (accept_no_bonus, "bonus token"),
        (accept_counts_emitted, "DRAFT tokens only"),
        (accept_shifted, "row i of target_logits predicts draft token i"),
        (accept_any_maximum, "a draft token tied with it"),
        (accept_last_maximum, "not the last"),
        (accept_in_place, CHANGED + "draft_tokens`"),
    ]),
}

globals().update(contract_tests(WRONG, stub))


def test_every_checker_of_the_module_is_tested():
    assert [n.removeprefix("check_") for n in progress.exercises()["inference"]] == list(WRONG)


def test_the_module_is_chapter_10():
    assert progress.CHAPTERS["inference"] == (10, "Language-model inference")


@pytest.mark.parametrize("name", list(WRONG))
def test_every_wrong_answer_is_named_by_a_mistake_of_its_own(name):
    """At least four wrong answers, and no two named by the same words (each mistake is its own)."""
    assert len(WRONG[name][2]) >= 4
    words = [w for _, w in WRONG[name][2]]
    assert len(set(words)) == len(words)


# --- the references against plain torch ------------------------------------------------------------

@pytest.mark.parametrize("n_layer, n_head, d_model, n_tokens, batch_size, dtype", [
    (4, 4, 128, 256, 1, torch.float32), (2, 2, 64, 100, 1, torch.float32), (4, 4, 128, 17, 3, torch.int8),
    (6, 8, 512, 50, 2, torch.float16), (1, 1, 16, 1, 1, torch.float64),
])
def test_kv_bytes_are_the_bytes_of_real_key_and_value_tensors(n_layer, n_head, d_model, n_tokens, batch_size, dtype):
    """The cache a decoder keeps: per layer a K and a V of shape (B, H, T, hd), as attention holds them."""
    head_dim = d_model // n_head
    cache = [(torch.zeros(batch_size, n_head, n_tokens, head_dim, dtype=dtype),
              torch.zeros(batch_size, n_head, n_tokens, head_dim, dtype=dtype)) for _ in range(n_layer)]
    real = sum(t.numel() * t.element_size() for kv in cache for t in kv)
    bits = torch.empty((), dtype=dtype).element_size() * 8
    assert ex.reference_kv_cache_bytes(n_layer, n_head, d_model, n_tokens, batch_size, bits).value == real


def test_kv_bytes_of_an_int4_cache_are_half_an_int8_one_and_a_7b_model_needs_2_gib():
    assert 2 * ex.reference_kv_cache_bytes(4, 4, 128, 7, 2, 4).value == ex.reference_kv_cache_bytes(4, 4, 128, 7, 2, 8).value
    assert ex.reference_kv_cache_bytes(32, 32, 4096, 4096, 1, 16).value == 2 * 2**30


def test_wanda_by_hand_prunes_the_lower_column_among_ties():
    """Every input norm is 5: row 0 scores 5, 5, 10, 2.5 (prune columns 3 and 0, the first of the
    two tied 5s), row 1 scores 10 everywhere (prune columns 0 and 1)."""
    score, mask = ex.reference_wanda_mask(ex._TIES_W, ex._TIES_X, 0.5).value
    assert score.tolist() == [[5.0, 5.0, 10.0, 2.5], [10.0, 10.0, 10.0, 10.0]]
    assert mask.tolist() == [[False, True, True, False], [False, False, True, True]]


@pytest.mark.parametrize("sparsity, n", [(0.5, 8), (0.3, 12), (0.25, 10), (0.75, 8), (0.0, 6)])
def test_wanda_prunes_the_floored_count_in_every_row_and_keeps_the_largest(sparsity, n):
    g = torch.Generator().manual_seed(n)
    W, X = torch.randn(5, n, generator=g), torch.randn(9, n, generator=g)
    score, mask = ex.reference_wanda_mask(W, X, sparsity).value
    torch.testing.assert_close(score, W.abs() * torch.linalg.norm(X, dim=0))
    assert mask.dtype == torch.bool
    assert (~mask).sum(dim=1).tolist() == [math.floor(sparsity * n)] * 5
    for r in range(5):
        if 0 < (~mask[r]).sum() < n:
            assert score[r][~mask[r]].max() <= score[r][mask[r]].min()


def test_wanda_differs_from_magnitude_where_an_input_feature_is_an_outlier():
    """The point of the score: a small weight on a large input feature is kept."""
    W = torch.tensor([[0.1, 1.0, 0.9, 0.8]])
    X = torch.tensor([[100.0, 1.0, 1.0, 1.0]])
    _, mask = ex.reference_wanda_mask(W, X, 0.5).value
    assert mask.tolist() == [[True, True, False, False]]  # magnitude alone would prune the 0.1


@pytest.mark.parametrize("case", range(7))
def test_lora_reference_is_nn_linear_with_the_merged_weight(case):
    x, W, b, A, B, alpha = _cases(ex.check_lora_forward)[case].args
    layer = nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype)
    with torch.no_grad():
        layer.weight.copy_(W + alpha / A.shape[0] * B @ A)  # Eq. (3) of LoRA: W0 + (alpha / r) B A
        layer.bias.copy_(b)
    torch.testing.assert_close(ex.reference_lora_forward(x, W, b, A, B, alpha).value, layer(x).detach())


def test_lora_with_b_zero_is_exactly_the_base_layer():
    x, W, b, A, B, alpha = _cases(ex.check_lora_forward)[2].args
    assert not B.any()
    assert torch.equal(ex.reference_lora_forward(x, W, b, A, B, alpha).value, x @ W.T + b)


def test_the_step_cases_have_the_argmax_they_describe():
    """torch.argmax's rule, which the exercise states: the first index of the maximum."""
    assert torch.tensor([1.0, 3.0, 0.0, 3.0]).argmax().item() == 1
    first, second, third, fourth, fifth, tie, bonus_tie, bytes_ = _cases(ex.check_accept_draft)
    assert ex.reference_accept_draft(*first.args).value == (2, 1)
    assert ex.reference_accept_draft(*second.args).value == (4, 4)
    assert ex.reference_accept_draft(*third.args).value == (0, 6)
    assert ex.reference_accept_draft(*fourth.args).value == (1, 11)
    assert ex.reference_accept_draft(*fifth.args).value == (0, 4)
    assert ex.reference_accept_draft(*tie.args).value == (1, 2)
    assert ex.reference_accept_draft(*bonus_tie.args).value == (2, 3)
    assert ex.reference_accept_draft(*bytes_.args).value == (3, 108)


@pytest.mark.parametrize("k, seed", [(1, 0), (3, 1), (4, 2), (6, 3)])
def test_greedy_speculative_decoding_with_the_reference_step_gives_the_targets_tokens(k, seed):
    """Leviathan et al.'s guarantee for greedy decoding: two bigram "models" (tables of logits for
    the next token given the last one); the draft proposes k tokens, one target pass scores them,
    the step keeps what agrees. The tokens are the target's own greedy tokens."""
    g = torch.Generator().manual_seed(seed)
    vocab = 12
    target = torch.randn(vocab, vocab, generator=g)
    draft = target + 0.8 * torch.randn(vocab, vocab, generator=g)  # agrees often, not always
    greedy = [3]
    for _ in range(40):
        greedy.append(int(target[greedy[-1]].argmax()))
    tokens, steps = [3], 0
    while len(tokens) < 41:
        proposal = [tokens[-1]]
        for _ in range(k):
            proposal.append(int(draft[proposal[-1]].argmax()))
        logits = target[torch.tensor(proposal)]  # (k + 1, vocab): row i predicts proposal[i + 1]
        n, next_token = ex.reference_accept_draft(torch.tensor(proposal[1:]), logits).value
        tokens += proposal[1 : 1 + n] + [next_token]
        steps += 1
    assert tokens[:41] == greedy
    assert steps < 40  # some draft tokens were accepted: fewer target passes than tokens


def _cases(check):
    """The inputs a checker gives, recorded by a right answer that notes its arguments."""
    seen = []
    right = {ex.check_lora_forward: lora_forward, ex.check_accept_draft: accept_draft}[check]

    def recorder(*args):
        seen.append(ex.Case("", tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)))
        return right(*args)

    assert check(recorder)
    return seen
