"""Text for the course's language model, all of it shipped with Python: bytes in, bytes out.

* **Encoding**: UTF-8 bytes, a vocabulary of 256 (no tokenizer to download). A byte-level
  model's bits per byte equal bits per character on ASCII text; the topics below are over
  99.9% ASCII.
* **The main text**: ``pydoc_data.topics``, the reference-manual topics that ``help("if")``
  prints (79 topics, about 466,000 bytes in CPython 3.11). It is split train / validation /
  test *by topic*, and topics that share text travel together: many topics quote others
  (``compound`` holds the ``if``, ``for``, ``while``, ``try``, ``with``, function and class
  sections; ``specialnames`` holds ``customization``, ``attribute-access``, ...), so a naive
  split by topic puts test text in the training set. The rule (:func:`topic_families`): two
  topics are in one *family* when one contains the other or they share any run of
  ``FAMILY_NGRAM`` = 64 bytes, transitively (union-find). Families are then dealt to the
  splits by :func:`assign_families`, a fixed rule on SHA-256 of their names (no RNG).
* **A shifted text** for fine-tuning (LoRA): the docstrings (``inspect.getdoc``) of a fixed
  list of standard-library modules and their public classes and functions, split by module.
  Its bytes depend on the Python version (docstrings change between releases), so tests check
  its properties, not its bytes. A Python run with ``-OO`` has no docstrings: refused clearly.
* **Measurement**: :func:`perplexity` and :func:`bits_per_byte` over *non-overlapping* windows
  of ``context`` bytes (every byte but the first is predicted exactly once, from the bytes
  before it in its window, so bytes early in a window see less context than with a sliding
  window: the numbers are slightly pessimistic and fully deterministic); :func:`generate`,
  greedy unless a temperature is given (then sampled from a seeded generator).

Perplexity is exp of the mean negative log-likelihood per byte, bits per byte its log2:
``bpb = NLL / ln 2``, ``ppl = 2 ** bpb`` (Shannon's cross-entropy rate; Jelinek et al. 1977).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import math
import numbers
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from compresskit._validation import check_choice, check_int, check_module, check_real, check_seed, check_type

__all__ = [
    "FAMILY_NGRAM",
    "SHIFTED_TEST_MODULES",
    "SHIFTED_TRAIN_MODULES",
    "TextSplit",
    "VOCAB_SIZE",
    "assign_families",
    "batches",
    "bits_per_byte",
    "decode",
    "encode",
    "generate",
    "load_shifted_text",
    "load_text_split",
    "perplexity",
    "topic_families",
]

VOCAB_SIZE = 256  # one token per byte value
FAMILY_NGRAM = 64  # topics sharing a run of this many bytes belong to one family
SEPARATOR = b"\n\n"  # between topics (and between modules) when they are joined into one text

SHIFTED_TRAIN_MODULES = (
    "abc", "argparse", "calendar", "collections", "contextlib", "csv", "dataclasses", "decimal",
    "enum", "fractions", "functools", "inspect", "itertools", "math", "operator", "os", "pathlib",
    "random", "re", "shutil", "string", "tempfile", "typing",
)
SHIFTED_TEST_MODULES = ("bisect", "difflib", "heapq", "json", "statistics", "textwrap")


# --- encoding ---------------------------------------------------------------------------------

def encode(text: str | bytes) -> torch.Tensor:
    """UTF-8 bytes of ``text`` as an int64 tensor of ids in [0, 256), shape (N,)."""
    check_type("text", text, (str, bytes, bytearray), "a str or bytes")
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if len(data) == 0:
        raise ValueError("`text` must not be empty; got an empty string")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)


def check_ids(name: str, ids: object, *, min_len: int = 1) -> torch.Tensor:
    """A 1-D integer tensor of byte ids in [0, 256) with at least ``min_len`` entries, as int64."""
    check_type(name, ids, torch.Tensor)
    if ids.dtype == torch.bool or ids.is_floating_point() or ids.is_complex():
        raise TypeError(f"`{name}` must be an integer tensor of byte ids; got dtype {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"`{name}` must have 1 dimension; got shape {tuple(ids.shape)}")
    if ids.numel() < min_len:
        raise ValueError(f"`{name}` must hold at least {min_len} ids; got {ids.numel()}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= VOCAB_SIZE:
        bad = low if low < 0 else high
        raise ValueError(f"`{name}` must hold byte ids in [0, {VOCAB_SIZE - 1}]; got {bad}")
    return ids.to(torch.int64)


def decode(ids: torch.Tensor, errors: str = "replace") -> str:
    """Byte ids back to text; bytes that are not valid UTF-8 become U+FFFD (``errors="replace"``)."""
    ids = check_ids("ids", ids)
    check_choice("errors", errors, ["replace", "strict", "ignore", "backslashreplace"])
    return bytes(ids.to(torch.uint8).tolist()).decode("utf-8", errors=errors)


# --- the topics, in families, split ------------------------------------------------------------

def _topics() -> dict[str, bytes]:
    from pydoc_data.topics import topics

    return {name: topics[name].encode("utf-8") for name in sorted(topics)}


def topic_families(texts: dict[str, bytes], n: int = FAMILY_NGRAM) -> list[list[str]]:
    """Group topics that share text: one contains the other, or they share any ``n``-byte run.

    Union-find over a table from each ``n``-gram to the first topic that has it, so the cost
    is linear in the text. Returns families (sorted lists of names), sorted by first name.
    """
    n = check_int("n", n, 1)
    parent = {name: name for name in texts}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    owner: dict[bytes, str] = {}
    for name, data in texts.items():
        for i in range(len(data) - n + 1):
            other = owner.setdefault(data[i:i + n], name)
            if other != name:
                union(name, other)
    short = [name for name, data in texts.items() if len(data) < n]  # containment the n-grams miss
    for a in short:
        for b, data in texts.items():
            if a != b and texts[a] in data:
                union(a, b)
    families: dict[str, list[str]] = {}
    for name in sorted(texts):
        families.setdefault(find(name), []).append(name)
    return sorted(families.values())


def assign_families(
    families: list[list[str]], sizes: dict[str, int], val: float = 0.1, test: float = 0.1
) -> dict[str, str]:
    """Deal whole families to "train" / "val" / "test"; returns topic -> part.

    The rule, fixed and platform-independent: families are visited in the order of the SHA-256
    of their first name; a family larger than ``test`` of all bytes goes to train; otherwise it
    goes to test while test holds under ``test`` of the bytes, then to val while val holds under
    ``val``, then to train.
    """
    val, test = check_real("val", val, 0.0, 0.5), check_real("test", test, 0.0, 0.5)
    total = sum(sizes.values())
    held = {"val": 0, "test": 0}
    part_of: dict[str, str] = {}
    for family in sorted(families, key=lambda f: hashlib.sha256(f[0].encode()).hexdigest()):
        size = sum(sizes[name] for name in family)
        if size > max(val, test) * total:
            part = "train"
        elif held["test"] < test * total:
            part = "test"
        elif held["val"] < val * total:
            part = "val"
        else:
            part = "train"
        held[part] = held.get(part, 0) + size
        part_of.update({name: part for name in family})
    return part_of


@dataclass(frozen=True)
class TextSplit:
    """Byte ids (int64, shape (N,)) of each part and the names of the topics (or modules) in it."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    train_names: tuple[str, ...]
    val_names: tuple[str, ...]
    test_names: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _topic_parts() -> dict[str, tuple[str, ...]]:
    texts = _topics()
    part_of = assign_families(topic_families(texts), {k: len(v) for k, v in texts.items()})
    return {part: tuple(n for n in texts if part_of[n] == part) for part in ("train", "val", "test")}


