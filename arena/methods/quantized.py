"""Which methods train on a 4-bit (bitsandbytes NF4) base, and what the others do.

Each method's registry row says whether it does (``Method.four_bit``) or why not (``Method.no_four_bit``), read from
what peft 0.21.2 dispatches, and proved by ``tests/test_nf4.py``, which trains every registered method
two steps on an nf4 base (bitsandbytes' CPU kernels):

- LoRA (and its DoRA variant), AdaLoRA and IA3 have their own bitsandbytes ``Linear4bit`` layers;
- OFT, VeRA, MiSS and BOFT resolve peft's bitsandbytes 4-bit backend, which dequantises the base weight wherever
  their update needs it (OFT rotates the layer's input and calls the 4-bit layer unchanged).

The others need a full-precision weight of their own: a residual initialisation rewrites it (PiSSA, MiLoRA,
KeepLoRA: the kit does not quantise their residual base, as QPiSSA/LoftQ would) and full finetuning trains it. They
train on the full-precision base (fp32 master weights; ``profile.four_bit_fallback = "bf16"``, the default) and are
scored and analysed against that base, never against the nf4 one; with ``"error"`` they stop with the fix.
"""

from __future__ import annotations

from ..errors import ArenaError
from ..models import resolve_quantization
from .registry import get_method


def four_bit_support(method: str) -> str | None:
    """How ``method`` runs on a 4-bit base (its registry row's ``four_bit``), or None when it cannot."""
    m = get_method(method)
    return m.four_bit


def why_not_four_bit(method: str) -> str:
    m = get_method(method)
    return m.no_four_bit or "it declares no 4-bit path (Method(four_bit=...))"


def compatibility_table(methods) -> list[dict]:
    """One row per method: whether it trains on a 4-bit base, and how (the book's table)."""
    rows = []
    for name in methods:
        support = four_bit_support(name)
        rows.append({"method": name, "4-bit base": "yes" if support else "no: full-precision base",
                     "how": support or why_not_four_bit(name)})
    return rows


def base_quantization(profile, method: str) -> tuple[str | None, str | None]:
    """``(quantization, note)``: the base ``method`` trains and is scored on under ``profile``, and a note when
    that is not the profile's 4-bit base. Raises an ArenaError instead when ``profile.four_bit_fallback`` is
    ``"error"``."""

    quantization = resolve_quantization(profile)
    if not quantization or four_bit_support(method):
        return quantization, None
    why = why_not_four_bit(method)
    if profile.four_bit_fallback == "error":
        raise ArenaError(f"{method} cannot train on a {quantization} base ({why}); run it with quantization='none' "
                         "or four_bit_fallback='bf16'")
    return None, f"{method} trains on the full-precision base, not {quantization}: {why}; it is compared with that base"
