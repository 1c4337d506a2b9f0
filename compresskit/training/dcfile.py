"""A file format for Deep Compression: a pruned, weight-shared MLP in a few kilobytes.

Deep Compression [1] stores each layer's non-zero weights as (a) the index of their shared
value in a small codebook and (b) their position as a *relative index*: the number of zeros
since the previous non-zero. Both streams are then Huffman coded (section 4 of [1]), since
some cluster indices and some gaps are far more frequent than others. What one layer costs:

    bits = sum_i l_idx(I_i) + sum_j l_gap(g_j) + 16 k + 16 (bias)          # Eq. (1)

with ``l_idx`` and ``l_gap`` the code lengths, ``k`` the codebook size, and 16 bits per
codebook entry and bias when they are exactly representable in fp16 (32 otherwise).

Relative indices overflow: a gap larger than the largest symbol ``2^b - 1`` cannot be written.
[1] (and EIE [2]) insert a *filler zero*, an extra entry of value 0 whose gap is the largest
symbol. We write the filler as an escape: gap symbol ``2^b - 1`` means "``2^b - 1`` zeros and
no weight yet", so a filler costs one gap code and no cluster index:

    g = f (2^b - 1) + r,  f fillers then the symbol r < 2^b - 1             # Eq. (2)

``b`` (1 to 8) is chosen per layer to make the file smallest.

The file is lossless: it holds exactly the model in memory, so the model read back predicts
exactly as the one written (the same logits, bit for bit). Rounding (fp16 codebooks and
biases) is done in memory first, by the caller (:func:`round_to_half`), never silently here.

Layout (fixed integers little-endian, counts and lengths as LEB128 varints)::

    b"CKDC"  magic                                         4 bytes
    version  u8 (1)                                        1
    size     u32, bytes of the whole file                  4
    header   its length, then the module count and per module its kind (Flatten, ReLU,
             Linear) and name; per Linear its shape and, for the weight and for the bias:
             flags (codebook or raw values, fp16 or fp32, Huffman or fixed width), codebook
             size k, non-zeros, gap entries, gap bits b, the two stream lengths, and the
             canonical Huffman code lengths of the index and gap alphabets (4 bits each
             when they fit)
    payload  per tensor: codebook (or the raw non-zero values), index stream, gap stream
    crc32    u32 (zlib) of everything before it             4

Every field is checked on reading; a truncated or corrupted file, a wrong magic or version, a
checksum mismatch or a header that disagrees with the payload raises
:class:`CompressedFileError` naming the problem, never a silently wrong model.

References
----------
[1] S. Han, H. Mao, W. J. Dally, "Deep Compression: Compressing Deep Neural Networks with
    Pruning, Trained Quantization and Huffman Coding", ICLR 2016, arXiv:1510.00149.
[2] S. Han, X. Liu, H. Mao, J. Pu, A. Pedram, M. Horowitz, W. J. Dally, "EIE: Efficient
    Inference Engine on Compressed Deep Neural Network", ISCA 2016, arXiv:1602.01528.
[3] D. A. Huffman, "A Method for the Construction of Minimum-Redundancy Codes", 1952.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from compresskit import coding
from compresskit._validation import check_choice, check_module, check_type
from compresskit.models import copy_model
from compresskit.pruning import remove_masks

__all__ = ["CompressedFileError", "MAGIC", "VERSION", "codebook_of", "load_compressed", "round_to_half", "save_compressed"]

MAGIC = b"CKDC"
VERSION = 1
MAX_CODEBOOK = 256  # 8-bit cluster indices at most
_KINDS = {nn.Flatten: 0, nn.ReLU: 1, nn.Linear: 2}
_CODING = ("fixed", "huffman")


class CompressedFileError(ValueError):
    """A compressed model file that cannot be read back exactly: truncated, corrupted, of another
    format or version, or with a header that disagrees with its payload."""


# --- what a layer holds -----------------------------------------------------------------------


def codebook_of(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(codebook, indices, positions)`` of a weight: its sorted distinct non-zero values, the
    codebook index of every non-zero, and the non-zeros' flat positions (row-major)."""
    flat = weight.detach().float().flatten()
    positions = flat.nonzero().flatten()
    codebook, indices = torch.unique(flat[positions], sorted=True, return_inverse=True)
    return codebook, indices, positions


def _fits_half(t: torch.Tensor) -> bool:
    """True when every value of ``t`` survives a round trip through fp16 unchanged."""
    return bool(torch.equal(t.float().half().float(), t.float()))


