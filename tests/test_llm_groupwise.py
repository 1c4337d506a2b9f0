"""Group-wise RTN held against torch's fake quantization; int4 packing and the quantized file."""

from __future__ import annotations

import itertools

import pytest
import torch

from compresskit import llm

pytestmark = pytest.mark.usefixtures("one_thread")  # small tensors run fastest on one thread


def weight(out=16, n=128, seed=0):
    return torch.randn(out, n, generator=torch.Generator().manual_seed(seed)) * 0.05


@pytest.mark.parametrize("bits,symmetric", list(itertools.product([8, 4, 3], [False, True])))
def test_per_channel_rtn_equals_torch_fake_quantize(bits, symmetric):
    w = weight()
    q = llm.quantize_rtn(w, bits, None, symmetric)
    quant_min, quant_max = llm.quant_range(bits, symmetric)
    expected = torch.fake_quantize_per_channel_affine(w, q.scale[:, 0], q.zero_point[:, 0], 0, quant_min, quant_max)
    assert torch.equal(q.dequantize(), expected)
    # and the qparams are torch's observer's (float16-rounded scale aside)
    obs = torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=0, quant_min=quant_min, quant_max=quant_max, dtype=torch.qint32,
        qscheme=torch.per_channel_symmetric if symmetric else torch.per_channel_affine)
    obs(w)
    scale, zero_point = obs.calculate_qparams()
    torch.testing.assert_close(q.scale[:, 0], scale.half().float(), rtol=0, atol=0)
    if not symmetric:  # torch's symmetric zero point sits mid-range for its unsigned dtypes; ours is signed, 0
        assert (q.zero_point[:, 0] - zero_point).abs().max() <= 1  # rounding of min / scale with a rounded scale


@pytest.mark.parametrize("group_size", [32, 64, 128])
def test_groupwise_rtn_is_per_channel_rtn_on_each_group(group_size):
    w = weight(n=256)
    q = llm.quantize_rtn(w, 4, group_size)
    rows = w.reshape(-1, group_size)  # each (row, group) as its own channel
    expected = torch.fake_quantize_per_channel_affine(rows, q.scale.flatten(), q.zero_point.flatten(), 0, 0, 15)
    assert torch.equal(q.dequantize(), expected.reshape(w.shape))
    assert q.scale.shape == (16, 256 // group_size)


def test_smaller_groups_give_smaller_error():
    w = weight(n=256)
    errors = [float((llm.quantize_rtn(w, 4, g).dequantize() - w).pow(2).sum()) for g in (32, 64, 128, None)]
    assert errors == sorted(errors)


def test_an_all_zero_group_round_trips_to_zero():
    w = weight()
    w[:, :32] = 0
    q = llm.quantize_rtn(w, 4, 32)
    assert torch.equal(q.dequantize()[:, :32], torch.zeros(16, 32))


@pytest.mark.parametrize("signed", [False, True])
def test_packing_round_trips_every_code_and_pair(signed):
    low, high = (-8, 7) if signed else (0, 15)
    pairs = torch.tensor(list(itertools.product(range(low, high + 1), repeat=2))).flatten()
    packed = llm.pack_int4(pairs, signed=signed)
    assert packed.dtype == torch.uint8 and packed.numel() == 256
    assert sorted(packed.tolist()) == list(range(256))  # every byte used once: a bijection
    assert torch.equal(llm.unpack_int4(packed, pairs.numel(), signed=signed), pairs.to(torch.int8))


def test_the_nibble_order_is_low_first():
    assert llm.pack_int4(torch.tensor([1, 2, 3])).tolist() == [0x21, 0x03]
    assert llm.pack_int4(torch.tensor([-1, 7]), signed=True).tolist() == [0x7F]
    assert llm.unpack_int4(torch.tensor([0x8F], dtype=torch.uint8), 2, signed=True).tolist() == [-1, -8]


def test_the_file_gives_back_the_weights_and_its_bytes_are_the_count_plus_a_header(tmp_path):
    w, bias = weight(32, 256), torch.randn(32)
    tensors = {"fc.weight": llm.quantize_rtn(w, 4, 64), "fc.bias": bias, "emb.weight": llm.quantize_rtn(w, 8, None, True),
               "head.weight": None}
    tensors["head.weight"] = tensors["emb.weight"]  # tied: stored once
    written = llm.save_quantized(tmp_path / "m.ckq", tensors)
    assert written == (tmp_path / "m.ckq").stat().st_size
    back = llm.load_quantized(tmp_path / "m.ckq")
    for name in ("fc.weight", "emb.weight"):
        assert torch.equal(back[name].dequantize(), tensors[name].dequantize())
        assert torch.equal(back[name].codes, tensors[name].codes.to(torch.int16))
    assert back["head.weight"] is back["emb.weight"] and torch.equal(back["fc.bias"], bias)
    counted = llm.quantized_bytes(32, 256, 4, 64) + llm.quantized_bytes(32, 256, 8) + 32 * 4
    assert counted == 32 * 256 // 2 + 32 * 4 * 4 + 32 * 256 + 32 * 4 + 32 * 4
    header = written - counted
    assert 0 < header < 1024


def test_three_bit_codes_take_a_nibble_in_the_file(tmp_path):
    w = weight(8, 64)
    n3 = llm.save_quantized(tmp_path / "a", {"w": llm.quantize_rtn(w, 3, 32)})
    n4 = llm.save_quantized(tmp_path / "b", {"w": llm.quantize_rtn(w, 4, 32)})
    assert n3 == n4 and llm.quantized_bytes(8, 64, 3, 32) < llm.quantized_bytes(8, 64, 4, 32)
    assert torch.equal(llm.load_quantized(tmp_path / "a")["w"].dequantize(), llm.quantize_rtn(w, 3, 32).dequantize())


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic"])
def test_a_damaged_file_is_refused(tmp_path, damage):
    path = tmp_path / "m.ckq"
    llm.save_quantized(path, {"w": llm.quantize_rtn(weight(), 4, 32)})
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x10
    elif damage == "truncate":
        blob = blob[:-5]
    else:
        blob[:4] = b"PK\x03\x04"
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="checksum" if damage != "magic" else "not a compresskit"):
        llm.load_quantized(path)