def _joined(texts: dict[str, bytes], names: tuple[str, ...]) -> torch.Tensor:
    return encode(SEPARATOR.join(texts[n] for n in names)) if names else torch.zeros(0, dtype=torch.int64)


def load_text_split() -> TextSplit:
    """``pydoc_data.topics`` split by topic families (about 80 / 10 / 10 % of the bytes).

    Each part is its topics' UTF-8 bytes in alphabetical order, joined by a blank line. Fresh
    tensors on every call (a chapter may write into them without changing another's).
    """
    texts = _topics()
    parts = _topic_parts()
    return TextSplit(*(_joined(texts, parts[p]) for p in ("train", "val", "test")),
                     *(parts[p] for p in ("train", "val", "test")))


def _module_docs(name: str) -> bytes:
    """The module's docstring, then ``name\\ndocstring`` of each public class and function it defines."""
    module = importlib.import_module(name)
    parts = [inspect.getdoc(module) or ""]
    public = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for attr in sorted(public):
        obj = getattr(module, attr, None)
        if (inspect.isclass(obj) or inspect.isroutine(obj)) and getattr(obj, "__module__", None) in (name, "_" + name):
            doc = inspect.getdoc(obj)
            if doc:
                parts.append(f"{attr}\n{doc}")
    return "\n\n".join(p for p in parts if p).encode("utf-8")


def load_shifted_text() -> TextSplit:
    """Docstrings of standard-library modules, a text unlike the reference manual, split by module.

    Train: :data:`SHIFTED_TRAIN_MODULES`; test: :data:`SHIFTED_TEST_MODULES`; ``val`` is empty.
    The bytes depend on the Python version. Raises RuntimeError under ``python -OO`` (no docstrings).
    """
    texts = {m: _module_docs(m) for m in SHIFTED_TRAIN_MODULES + SHIFTED_TEST_MODULES}
    if sum(map(len, texts.values())) < 10_000:
        raise RuntimeError("the standard library has no docstrings here (was Python run with -OO?)")
    return TextSplit(_joined(texts, SHIFTED_TRAIN_MODULES), torch.zeros(0, dtype=torch.int64),
                     _joined(texts, SHIFTED_TEST_MODULES), SHIFTED_TRAIN_MODULES, (), SHIFTED_TEST_MODULES)


