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

from compresskit import llm
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
