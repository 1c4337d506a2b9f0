"""Speculative decoding (compresskit.llm.speculative) held against independent references.

- greedy_accept: hand cases and a plain loop written here (keep while equal to the argmax).
- speculative sampling: the tokens it gives are distributed as the target's own samples. A
  Markov "target" and "draft" over 3 tokens: the exact probability of every 3-token output
  stream of speculative decoding, enumerated over all draft draws, accept / reject outcomes and
  residual draws, equals the target's product of conditionals; and speculative_accept's samples
  pass a chi-square test against that joint with a bound from the chi-square quantile, a test a
  plausible mistake (drawing from p instead of the residual after a rejection) would fail
  (the expected statistic of that mistake is computed and shown to be far past the bound).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sstats
from torch import nn

from compresskit import llm, models, text
from compresskit.llm import speculative as spec

pytestmark = pytest.mark.usefixtures("one_thread")


# --- greedy_accept -----------------------------------------------------------------------------

def one_hot_logits(tokens: list[int], vocab: int = 5) -> torch.Tensor:
    logits = torch.zeros(len(tokens), vocab)
    logits[torch.arange(len(tokens)), torch.tensor(tokens)] = 3.0
    return logits


def test_greedy_accept_by_hand():
    # the target's argmax after each prefix: 1, 2, 3, 4 (the last one is the bonus row)
    logits = one_hot_logits([1, 2, 3, 4])
    assert llm.greedy_accept(torch.tensor([1, 2, 3]), logits) == (3, 4)  # all kept, bonus token 4
    assert llm.greedy_accept(torch.tensor([0, 2, 3]), logits) == (0, 1)  # first guess wrong: the target's 1
    assert llm.greedy_accept(torch.tensor([1, 2, 0]), logits) == (2, 3)  # third wrong: replaced by 3
    assert llm.greedy_accept(torch.tensor([1, 0, 3]), logits) == (1, 2)  # a later match after a miss does not count
    assert llm.greedy_accept(torch.tensor([], dtype=torch.long), logits[:1]) == (0, 1)  # k = 0: plain greedy step


def loop_greedy_accept(draft: list[int], logits: torch.Tensor) -> tuple[int, int]:
    for i, x in enumerate(draft):
        best = int(logits[i].argmax())
        if x != best:
            return i, best
    return len(draft), int(logits[len(draft)].argmax())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_greedy_accept_equals_a_plain_loop(k, vocab, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(k + 1, vocab, generator=g)
    best = logits.argmax(-1)
    draft = torch.where(torch.rand(k, generator=g) < 0.7, best[:k], torch.randint(0, vocab, (k,), generator=g))
    assert llm.greedy_accept(draft, logits) == loop_greedy_accept(draft.tolist(), logits)


# --- speculative sampling: a Markov target and draft over 3 tokens ------------------------------

V, K, L = 3, 2, 3  # vocabulary, draft tokens per round, length of the output stream compared


def markov_tables(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """p[s], q[s]: the target's and the draft's next-token distribution after last token s (float64)."""
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(1.5 * torch.randn(V, V, generator=g, dtype=torch.float64), -1)
    q = torch.softmax(1.5 * torch.randn(V, V, generator=g, dtype=torch.float64), -1)
    return p, q


def target_joint(p: torch.Tensor, start: int = 0) -> dict[tuple[int, ...], float]:
    """The reference: P(y_1..y_L) = prod_j p(y_j | y_{j-1}), the target's own sampling."""
    out = {}
    for ys in itertools.product(range(V), repeat=L):
        prob, s = 1.0, start
        for y in ys:
            prob, s = prob * float(p[s, y]), y
        out[ys] = prob
    return out


def round_outcomes(p, q, s: int, residual) -> list[tuple[tuple[int, ...], float]]:
    """Every outcome of one round from last token s with its exact probability: the draft's K draws,
    then keep x_i with min(1, p/q), at the first rejection draw from ``residual(p_i, q_i)``, else the bonus."""
    outcomes = []
    for xs in itertools.product(range(V), repeat=K):
        prev = [s, *xs]
        prob_draft = math.prod(float(q[prev[i], xs[i]]) for i in range(K))
        reach = prob_draft  # probability of drawing xs and keeping x_1..x_i
        for i in range(K):
            keep = min(1.0, float(p[prev[i], xs[i]]) / float(q[prev[i], xs[i]]))
            res = residual(p[prev[i]], q[prev[i]])
            for t in range(V):
                outcomes.append(((*xs[:i], t), reach * (1 - keep) * float(res[t])))
            reach *= keep
        outcomes += [((*xs, t), reach * float(p[prev[K], t])) for t in range(V)]
    return outcomes


