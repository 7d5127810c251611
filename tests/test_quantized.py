"""The method x 4-bit compatibility table: each method either trains on the 4-bit base, or on the full-precision base
with a recorded note, or stops with the fix; never silently something else (tests/test_nf4.py trains every row)."""

import pytest

from arena.errors import ArenaError
from arena.methods import get_method, method_names
from arena.methods.quantized import base_quantization, compatibility_table
from arena.profiles import get_profile


def test_every_builtin_method_has_a_row():
    for name in method_names():
        m = get_method(name)
        assert bool(m.four_bit) != bool(m.no_four_bit), name  # exactly one: how, or why not


def test_on_a_4bit_profile_unsupported_methods_fall_back_with_a_note():
    nf4 = get_profile("smoke", quantization="nf4")
    assert base_quantization(nf4, "lora") == ("nf4", None)
    assert base_quantization(nf4, "oft") == ("nf4", None)
    assert base_quantization(nf4, "boft") == ("nf4", None)  # peft's 4-bit backend dequantises where BOFT needs it
    quantization, note = base_quantization(nf4, "pissa")
    assert quantization is None and "full-precision base" in note and "residual" in note
    with pytest.raises(ArenaError, match="quantization='none'"):
        base_quantization(get_profile("smoke", quantization="nf4", four_bit_fallback="error"), "full")


def test_unquantised_profiles_are_untouched():
    cpu = get_profile("smoke", quantization="none")
    assert all(base_quantization(cpu, m) == (None, None) for m in method_names())


def test_bad_fallback_names_the_choices():
    with pytest.raises(ArenaError, match="bf16 or error"):
        get_profile("smoke", four_bit_fallback="fp8")


def test_table_rows():
    rows = {r["method"]: r for r in compatibility_table(["lora", "oft", "miss", "keeplora"])}
    assert rows["lora"]["4-bit base"] == "yes" and rows["miss"]["4-bit base"] == "yes"
    assert rows["keeplora"]["4-bit base"].startswith("no")


@pytest.mark.gpu
@pytest.mark.bnb
@pytest.mark.embedded
@pytest.mark.parametrize("method", ["lora", "oft", "pissa"])
def test_nf4_training_steps_on_cuda(method, tmp_path):
    """Two real training steps on the embedded model in NF4 (or bf16 for the fallback), adapter moves, loss finite."""
    import math

    from arena.runs import sized_method, train_method, train_spec

    profile = get_profile("embedded", quantization="nf4", steps=2, save_every=1, batch_size=2)
    spec = train_spec(profile, sized_method(profile, method))
    record = train_method(profile, spec)
    assert all(math.isfinite(x) for x in record["losses"])
    assert record["base_quantization"] == ("nf4" if method != "pissa" else None)
    assert (record["base_note"] is None) == (method != "pissa")