# --- batches, perplexity, generation ------------------------------------------------------------

def batches(
    ids: torch.Tensor, batch_size: int, context: int, *, seed: int = 0, steps: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random windows: ``(x, y)`` of shape (batch_size, context), ``y`` is ``x`` shifted by one byte.

    Window starts are drawn uniformly from a private ``torch.Generator`` seeded with ``seed``, so
    the same arguments give the same batches. Endless unless ``steps`` is given.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    context = check_int("context", context, 1)
    ids = check_ids("ids", ids, min_len=2)
    if ids.numel() < context + 1:
        raise ValueError(f"`context` must be below len(ids)={ids.numel()}; got {context}")
    seed = check_seed("seed", seed)
    if steps is not None:
        steps = check_int("steps", steps, 0)
    return _batches(ids, batch_size, context, seed, steps)


def _batches(ids: torch.Tensor, batch_size: int, context: int, seed: int, steps: int | None
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(context + 1)
    step = 0
    while steps is None or step < steps:
        starts = torch.randint(0, ids.numel() - context, (batch_size,), generator=generator)
        window = ids[starts[:, None] + offsets]  # (B, context + 1)
        yield window[:, :-1], window[:, 1:]
        step += 1


def _check_context(model: nn.Module, context: object) -> int:
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    return check_int("context", context, 1, block_size)


@torch.no_grad()
def _total_nll(model: nn.Module, ids: torch.Tensor, context: int, batch_size: int) -> tuple[float, int]:
    """Summed negative log-likelihood (nats, float64) over non-overlapping windows, and the count."""
    n = ids.numel() - 1  # bytes with a prediction
    starts = list(range(0, n, context))
    groups = [(starts[i:i + batch_size], context) for i in range(0, len(starts), batch_size)]
    if n % context:  # the last window is shorter: it runs alone
        groups[-1] = (groups[-1][0][:-1], context)
        groups.append(([starts[-1]], n % context))
    total, count = 0.0, 0
    for group, width in groups:
        if not group:
            continue
        x = torch.stack([ids[s:s + width] for s in group])  # (B, T)
        y = torch.stack([ids[s + 1:s + width + 1] for s in group])  # (B, T), x shifted by one
        logits = model(x)  # (B, T, vocab)
        nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1),
                                          reduction="sum")
        total += float(nll)
        count += y.numel()
    return total, count


def _mean_nll(model: nn.Module, ids: torch.Tensor, context: int, batch_size: int) -> float:
    check_module("model", model)
    ids = check_ids("ids", ids, min_len=2)
    context = _check_context(model, context)
    batch_size = check_int("batch_size", batch_size, 1)
    was_training = model.training
    model.eval()
    try:
        total, count = _total_nll(model, ids, context, batch_size)
    finally:
        model.train(was_training)
    return total / count


def perplexity(model: nn.Module, ids: torch.Tensor, context: int, *, batch_size: int = 32) -> float:
    """exp(mean NLL per byte) of ``ids`` under ``model``, over non-overlapping windows of ``context``.

    ``model`` maps (B, T) ids to (B, T, 256) logits. It is run in eval mode and given its mode back.
    """
    return math.exp(_mean_nll(model, ids, context, batch_size))


def bits_per_byte(model: nn.Module, ids: torch.Tensor, context: int, *, batch_size: int = 32) -> float:
    """Mean NLL per byte in bits (NLL / ln 2); equals log2 of :func:`perplexity`."""
    return _mean_nll(model, ids, context, batch_size) / math.log(2)


@torch.no_grad()
def generate(
    model: nn.Module, prompt: str | bytes | torch.Tensor, n: int, *,
    context: int | None = None, temperature: float = 0.0, seed: int = 0,
) -> torch.Tensor:
    """``prompt`` followed by ``n`` new byte ids (1-D int64); decode it with :func:`decode`.

    Greedy (argmax) when ``temperature`` is 0; otherwise sampled from softmax(logits / temperature)
    with a private generator seeded by ``seed``. The model sees the last ``context`` bytes
    (default: its ``config.block_size``). Run in eval mode; the model's mode is given back.
    """
    check_module("model", model)
    ids = prompt if isinstance(prompt, torch.Tensor) else encode(prompt)
    ids = check_ids("prompt", ids)
    n = check_int("n", n, 0)
    default = getattr(getattr(model, "config", None), "block_size", None)
    if context is None and default is None:
        raise ValueError("`context` must be given for a model without `config.block_size`; got None")
    context = _check_context(model, default if context is None else context)
    temperature = check_real("temperature", temperature, 0.0)
    generator = torch.Generator().manual_seed(check_seed("seed", seed))
    was_training = model.training
    model.eval()
    try:
        for _ in range(n):
            logits = model(ids[None, -context:])[0, -1]  # (vocab,)
            if temperature == 0:
                nxt = logits.argmax()
            else:
                probs = torch.softmax(logits.double() / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)[0]
            ids = torch.cat([ids, nxt.reshape(1)])
    finally:
        model.train(was_training)
    return ids