def stream_distribution(p, q, residual, s: int = 0, length: int = L) -> dict[tuple[int, ...], float]:
    """Exact distribution of the first ``length`` tokens that speculative decoding emits from s."""
    dist: dict[tuple[int, ...], float] = {}
    for emitted, prob in round_outcomes(p, q, s, residual):
        if len(emitted) >= length:
            dist[emitted[:length]] = dist.get(emitted[:length], 0.0) + prob
        else:
            for rest, prob_rest in stream_distribution(p, q, residual, emitted[-1], length - len(emitted)).items():
                dist[emitted + rest] = dist.get(emitted + rest, 0.0) + prob * prob_rest
    return dist


def test_residual_distribution_by_hand():
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.5, 0.3])
    assert torch.allclose(llm.residual_distribution(p, q), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.1, 0.8])
    assert torch.allclose(llm.residual_distribution(p, q), torch.tensor([0.4, 0.2, 0.0], dtype=torch.float64) / 0.6)
    assert torch.equal(llm.residual_distribution(p, p), p.double())  # nothing left: p itself (never drawn)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_output_stream_is_distributed_exactly_as_the_targets_own_samples(seed):
    p, q = markov_tables(seed)
    exact = stream_distribution(p, q, llm.residual_distribution)
    reference = target_joint(p)
    assert sum(exact.values()) == pytest.approx(1.0, abs=1e-12)
    for ys, prob in reference.items():
        assert exact[ys] == pytest.approx(prob, abs=1e-12), ys
    # the enumeration can tell a plausible mistake apart: after a rejection, draw from p, not the residual
    wrong = stream_distribution(p, q, lambda pi, qi: pi)
    assert max(abs(wrong[ys] - reference[ys]) for ys in reference) > 1e-3


def sample_stream(p, q, g: torch.Generator, s: int = 0) -> tuple[int, ...]:
    """L tokens from speculative decoding with speculative_accept, the draft sampling from q."""
    out: list[int] = []
    while len(out) < L:
        xs, prev = [], s
        for _ in range(K):
            prev = int(torch.multinomial(q[prev], 1, generator=g))
            xs.append(prev)
        prevs = [s, *xs]
        n, t = llm.speculative_accept(torch.tensor(xs), q[prevs[:K]], p[prevs], g)
        out += [*xs[:n], t]
        s = out[-1]
    return tuple(out[:L])


def test_speculative_accept_samples_pass_a_chi_square_test_against_the_target():
    p, q = markov_tables(0)
    reference = target_joint(p)
    N = 3000
    g = torch.Generator().manual_seed(1234)
    counts = {ys: 0 for ys in reference}
    for _ in range(N):
        counts[sample_stream(p, q, g)] += 1
    df = len(reference) - 1
    bound = sstats.chi2.ppf(1 - 1e-6, df)  # a correct sampler exceeds it once in a million seeds
    chi2 = sum((counts[ys] - N * pr) ** 2 / (N * pr) for ys, pr in reference.items())
    assert chi2 < bound, (chi2, bound)
    # the test's power: drawing from p after a rejection would give an expected statistic of
    # df + N * sum((wrong - p)^2 / p), far past the bound
    wrong = stream_distribution(p, q, lambda pi, qi: pi)
    expected_wrong = df + N * sum((wrong[ys] - pr) ** 2 / pr for ys, pr in reference.items())
    assert expected_wrong > 3 * bound, (expected_wrong, bound)


def test_speculative_accept_keeps_everything_when_draft_equals_target():
    p, _ = markov_tables(0)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        n, t = llm.speculative_accept(torch.tensor([1, 2]), p[[0, 1]], p[[0, 1, 2]], g)
        assert n == 2 and 0 <= t < V