def round_to_half(model: nn.Module) -> nn.Module:
    """Round every weight and bias of ``model``'s Linear layers to the nearest fp16 value, in place.

    Applied to a weight-shared model this rounds the codebooks (the shared values) and biases,
    so that :func:`save_compressed` stores them in 16 bits and the model read back is exactly
    this one. Every layer is checked before any is changed: a value outside fp16's range
    (|x| > 65504, it would become inf), NaN, or a non-zero weight that rounds to 0 (it would turn
    into a pruned one) is refused and the model left as it was. A pruned layer's
    ``weight_orig`` is rounded (its mask keeps the zeros).
    """
    check_module("model", model)
    largest = float(torch.finfo(torch.float16).max)
    targets = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        weight = module.weight_orig if isinstance(getattr(module, "weight_orig", None), torch.Tensor) else module.weight
        for kind, t in (("weight", weight), ("bias", module.bias)):
            if t is None:
                continue
            values = t.detach()
            if not bool(torch.isfinite(values).all()) or bool((values.abs() > largest).any()):
                worst = values[~torch.isfinite(values) | (values.abs() > largest)].flatten()[0].item()
                raise ValueError(f"`model` layer `{name}` {kind} must be finite and within fp16's range [-{largest:g}, {largest:g}] "
                                 f"to be rounded to fp16; got {worst!r}")
            effective = module.weight.detach() if kind == "weight" else values  # a pruned weight: its zeros do not count
            if kind == "weight" and bool(((effective.half() == 0) & (effective != 0)).any()):
                small = effective[(effective.half() == 0) & (effective != 0)].flatten()[0].item()
                raise ValueError(f"`model` layer `{name}` has non-zero weights that round to 0 in fp16 (e.g. {small!r}); keep it in fp32")
            targets.append(t)
    with torch.no_grad():
        for t in targets:
            t.copy_(t.half().float())
        for module in model.modules():  # a pruned layer's masked weight recomputed from the rounded weight_orig
            for hook in module._forward_pre_hooks.values():
                if isinstance(hook, prune.BasePruningMethod):
                    setattr(module, hook._tensor_name, hook.apply_mask(module))
    return model


# --- relative indices with escape fillers (Eq. 2) ---------------------------------------------


