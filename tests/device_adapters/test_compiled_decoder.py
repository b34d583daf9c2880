"""The poll's compiled decoder (:class:`device_adapters.codec.BlockDecoder`) gives exactly what
the general path (:func:`device_adapters.codec.decode_points` over a dictionary of registers)
gives, values and refusals alike, for every packaged profile and any register words."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_adapters.codec import Registers, compile_decoder, decode_points
from device_adapters.profile import load_profile, plan_blocks
from device_adapters.registers import EncodingError

PROFILES = ["alfen-ng9xx", "coolmaster-vrf", "huawei-luna2000", "industrial-plc", "keba-p30",
            "sungrow-sh"]
WORD = st.integers(0, 0xFFFF)


def _general(profile_name: str, words: list[list[int]]) -> dict[str, float | str] | str:
    profile = load_profile(profile_name)
    names = profile.poll_points()
    blocks = plan_blocks(profile, names)
    regs: Registers = {(str(b.function), b.address + i): w for b, ws in zip(blocks, words, strict=True)
            for i, w in enumerate(ws)}
    try:
        return decode_points(profile, names, regs)
    except EncodingError:
        return "refused"


@pytest.mark.parametrize("name", PROFILES)
def test_every_packaged_profile_compiles(name: str) -> None:
    profile = load_profile(name)
    names = profile.poll_points()
    assert compile_decoder(profile, names, plan_blocks(profile, names)) is not None


@pytest.mark.parametrize("name", PROFILES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_compiled_decoder_matches_the_general_path(name: str, data: st.DataObject) -> None:
    profile = load_profile(name)
    names = profile.poll_points()
    blocks = plan_blocks(profile, names)
    decoder = compile_decoder(profile, names, blocks)
    assert decoder is not None
    words = [data.draw(st.lists(WORD, min_size=b.count, max_size=b.count)) for b in blocks]
    want = _general(name, words)
    try:
        got: dict[str, float | str] | str = decoder.decode(words)
    except EncodingError:
        got = "refused"
    if isinstance(want, str) or isinstance(got, str):
        assert got == want
        return
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert isinstance(v, float)
        assert math.isclose(float(got[k]), v, rel_tol=0, abs_tol=0) or got[k] == v, k


def test_a_word_out_of_range_is_refused() -> None:
    profile = load_profile("keba-p30")
    names = profile.poll_points()
    blocks = plan_blocks(profile, names)
    decoder = compile_decoder(profile, names, blocks)
    assert decoder is not None
    words = [[0] * b.count for b in blocks]
    words[0][0] = 0x10000
    with pytest.raises(EncodingError):
        decoder.decode(words)
