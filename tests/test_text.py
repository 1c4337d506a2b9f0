"""compresskit.text: byte encoding, the split by topic families, batches, perplexity, generation."""

import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

from compresskit import models, text

N = 64  # the n-gram length the split promises


def grams(data: bytes, n: int = N) -> set[bytes]:
    return {data[i:i + n] for i in range(len(data) - n + 1)}


def as_bytes(ids: torch.Tensor) -> bytes:
    return bytes(ids.to(torch.uint8).tolist())


class Bigram(nn.Module):
    """logits[b, t] = log p(next | idx[b, t]) from a fixed table: the NLL is known in closed form."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_p", table.log_softmax(dim=-1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.log_p[idx]  # (B, T, 256)


# --- encoding ----------------------------------------------------------------------------------

def test_encode_is_utf8_bytes_and_decode_inverts_it():
    s = "déjà vu: if x:\n\tpass"
    ids = text.encode(s)
    assert ids.dtype == torch.int64 and ids.tolist() == list(s.encode("utf-8"))
    assert len(ids) == len(s) + 2  # é and à are two bytes each
    assert text.decode(ids) == s
    assert text.encode(b"\x00\xff").tolist() == [0, 255]
    assert text.decode(torch.tensor([104, 0xC3])) == "h\ufffd"  # a cut UTF-8 sequence is replaced


@pytest.mark.parametrize("fn, args, error, words", [
    (text.encode, ("",), ValueError, "`text` must not be empty"),
    (text.encode, (5,), TypeError, "`text` must be a str or bytes"),
    (text.decode, (torch.tensor([1.0, 2.0]),), TypeError, "dtype torch.float32"),
    (text.decode, (torch.tensor([True]),), TypeError, "dtype torch.bool"),
    (text.decode, (torch.tensor([65, 256]),), ValueError, "in [0, 255]; got 256"),
    (text.decode, (torch.tensor([-1]),), ValueError, "got -1"),
    (text.decode, (torch.tensor([[65]]),), ValueError, "1 dimension"),
    (text.decode, (torch.tensor([], dtype=torch.int64),), ValueError, "at least 1"),
    (text.decode, ([65, 66],), TypeError, "`ids` must be Tensor"),
])
def test_bad_input_encoding(fn, args, error, words):
    with pytest.raises(error, match=None) as info:
        fn(*args)
    assert words in str(info.value)


# --- the split ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def split():
    return text.load_text_split()


@pytest.fixture(scope="module")
def topics():
    from pydoc_data.topics import topics
    return {k: v.encode() for k, v in topics.items()}


def test_split_covers_every_topic_once_with_sensible_sizes(split, topics):
    names = [split.train_names, split.val_names, split.test_names]
    assert sorted(sum(map(list, names), [])) == sorted(topics)
    total = sum(len(v) for v in topics.values())
    sizes = [len(split.train), len(split.val), len(split.test)]
    assert sizes[0] > 0.7 * total and all(0.08 * total < s < 0.15 * total for s in sizes[1:])
    # Each part is its topics joined by a blank line, in order.
    assert as_bytes(split.test) == b"\n\n".join(topics[n] for n in split.test_names)


def test_no_64_byte_run_of_held_out_text_occurs_in_training(split):
    train = grams(as_bytes(split.train))
    for part in (split.val, split.test):
        shared = grams(as_bytes(part)) & train
        assert not shared, f"{len(shared)} shared 64-grams, e.g. {sorted(shared)[0]!r}"
    assert not grams(as_bytes(split.val)) & grams(as_bytes(split.test))


def test_topics_that_hold_each_other_stay_in_one_part(split, topics):
    part = {n: p for p, names in (("train", split.train_names), ("val", split.val_names),
                                  ("test", split.test_names)) for n in names}
    # Whole-text containment, checked directly (e.g. "else" inside "if").
    pairs = [(a, b) for a in topics for b in topics if a != b and topics[a] in topics[b]]
    assert pairs
    assert all(part[a] == part[b] for a, b in pairs)
    # Topics quoted in long ones (paragraphs, not the whole text): the examples.
    for big, small in [("compound", ["if", "for", "while", "try", "with", "function", "class"]),
                       ("specialnames", ["customization", "attribute-access", "callable-types",
                                         "numeric-types", "sequence-types", "context-managers"])]:
        assert {part[s] for s in small if s in topics} == {part[big]}
    # Any two topics in different parts share no 64-byte run (pairwise, topic by topic).
    per_topic = {n: grams(t) for n, t in topics.items()}
    for a in topics:
        for b in topics:
            if part[a] != part[b] and a < b:
                assert not per_topic[a] & per_topic[b], (a, b)


def test_split_is_deterministic_and_fresh(split):
    again = text.load_text_split()
    assert torch.equal(split.train, again.train) and split.test_names == again.test_names
    again.train[0] = 0  # a caller writing into its copy does not change the next one
    assert torch.equal(text.load_text_split().train, split.train)


def test_families_and_assignment_by_hand():
    texts = {"a": b"x" * 70, "b": b"y" * 10 + b"x" * 64, "c": b"zzz", "d": b"qq zzz qq" + b"-" * 27, "e": b"w" * 30}
    assert text.topic_families(texts) == [["a", "b"], ["c", "d"], ["e"]]  # b shares 64 x's; c is inside d
    sizes = {k: len(v) for k, v in texts.items()}  # 70 + 74, 3 + 36, 30: 213 bytes
    assert hashlib.sha256(b"c").hexdigest() < hashlib.sha256(b"e").hexdigest()  # c's family is dealt first
    parts = text.assign_families(text.topic_families(texts), sizes, val=0.2, test=0.15)
    # a+b: 144 bytes, over 20% of 213: train. c+d: test is empty -> test (39 bytes, now over 15%).
    # e: test is full -> val.
    assert parts == {"a": "train", "b": "train", "c": "test", "d": "test", "e": "val"}


def test_shifted_text_is_separate_and_unlike_the_topics(split):
    shifted = text.load_shifted_text()
    assert len(shifted.train) > 50_000 and len(shifted.test) > 10_000 and len(shifted.val) == 0
    assert not set(shifted.train_names) & set(shifted.test_names)
    assert torch.equal(shifted.test, text.load_shifted_text().test)  # deterministic on one Python
    assert "Return" in text.decode(shifted.train) and "difflib" not in shifted.train_names
    # Different text: most of its 64-byte runs are not in the reference manual.
    test_grams = grams(as_bytes(shifted.test))
    assert len(test_grams & grams(as_bytes(split.train))) < 0.05 * len(test_grams)


# --- batches ---------------------------------------------------------------------------------

def test_batches_are_shifted_windows_and_seeded():
    ids = torch.arange(200)
    first = list(text.batches(ids, 4, 16, seed=3, steps=3))
    assert len(first) == 3
    for x, y in first:
        assert x.shape == y.shape == (4, 16)
        assert torch.equal(y, x + 1)  # next byte
        assert torch.equal(x, x[:, :1] + torch.arange(16))  # contiguous windows of ids
        assert int(y.max()) <= 199
    again = list(text.batches(ids, 4, 16, seed=3, steps=3))
    other = next(text.batches(ids, 4, 16, seed=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0])


def test_batches_reach_both_ends():
    ids = torch.arange(20)
    starts = torch.cat([x[:, 0] for x, _ in text.batches(ids, 64, 10, seed=0, steps=10)])
    assert int(starts.min()) == 0 and int(starts.max()) == 9  # 20 ids: windows of 10 + 1 start at 0..9


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((torch.arange(10), 2, 10), {}, ValueError, "`context` must be below len(ids)=10; got 10"),
    ((torch.arange(10), 2, 0), {}, ValueError, "`context` must be an integer in [1, inf]; got 0"),
    ((torch.arange(10), 0, 3), {}, ValueError, "`batch_size`"),
    ((torch.arange(10.0), 2, 3), {}, TypeError, "`ids` must be an integer tensor"),
    ((torch.arange(10), 2, 3), {"seed": -1}, ValueError, "`seed`"),
    ((torch.arange(10), 2, 3), {"steps": 1.5}, TypeError, "`steps`"),
])
def test_bad_input_batches(args, kwargs, error, words):
    with pytest.raises(error) as info:
        text.batches(*args, **kwargs)  # raised at the call, not at the first next()
    assert words in str(info.value)


# --- perplexity ------------------------------------------------------------------------------

def test_uniform_model_has_perplexity_256():
    model = Bigram(torch.zeros(256, 256))
    ids = text.encode("any text at all, " * 20)
    assert text.perplexity(model, ids, 7) == pytest.approx(256.0, rel=1e-12)
    assert text.bits_per_byte(model, ids, 7) == pytest.approx(8.0, rel=1e-12)


@pytest.mark.parametrize("context, batch_size", [(1, 1), (5, 2), (16, 32), (333, 4)])
def test_bigram_perplexity_equals_the_closed_form(context, batch_size):
    """Every byte after the first is predicted once, whatever the windows: numpy computes the same."""
    table = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    ids = text.encode("The quick brown fox jumps over the lazy dog. " * 7 + "é")
    model = Bigram(table)
    log_p = np.log(np.exp(table.double().numpy()) / np.exp(table.double().numpy()).sum(1, keepdims=True))
    a = ids.numpy()
    nll = -log_p[a[:-1], a[1:]].mean()
    # The model's log-probabilities are float32: agreement to 1e-6, while one byte missed or counted
    # twice would move the mean by about 1/300.
    assert text.perplexity(model, ids, context, batch_size=batch_size) == pytest.approx(math.exp(nll), rel=1e-6)
    assert text.bits_per_byte(model, ids, context, batch_size=batch_size) == pytest.approx(nll / math.log(2), rel=1e-6)


def test_transformer_perplexity_equals_window_by_window_loop():
    """Non-overlapping windows of `context`, computed slowly: one window at a time with log_softmax."""
    model = models.TinyLM(models.TinyLMConfig(n_layer=1, n_head=2, d_model=16, block_size=12), seed=1)
    ids = text.encode("while True: pass\n" * 5)  # 85 bytes: 84 predictions, windows of 12, none short
    ids2 = ids[:-3]  # 81 bytes: the last window holds 8
    for x in (ids, ids2):
        total, count = 0.0, 0
        for s in range(0, len(x) - 1, 12):
            w = x[s:s + 13]
            with torch.no_grad():
                logp = torch.log_softmax(model(w[None, :-1])[0].double(), dim=-1)
            total -= float(logp[torch.arange(len(w) - 1), w[1:]].sum())
            count += len(w) - 1
        assert count == len(x) - 1
        assert text.perplexity(model, x, 12, batch_size=3) == pytest.approx(math.exp(total / count), rel=1e-6)


def test_perplexity_restores_mode_and_takes_a_pruned_model():
    from torch.nn.utils import prune

    model = models.TinyLM(models.TinyLMConfig(n_layer=1, n_head=2, d_model=16, block_size=16), seed=0)
    ids = text.encode("def f(x): return x\n" * 3)
    dense = text.perplexity(model, ids, 16)
    model.train()
    prune.l1_unstructured(model.blocks[0].mlp.fc1, "weight", amount=0.5)
    pruned = text.perplexity(model, ids, 16)
    assert model.training and prune.is_pruned(model)
    assert math.isfinite(pruned) and pruned != dense


@pytest.mark.parametrize("fn", [text.perplexity, text.bits_per_byte])
@pytest.mark.parametrize("args, error, words", [
    (("model", torch.arange(10), 4), TypeError, "`model` must be a torch.nn.Module"),
    ((None, torch.arange(1), 4), ValueError, "`ids` must hold at least 2 ids; got 1"),
    ((None, torch.arange(10), 0), ValueError, "`context` must be an integer in [1, 8]; got 0"),
    ((None, torch.arange(10), 9), ValueError, "`context` must be an integer in [1, 8]; got 9"),
    ((None, torch.tensor([1, 300]), 4), ValueError, "`ids` must hold byte ids in [0, 255]; got 300"),
    ((None, torch.ones(10), 4), TypeError, "`ids` must be an integer tensor of byte ids; got dtype torch.float32"),
])
def test_bad_input_perplexity(fn, args, error, words):
    model = models.TinyLM(models.TinyLMConfig(n_layer=1, n_head=1, d_model=8, block_size=8))
    args = tuple(model if a is None else a for a in args)
    with pytest.raises(error) as info:
        fn(*args)
    assert words in str(info.value)


# --- generation ------------------------------------------------------------------------------

def test_greedy_generation_follows_the_argmax_chain():
    table = torch.full((256, 256), -5.0)
    for a, b in zip(b"abcdefgh", b"bcdefgha"):
        table[a, b] = 5.0  # a -> b -> c ... -> h -> a
    out = text.generate(Bigram(table), "a", 10, context=4)
    assert text.decode(out) == "abcdefghabc"


def test_sampling_is_seeded_and_generation_crops_to_the_block():
    model = models.TinyLM(models.TinyLMConfig(n_layer=1, n_head=2, d_model=16, block_size=8), seed=0)
    a = text.generate(model, "hello", 20, temperature=1.0, seed=5)
    b = text.generate(model, "hello", 20, temperature=1.0, seed=5)
    c = text.generate(model, "hello", 20, temperature=1.0, seed=6)
    assert len(a) == 25 and torch.equal(a, b) and not torch.equal(a, c)
    assert text.decode(a).startswith("hello")
    g = text.generate(model, text.encode("hello"), 20)
    assert torch.equal(g, text.generate(model, "hello", 20))  # greedy: no randomness
    # Greedy step by step, the model's own argmax over the last 8 bytes.
    ids = text.encode("hello")
    with torch.no_grad():
        for _ in range(20):
            ids = torch.cat([ids, model(ids[None, -8:])[0, -1].argmax().reshape(1)])
    assert torch.equal(g, ids)


@pytest.mark.parametrize("args, kwargs, error, words", [
    (("", 3), {}, ValueError, "`text` must not be empty"),
    (("a", -1), {}, ValueError, "`n` must be an integer in [0, inf]; got -1"),
    (("a", 3), {"temperature": -0.5}, ValueError, "`temperature`"),
    (("a", 3), {"context": 0}, ValueError, "`context` must be an integer in [1, 8]; got 0"),
    ((torch.tensor([1, 999]), 3), {}, ValueError, "`prompt` must hold byte ids in [0, 255]; got 999"),
    ((torch.tensor([1.0]), 3), {}, TypeError, "`prompt` must be an integer tensor"),
])
def test_bad_input_generate(args, kwargs, error, words):
    model = models.TinyLM(models.TinyLMConfig(n_layer=1, n_head=1, d_model=8, block_size=8))
    with pytest.raises(error) as info:
        text.generate(model, *args, **kwargs)
    assert words in str(info.value)


def test_generate_needs_a_context_for_a_model_without_config():
    with pytest.raises(ValueError, match="`context` must be given"):
        text.generate(Bigram(torch.zeros(256, 256)), "a", 2)