def _gaps(positions: torch.Tensor, b: int) -> list[int]:
    """Gap symbols of the sorted flat ``positions``: fillers ``2^b - 1``, then the rest (Eq. 2)."""
    top = 2**b - 1
    gaps = (torch.diff(positions, prepend=torch.tensor([-1])) - 1).tolist()  # zeros before each non-zero
    out: list[int] = []
    for g in gaps:
        out.extend([top] * (g // top))  # Eq. (2): f = g // (2^b - 1) fillers
        out.append(g % top)
    return out


def _positions(symbols: list[int], b: int, nnz: int, numel: int, where: str) -> torch.Tensor:
    """Flat positions from gap symbols; refuses a stream that does not give ``nnz`` positions in range."""
    top = 2**b - 1
    positions, pos, skipped = [], -1, 0
    for s in symbols:
        if s == top:
            skipped += top
            continue
        pos += skipped + s + 1
        skipped = 0
        positions.append(pos)
    if len(positions) != nnz or skipped or (positions and positions[-1] >= numel):
        raise CompressedFileError(
            f"{where}: the gap stream gives {len(positions)} non-zeros ending at position "
            f"{positions[-1] if positions else -1} (+{skipped} trailing fillers); the header says {nnz} non-zeros in {numel} entries"
        )
    return torch.tensor(positions, dtype=torch.long)


# --- small integers and code-length tables ------------------------------------------------------


def _varint(n: int) -> bytes:
    """LEB128: 7 bits per byte, the high bit set on every byte but the last."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pack_lengths(lengths: list[int], nibbles: bool) -> bytes:
    if not nibbles:
        return bytes(lengths)
    padded = lengths + [0] * (len(lengths) % 2)
    return bytes(hi << 4 | lo for hi, lo in zip(padded[::2], padded[1::2]))


def _unpack_lengths(raw: bytes, count: int, nibbles: bool) -> list[int]:
    if not nibbles:
        return list(raw)
    return [v for byte in raw for v in (byte >> 4, byte & 0x0F)][:count]


# --- writing ----------------------------------------------------------------------------------

# Flags of a stored tensor (one byte).
_HUFFMAN, _HALF, _CODEBOOK, _NIBBLES = 1, 2, 4, 8


def _stream(symbols: list[int], alphabet: int, huffman: bool, fixed_bits: int) -> tuple[bytes, list[int]]:
    """``(stream, code lengths per symbol 0..alphabet-1)``; fixed-width codes need no table."""
    if huffman:
        lengths = coding.code_lengths(coding.count_symbols(symbols)) if symbols else {}
        code = coding.canonical_code(lengths) if lengths else {}
        return coding.encode(symbols, code) if symbols else b"", [lengths.get(s, 0) for s in range(alphabet)]
    code = {s: format(s, f"0{fixed_bits}b") for s in range(alphabet)}
    return coding.encode(symbols, code), []


def _index_bits(k: int) -> int:
    return max(1, math.ceil(math.log2(max(k, 1))))


def _encode_tensor(t: torch.Tensor, huffman: bool) -> tuple[bytes, bytes]:
    """``(header, payload)`` of one weight or bias: its non-zeros by codebook or raw values,
    whichever is smaller, at relative positions with the best gap width (0 = every entry non-zero)."""
    codebook, indices, positions = codebook_of(t)
    nnz = len(positions)
    if nnz == t.numel():
        b, gaps, gap_stream, gap_lengths = 0, [], b"", []
    else:
        options = []
        for b in range(1, 9):
            gaps = _gaps(positions, b)
            stream, lengths = _stream(gaps, 2**b, huffman, b)
            options.append((len(stream) + len(lengths) // 2, b, gaps, stream, lengths))
        _, b, gaps, gap_stream, gap_lengths = min(options, key=lambda o: o[:2])
    half = _fits_half(codebook)
    dtype = np.float16 if half else np.float32
    candidates = [(0, codebook.new_zeros(0), b"", [], t.detach().float().flatten()[positions])]  # raw values
    if 0 < len(codebook) <= MAX_CODEBOOK:
        stream, lengths = _stream(indices.tolist(), len(codebook), huffman, _index_bits(len(codebook)))
        candidates.append((_CODEBOOK, codebook, stream, lengths, codebook))
    encoded = []
    for flag, book, index_stream, index_lengths, values in candidates:
        tables = index_lengths + gap_lengths
        nibbles = bool(tables) and max(tables) <= 15
        flags = flag | (_HUFFMAN if huffman else 0) | (_HALF if half else 0) | (_NIBBLES if nibbles else 0)
        header = (bytes([flags]) + _varint(len(book)) + _varint(nnz) + _varint(len(gaps)) + bytes([b])
                  + _varint(len(index_stream)) + _varint(len(gap_stream))
                  + _pack_lengths(index_lengths, nibbles) + _pack_lengths(gap_lengths, nibbles))
        payload = values.numpy().astype(dtype).tobytes() + index_stream + gap_stream
        encoded.append((len(header) + len(payload), header, payload))
    _, header, payload = min(encoded, key=lambda e: e[0])
    return header, payload


def _name_bytes(name: str) -> bytes:
    raw = name.encode("utf-8")
    if not raw or len(raw) > 255:
        raise ValueError(f"`model` module names must be 1 to 255 bytes in UTF-8; got {name!r}")
    return bytes([len(raw)]) + raw


def _check_saveable(model: object) -> nn.Sequential:
    check_type("model", model, nn.Sequential, "an nn.Sequential of Flatten, Linear and ReLU modules")
    for name, module in model.named_children():
        if type(module) not in _KINDS:
            raise TypeError(f"`model` must hold only Flatten, Linear and ReLU modules; `{name}` is {type(module).__name__}")
        if isinstance(module, nn.Flatten) and (module.start_dim, module.end_dim) != (1, -1):
            raise ValueError(f"`model` Flatten `{name}` must flatten dims 1 to -1; got {module.start_dim} to {module.end_dim}")
        for pname, p in module.named_parameters():
            if p.dtype != torch.float32 or not bool(torch.isfinite(p).all()):
                raise ValueError(f"`model` parameter `{name}.{pname}` must be finite float32; got {_show_param(p)}")
    if not 0 < len(model) <= 255:
        raise ValueError(f"`model` must have 1 to 255 modules; got {len(model)}")
    return model


def _show_param(p: torch.Tensor) -> str:
    return f"dtype {p.dtype} with {int((~torch.isfinite(p.detach().float())).sum())} NaN or inf value(s)"


def save_compressed(model: nn.Module, path: str | Path, *, coding: str = "huffman") -> int:
    """Write ``model`` (an MLP: Sequential of Flatten, Linear, ReLU) to ``path``; return the bytes written.

    Each Linear weight and bias is stored by its non-zeros: as a codebook plus one cluster index
    per non-zero (weight sharing, at most 256 distinct values) or as raw values, whichever is
    smaller; values in fp16 when that is exact, else fp32. Positions are relative indices
    (Eq. 2) with the gap width that makes the tensor smallest. ``coding`` is "huffman" (both
    streams Huffman coded, the canonical code lengths in the header) or "fixed"
    (``ceil(log2 k)`` and ``b`` bits per symbol). A pruned model (with
    ``torch.nn.utils.prune`` masks) is written by its effective weights; ``model`` is unchanged.
    """
    check_module("model", model)
    huffman = check_choice("coding", coding, list(_CODING)) == "huffman"
    check_type("path", path, (str, Path), "a str or pathlib.Path")
    if Path(path).is_dir():
        raise ValueError(f"`path` must be a file to write, not a folder; got {str(path)!r}")
    if not Path(path).parent.is_dir():
        raise ValueError(f"`path` must be in an existing folder; got {str(path)!r}, whose folder does not exist")
    model = _check_saveable(remove_masks(copy_model(model)))
    header, payload = [bytes([len(model)])], []
    for name, module in model.named_children():
        header.append(bytes([_KINDS[type(module)]]) + _name_bytes(name))
        if isinstance(module, nn.Linear):
            header.append(_varint(module.out_features) + _varint(module.in_features) + bytes([module.bias is not None]))
            for tensor in [module.weight] + ([module.bias] if module.bias is not None else []):
                h, p = _encode_tensor(tensor, huffman)
                header.append(h)
                payload.append(p)
    head = b"".join(header)
    size = len(MAGIC) + 1 + 4 + len(_varint(len(head))) + len(head) + sum(map(len, payload)) + 4
    body = MAGIC + struct.pack("<BI", VERSION, size) + _varint(len(head)) + head + b"".join(payload)
    data = body + struct.pack("<I", zlib.crc32(body))
    Path(path).write_bytes(data)
    return len(data)


# --- reading ----------------------------------------------------------------------------------

MAX_NUMEL = 2**26  # a larger layer is a corrupted header, not a model this course writes


class _Reader:
    """Reads fields in order; running past the end is a CompressedFileError naming the field."""

    def __init__(self, data: bytes, start: int, end: int, part: str) -> None:
        self.data, self.pos, self.end, self.part = data, start, end, part

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise CompressedFileError(f"the header disagrees with the {self.part}: {what} needs {n} bytes at offset {self.pos}, "
                                      f"but the {self.part} has only {self.end - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        value = 0
        for shift in range(0, 35, 7):
            byte = self.byte(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
        raise CompressedFileError(f"{what}: a number in the {self.part} runs past 5 bytes")


def _check_envelope(data: bytes) -> None:
    """Magic, version, size and checksum, in the order that names the problem best."""
    if len(data) < len(MAGIC):
        raise CompressedFileError(f"truncated file: {len(data)} bytes, too short for the magic bytes {MAGIC!r}")
    if data[:4] != MAGIC:
        raise CompressedFileError(f"wrong magic bytes: expected {MAGIC!r} (a compresskit Deep Compression file); got {data[:4]!r}")
    if len(data) < 5:
        raise CompressedFileError(f"truncated file: {len(data)} bytes, it ends before the version")
    if data[4] != VERSION:
        raise CompressedFileError(f"wrong version: this reader reads version {VERSION}; the file says version {data[4]}")
    if len(data) < 14:
        raise CompressedFileError(f"truncated file: {len(data)} bytes, shorter than the smallest file (14 bytes)")
    (size,) = struct.unpack("<I", data[5:9])
    if size != len(data):
        what = "truncated file" if len(data) < size else "trailing bytes after the file"
        raise CompressedFileError(f"{what}: the file says it has {size} bytes; got {len(data)}")
    stored, actual = struct.unpack("<I", data[-4:])[0], zlib.crc32(data[:-4])
    if stored != actual:
        raise CompressedFileError(f"checksum mismatch: the file stores crc32 {stored:#010x}, its contents give {actual:#010x}; the file is corrupted")


def _read_tensor_header(r: _Reader, numel: int, where: str) -> dict:
    h = {"flags": r.byte(f"{where} flags"), "k": r.varint(f"{where} codebook size"), "nnz": r.varint(f"{where} non-zeros"),
         "n_gaps": r.varint(f"{where} gap entries"), "b": r.byte(f"{where} gap bits"),
         "index_bytes": r.varint(f"{where} index stream length"), "gap_bytes": r.varint(f"{where} gap stream length")}
    shared, huffman = bool(h["flags"] & _CODEBOOK), bool(h["flags"] & _HUFFMAN)
    problems = []
    if h["flags"] >= 16:
        problems.append(f"unknown flags {h['flags']:#x}")
    if h["b"] > 8:
        problems.append(f"gap bits {h['b']} (at most 8)")
    if h["nnz"] > numel:
        problems.append(f"{h['nnz']} non-zeros in {numel} entries")
    if shared and not 1 <= h["k"] <= MAX_CODEBOOK or not shared and h["k"]:
        problems.append(f"codebook size {h['k']} for {'a codebook' if shared else 'raw values'}")
    if h["b"] == 0 and (h["nnz"] != numel or h["n_gaps"] or h["gap_bytes"]):
        problems.append(f"gap bits 0 (every entry non-zero) with {h['nnz']} of {numel} non-zeros and {h['n_gaps']} gaps")
    if h["b"] and not h["nnz"] <= h["n_gaps"] <= h["nnz"] + numel:
        problems.append(f"{h['n_gaps']} gap entries for {h['nnz']} non-zeros")
    if not shared and h["index_bytes"]:
        problems.append(f"an index stream of {h['index_bytes']} bytes for raw values")
    if h["n_gaps"] > 8 * h["gap_bytes"] or (shared and h["nnz"] > 8 * h["index_bytes"]):
        problems.append("streams too short for their symbol counts")
    if problems:
        raise CompressedFileError(f"{where}: the header disagrees with itself: {'; '.join(problems)}")
    nibbles = bool(h["flags"] & _NIBBLES)
    n_index = h["k"] if huffman and shared else 0
    n_gap = 2 ** h["b"] if huffman and h["b"] else 0
    h["index_lengths"] = _unpack_lengths(r.take((n_index + 1) // 2 if nibbles else n_index, f"{where} index code lengths"), n_index, nibbles)
    h["gap_lengths"] = _unpack_lengths(r.take((n_gap + 1) // 2 if nibbles else n_gap, f"{where} gap code lengths"), n_gap, nibbles)
    if nibbles and (n_index + n_gap) == 0:
        raise CompressedFileError(f"{where}: the header disagrees with itself: nibble tables flagged with no table")
    return h


def _code(lengths: list[int], alphabet: int, fixed_bits: int, huffman: bool, where: str, what: str) -> dict[int, str]:
    if not huffman:
        return {s: format(s, f"0{fixed_bits}b") for s in range(alphabet)}
    used = {s: n for s, n in enumerate(lengths) if n}
    if not used:
        return {}
    try:
        return coding.canonical_code(used)
    except ValueError as exc:
        raise CompressedFileError(f"{where}: the {what} code lengths are not a prefix code: {exc}") from None


def _decode_stream(stream: bytes, code: dict[int, str], count: int, where: str, what: str) -> list[int]:
    if count == 0:
        if stream:
            raise CompressedFileError(f"{where}: the header says 0 {what} symbols but the {what} stream has {len(stream)} bytes")
        return []
    if not code:
        raise CompressedFileError(f"{where}: the header gives no {what} code for {count} symbols")
    try:
        return coding.decode(stream, code, count)
    except ValueError as exc:
        raise CompressedFileError(f"{where}: the {what} stream disagrees with the header: {exc}") from None


def _read_tensor(r: _Reader, h: dict, numel: int, where: str) -> torch.Tensor:
    """The flat float32 tensor of ``numel`` entries that one tensor header and its payload describe."""
    shared, huffman, half = bool(h["flags"] & _CODEBOOK), bool(h["flags"] & _HUFFMAN), bool(h["flags"] & _HALF)
    n_values = h["k"] if shared else h["nnz"]
    raw = r.take(n_values * (2 if half else 4), f"{where} values")
    values = torch.from_numpy(np.frombuffer(raw, np.float16 if half else np.float32).astype(np.float32))
    index_stream = r.take(h["index_bytes"], f"{where} index stream")
    gap_stream = r.take(h["gap_bytes"], f"{where} gap stream")
    if not bool(torch.isfinite(values).all()) or bool((values == 0).any()):
        raise CompressedFileError(f"{where}: the stored non-zero values hold NaN, inf or 0")
    if shared:
        code = _code(h["index_lengths"], h["k"], _index_bits(h["k"]), huffman, where, "index")
        indices = torch.tensor(_decode_stream(index_stream, code, h["nnz"], where, "index"), dtype=torch.long)
        if indices.numel() and int(indices.max()) >= h["k"]:
            raise CompressedFileError(f"{where}: a cluster index {int(indices.max())} is past the codebook of {h['k']}")
        values = values[indices]
    if h["b"] == 0:
        positions = torch.arange(numel)
    else:
        gap_code = _code(h["gap_lengths"], 2 ** h["b"], h["b"], huffman, where, "gap")
        positions = _positions(_decode_stream(gap_stream, gap_code, h["n_gaps"], where, "gap"), h["b"], h["nnz"], numel, where)
    flat = torch.zeros(numel)
    flat[positions] = values
    return flat


def _read_header(data: bytes, start: int, end: int) -> list[tuple[str, int, dict | None]]:
    """``[(name, kind, layer header or None)]`` for every module, in order."""
    head = _Reader(data, start, end, "header")
    n_modules = head.byte("module count")
    modules: list[tuple[str, int, dict | None]] = []
    for i in range(n_modules):
        kind = head.byte(f"module {i} kind")
        raw = head.take(head.byte(f"module {i} name length"), f"module {i} name")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CompressedFileError(f"module {i}: its name {raw!r} is not UTF-8") from None
        if kind > 2 or not name or name in [m[0] for m in modules]:
            raise CompressedFileError(f"module {i}: unknown kind {kind} or an empty or repeated name {name!r}")
        layer = None
        if kind == 2:
            out, inp, has_bias = head.varint(f"layer `{name}` rows"), head.varint(f"layer `{name}` columns"), head.byte(f"layer `{name}` bias flag")
            if not (1 <= out and 1 <= inp and out * inp <= MAX_NUMEL and has_bias <= 1):
                raise CompressedFileError(f"layer `{name}`: the header disagrees with itself: shape ({out}, {inp}), bias flag {has_bias}")
            layer = {"out": out, "in": inp, "weight": _read_tensor_header(head, out * inp, f"layer `{name}` weight")}
            layer["bias"] = _read_tensor_header(head, out, f"layer `{name}` bias") if has_bias else None
        modules.append((name, kind, layer))
    if head.pos != end:
        raise CompressedFileError(f"the header disagrees with itself: its fields end {end - head.pos} bytes before its stated length")
    return modules


def load_compressed(path: str | Path) -> nn.Sequential:
    """Read a file :func:`save_compressed` wrote: the same model (in eval mode), predicting exactly as it did.

    Raises :class:`CompressedFileError` (a ValueError) naming the problem when the file is
    truncated, has the wrong magic bytes or version, fails its checksum, or has a header that
    disagrees with its payload.
    """
    check_type("path", path, (str, Path), "a str or pathlib.Path")
    if Path(path).is_dir():
        raise ValueError(f"`path` must be a file that save_compressed wrote, not a folder; got {str(path)!r}")
    if not Path(path).exists():
        raise ValueError(f"`path` must be a file that save_compressed wrote; got {str(path)!r}, which does not exist")
    data = Path(path).read_bytes()
    _check_envelope(data)
    envelope = _Reader(data, 9, len(data) - 4, "file")
    header_size = envelope.varint("header length")
    start = envelope.pos
    if start + header_size > envelope.end:
        raise CompressedFileError(f"the header disagrees with the file: it says {header_size} header bytes; only {envelope.end - start} remain")
    header = _read_header(data, start, start + header_size)
    payload = _Reader(data, start + header_size, len(data) - 4, "payload")
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for name, kind, layer in header:
        if layer is None:
            modules[name] = [nn.Flatten, nn.ReLU][kind]()
            continue
        linear = nn.Linear(layer["in"], layer["out"], bias=layer["bias"] is not None)
        with torch.no_grad():
            weight = _read_tensor(payload, layer["weight"], layer["out"] * layer["in"], f"layer `{name}` weight")
            linear.weight.copy_(weight.view(layer["out"], layer["in"]))
            if layer["bias"] is not None:
                linear.bias.copy_(_read_tensor(payload, layer["bias"], layer["out"], f"layer `{name}` bias"))
        modules[name] = linear
    if payload.pos != payload.end:
        raise CompressedFileError(f"the header disagrees with the payload: {payload.end - payload.pos} payload bytes are left over after the last layer")
    return nn.Sequential(modules).eval()
