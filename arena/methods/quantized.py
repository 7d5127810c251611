"""Which methods can train on a 4-bit (bitsandbytes NF4) base, and what happens to the others (issue 7).

Read from peft 0.21.2's source: only LoRA (with its DoRA variant), AdaLoRA and IA3 ship a bitsandbytes ``Linear4bit``
layer. OFT needs none: its forward rotates the layer's *input* and calls the 4-bit layer unchanged, so it trains on
a 4-bit base as is (it cannot be merged into one, which the kit never does on a quantised base). Every other method
needs the full-precision weight itself: a residual initialisation rewrites it (PiSSA, MiLoRA, KeepLoRA), the update
multiplies it (BOFT, HRA), peft has no 4-bit layer for it (VeRA, MiSS), or training changes it (full finetuning).

Such a method never silently does something else: by default (``profile.four_bit_fallback = "bf16"``) it trains on
a bf16 copy of the base, and the run records and logs that note; with ``"error"`` it stops with the fix.
"""

from __future__ import annotations

from ..errors import ArenaError
from .registry import get_method

NATIVE, INPUT_SIDE = "peft 4-bit layer", "input-side (4-bit layer called unchanged)"
FOUR_BIT = {"lora": NATIVE, "dora": NATIVE, "adalora": NATIVE, "ia3": NATIVE, "oft": INPUT_SIDE}
WHY_NOT = {"full": "full finetuning trains the weights themselves",
           "pissa": "its residual initialisation rewrites the base weights",
           "milora": "its residual initialisation rewrites the base weights",
           "keeplora": "its residual initialisation rewrites the base weights",
           "boft": "its update multiplies the base weight (no 4-bit layer in peft 0.21.2)",
           "vera": "peft 0.21.2 has no 4-bit VeRA layer", "miss": "peft 0.21.2 has no 4-bit MiSS layer"}


def four_bit_support(method: str) -> str | None:
    """How ``method`` runs on a 4-bit base, or None when it cannot. A registered method may declare its own with
    ``Method(extra={"four_bit": "..."})``."""
    m = get_method(method)
    return m.extra.get("four_bit") or FOUR_BIT.get(m.name)


def compatibility_table(methods) -> list[dict]:
    """One row per method: whether it trains on a 4-bit base, and how (the book's table)."""
    rows = []
    for name in methods:
        support = four_bit_support(name)
        rows.append({"method": name, "4-bit base": "yes" if support else "no: bf16 base",
                     "how": support or WHY_NOT.get(name, "no 4-bit path declared (Method.extra['four_bit'])")})
    return rows


def base_quantization(profile, method: str) -> tuple[str | None, str | None]:
    """``(quantization, note)``: the base ``method`` trains and is scored on under ``profile``, and a note when
    that is not the profile's 4-bit base. Raises an ArenaError instead when ``profile.four_bit_fallback`` is
    ``"error"``."""
    from ..models import resolve_quantization

    quantization = resolve_quantization(profile)
    if not quantization or four_bit_support(method):
        return quantization, None
    why = WHY_NOT.get(method, "it declares no 4-bit path")
    if profile.four_bit_fallback == "error":
        raise ArenaError(f"{method} cannot train on a {quantization} base ({why}); run it with quantization='none' "
                         "or four_bit_fallback='bf16'")
    return None, f"{method} trains on a bf16 base, not {quantization}: {why}"