def test_speculative_accept_rejects_a_token_the_target_never_gives():
    p = torch.tensor([[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)
    q = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        n, t = llm.speculative_accept(torch.tensor([0]), q, p, g)
        assert n == 0 and t in (1, 2)  # residual: p - q clipped = [0, .5, .5]


def test_expected_tokens_per_round_matches_a_sum_of_probabilities():
    # E[tokens] = sum_{j=0}^{k} alpha^j (the bonus or correction, plus each kept token)
    for alpha, k in [(0.0, 3), (0.5, 1), (0.8, 4), (0.99, 8)]:
        assert llm.expected_tokens_per_round(alpha, k) == pytest.approx(sum(alpha**j for j in range(k + 1)))
    assert llm.expected_tokens_per_round(1.0, 4) == 5.0


# --- speculative_generate: the target's own greedy output, token for token ----------------------

def random_lm(seed: int, vocab: int = 16, n_layer: int = 2, d_model: int = 32, n_head: int = 2, block_size: int = 48):
    """A random TinyLM that does not just repeat its input: unit-variance embeddings, weights of
    variance 1 / fan_in, and an untied head, so its greedy text varies and its distributions are peaked."""
    model = models.tiny_lm(models.TinyLMConfig(n_layer=n_layer, n_head=n_head, d_model=d_model,
                                               block_size=block_size, vocab_size=vocab), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) / (1.0 if "emb" in name else p.shape[1] ** 0.5))
        model.head.weight = nn.Parameter(0.5 * torch.randn(vocab, d_model, generator=g))  # untied
    return model.eval()


def noisy_copy(model, scale: float, seed: int):
    """The model with Gaussian noise on every weight: a draft that agrees with it often, not always."""
    copy = models.copy_model(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(scale * p.std() * torch.randn(p.shape, generator=g))
    return copy


@pytest.fixture(scope="module")
def trained():
    return models.load_tiny_lm("main"), models.load_tiny_lm("draft")


def test_speculative_generate_gives_the_targets_greedy_output_on_the_trained_models(trained):
    target, draft = trained
    test_ids = text.load_text_split().test
    rates = []
    for start in (0, 7000, 21000, 33000):
        prompt = test_ids[start:start + 24]
        reference = text.generate(target, prompt, 48)
        for k in (1, 3, 4, 8):
            ids, stats = llm.speculative_generate(target, draft, prompt, 48, k=k)
            assert torch.equal(ids, reference), (start, k)
            rates.append(stats.acceptance_rate)
    assert min(rates) < 1.0  # some prompts make the draft wrong: rejections and rollbacks were exercised


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speculative_generate_gives_the_targets_greedy_output_on_random_models(seed):
    target = random_lm(seed)
    drafts = {"unrelated": random_lm(seed + 100, n_layer=1, d_model=16, n_head=1), "noisy copy": noisy_copy(target, 0.3, seed)}
    g = torch.Generator().manual_seed(seed)
    for length in (1, 2, 7):
        prompt = torch.randint(0, 16, (length,), generator=g)
        reference = text.generate(target, prompt, 30)
        for name, draft in drafts.items():
            for k in (1, 2, 4, 6):
                ids, stats = llm.speculative_generate(target, draft, prompt, 30, k=k)
                assert torch.equal(ids, reference), (length, name, k)
                assert stats.accepted < stats.drafted  # rejections (and rollbacks) happened
                if name == "noisy copy":
                    assert stats.accepted > 0  # and guesses were kept


def count_passes(model) -> list[int]:
    """Forward passes of ``model``, counted by a hook on its final LayerNorm (run once per pass)."""
    seen = [0]
    model.ln_f.register_forward_hook(lambda *_: seen.__setitem__(0, seen[0] + 1))
    return seen


@pytest.mark.parametrize("prompt_len", [1, 5])
def test_the_stats_count_what_happened(prompt_len):
    target, draft = random_lm(3), random_lm(4, n_layer=1, d_model=16, n_head=1)
    target_passes, draft_passes = count_passes(target), count_passes(draft)
    prompt = torch.arange(prompt_len) % 16
    ids, stats = llm.speculative_generate(target, draft, prompt, 25, k=3)
    prefill = int(prompt_len > 1)
    assert stats.generated == 25 == ids.numel() - prompt_len
    assert (stats.target_calls, stats.draft_calls) == (target_passes[0], draft_passes[0])
    rounds = stats.target_calls - prefill
    assert stats.accepted + rounds == 25  # each round keeps some guesses and adds one token of the target's
    assert stats.draft_calls - prefill == stats.drafted  # one draft call per guess
    assert 0 <= stats.accepted <= stats.drafted <= 3 * rounds
    assert stats.acceptance_rate == stats.accepted / stats.drafted
    assert stats.target_calls_per_token == stats.target_calls / 25


def test_a_draft_equal_to_the_target_is_always_accepted():
    target = random_lm(5)
    ids, stats = llm.speculative_generate(target, models.copy_model(target), torch.tensor([1, 2, 3]), 40, k=4)
    assert torch.equal(ids, text.generate(target, torch.tensor([1, 2, 3]), 40))
    assert stats.acceptance_rate == 1.0
    assert stats.target_calls == 1 + math.ceil(40 / 5)  # prefill, then 5 tokens per call
    # sampling: p / q is 1 up to float error, so (almost) every guess is kept
    _, stats = llm.speculative_generate(target, models.copy_model(target), torch.tensor([1, 2, 3]), 40, k=4,
                                        temperature=1.0, seed=3)
    assert stats.acceptance_rate >= 0.99


def test_the_longest_generation_fits_the_context_and_n_zero_gives_the_prompt():
    target, draft = random_lm(6, block_size=20), random_lm(7, n_layer=1, d_model=16, n_head=1, block_size=20)
    prompt = torch.tensor([3, 1, 4, 1, 5])
    ids, _ = llm.speculative_generate(target, draft, prompt, 15, k=8)  # positions up to block_size - 1
    assert torch.equal(ids, text.generate(target, prompt, 15))
    ids, stats = llm.speculative_generate(target, draft, prompt, 0)
    assert torch.equal(ids, prompt) and stats.generated == 0 and math.isnan(stats.target_calls_per_token)


def test_speculative_generate_leaves_both_models_as_they_were():
    target, draft = random_lm(8).train(), random_lm(9, n_layer=1, d_model=16, n_head=1)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (target, draft)]
    llm.speculative_generate(target, draft, torch.tensor([1, 2]), 10, temperature=0.7)
    assert target.training and not draft.training
    for m, state in zip((target, draft), before):
        assert all(torch.equal(m.state_dict()[k], v) for k, v in state.items())


def test_sampling_is_seeded():
    target, draft = random_lm(10), random_lm(11, n_layer=1, d_model=16, n_head=1)
    a, _ = llm.speculative_generate(target, draft, torch.tensor([1]), 20, temperature=1.0, seed=5)
    b, _ = llm.speculative_generate(target, draft, torch.tensor([1]), 20, temperature=1.0, seed=5)
    c, _ = llm.speculative_generate(target, draft, torch.tensor([1]), 20, temperature=1.0, seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampled_tokens_follow_the_targets_distribution():
    """Two sampled tokens over a vocabulary of 3, over 1000 seeds: chi-square against the target's own
    joint p(y1 | prompt) p(y2 | prompt, y1), computed from its logits."""
    V4 = 3
    target = random_lm(12, vocab=V4, n_layer=1, d_model=16, n_head=1)
    draft = random_lm(13, vocab=V4, n_layer=1, d_model=8, n_head=1)
    prompt = torch.tensor([0, 1])
    with torch.no_grad():
        p1 = torch.softmax(target(prompt[None])[0, -1].double(), -1)
        joint = {(a, b): float(p1[a]) * float(torch.softmax(target(torch.tensor([[0, 1, a]]))[0, -1].double(), -1)[b])
                 for a in range(V4) for b in range(V4)}
    N = 1000
    counts = dict.fromkeys(joint, 0)
    for seed in range(N):
        ids, _ = llm.speculative_generate(target, draft, prompt, 2, k=2, temperature=1.0, seed=seed)
        counts[tuple(ids[2:].tolist())] += 1
    chi2 = sum((counts[y] - N * pr) ** 2 / (N * pr) for y, pr in joint.items())
    assert chi2 < sstats.chi2.ppf(1 - 1e-6, len(joint) - 1), chi2
