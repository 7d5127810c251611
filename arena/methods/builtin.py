"""The paper's methods (book/definitions.md A8). peft builds every method it has; MiLoRA and KeepLoRA are the kit's own
initialisations of a peft LoRA (peft 0.21 has neither; A8, F5), in ``init.py``.

Learning rates are the kit's defaults for short CPU runs (tens of steps, not the paper's 780): the paper's PEFT LR is
2e-4 and full FT 5e-5 (A6); a run that short needs larger steps to move at all. ``profile.lr_scale`` multiplies them.
"""

from __future__ import annotations

import math

from .init import keeplora_init, milora_init
from .registry import Method, register

DROPOUT = 0.05  # A8: dropout 0.05 wherever the method has one
RANKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BLOCKS = (2, 4, 8, 16, 32, 64, 128, 256)

# How each method trains on a 4-bit base, read from what peft 0.21.2 dispatches (methods.quantized; tests/test_nf4.py
# trains every one of them two steps on nf4).
NATIVE, BACKEND = "peft 4-bit layer", "peft's 4-bit backend (base dequantised where the update needs it)"
INPUT_SIDE = "input-side (4-bit layer called unchanged)"
RESIDUAL = "its residual initialisation rewrites the base weights"


def _lora(size, targets, steps, **extra):
    from peft import LoraConfig

    return LoraConfig(r=size, lora_alpha=2 * size, lora_dropout=DROPOUT, bias="none", target_modules=targets, **extra)


def _adalora(size, targets, steps):
    from peft import AdaLoraConfig

    # peft's defaults for the paper's "r8": init_r 12 -> target_r 8 (A8, F10); keep that ratio at other sizes.
    return AdaLoraConfig(target_r=size, init_r=math.ceil(1.5 * size), lora_alpha=2 * size, lora_dropout=DROPOUT,
                         target_modules=targets, total_step=max(steps, 2))


def _adalora_step(model, step):
    model.base_model.update_and_allocate(step)


def _oft(size, targets, steps):
    from peft import OFTConfig

    # peft defaults as in the paper: Cayley-Neumann with 5 terms, coft False, eps 6e-5 (A8, Appendix).
    return OFTConfig(oft_block_size=size, r=0, target_modules=targets)


def _boft(size, targets, steps):
    from peft import BOFTConfig

    return BOFTConfig(boft_block_size=size, boft_n_butterfly_factor=1, target_modules=targets)


def _ia3(size, targets, steps):
    from peft import IA3Config

    feedforward = [t for t in targets if t in ("down_proj", "fc2", "w2", "dense_4h_to_h")]
    return IA3Config(target_modules=targets, feedforward_modules=feedforward)


def _vera(size, targets, steps):
    from peft import VeraConfig

    return VeraConfig(r=size, vera_dropout=DROPOUT, target_modules=targets)


def _miss(size, targets, steps):
    from peft import MissConfig

    return MissConfig(r=size, miss_dropout=DROPOUT, target_modules=targets)


BUILTIN = [
    Method("full", "full finetuning of every weight except embeddings and LM head", "full", lr=1e-4,
           no_four_bit="full finetuning trains the weights themselves"),
    Method("lora", "LoRA, alpha = 2r", "additive", lr=1e-3, config=_lora, size_name="r", sizes=RANKS,
           default_size=8, four_bit=NATIVE, paper_size="r8"),
    Method("dora", "DoRA (weight-decomposed LoRA), alpha = 2r", "additive", lr=1e-3,
           config=lambda s, t, n: _lora(s, t, n, use_dora=True), size_name="r", sizes=RANKS, default_size=8,
           four_bit=NATIVE, paper_size="r8"),
    Method("pissa", "PiSSA: LoRA initialised on the top-r singular components, base = residual (peft init)",
           "additive", lr=1e-3, config=lambda s, t, n: _lora(s, t, n, init_lora_weights="pissa"), size_name="r",
           sizes=RANKS, default_size=8, residual=True, no_four_bit=RESIDUAL, paper_size="r8"),
    Method("milora", "MiLoRA: LoRA initialised on the bottom-r (minor) singular components, base = residual (kit)",
           "additive", lr=1e-3, config=_lora, size_name="r", sizes=RANKS, default_size=8, init=milora_init,
           residual=True, no_four_bit=RESIDUAL, paper_size="r8"),
    Method("keeplora", "KeepLoRA: A = top-r right vectors of the first-batch gradient with W's top-4r right "
           "subspace removed, frozen; only B trains (count = stored LoRA params, as in the paper) (kit)",
           "additive", lr=1e-3, config=_lora, size_name="r", sizes=RANKS, default_size=8, init=keeplora_init,
           residual=True, needs_init_batch=True, no_four_bit=RESIDUAL, paper_size="r8"),
    Method("adalora", "AdaLoRA: SVD-form LoRA with rank reallocation, init_r = 1.5 target_r", "additive", lr=1e-3,
           config=_adalora, size_name="r", sizes=RANKS, default_size=8, on_step=_adalora_step,
           four_bit=NATIVE, paper_size="r8"),
    Method("oft", "OFT: block-diagonal orthogonal R (Cayley-Neumann, 5 terms) on the input side, W0 R^T",
           "multiplicative", lr=1e-3, config=_oft, size_name="b", sizes=BLOCKS, default_size=32,
           size_divides_inputs=True, four_bit=INPUT_SIDE, paper_size="b32", rotation=True),
    Method("boft", "BOFT: butterfly-factorised orthogonal finetuning", "multiplicative", lr=1e-3, config=_boft,
           size_name="b", sizes=(2, 4, 8, 16, 32), default_size=4, size_divides_inputs=True,
           four_bit=BACKEND),
    Method("ia3", "IA3: learned scaling vectors (inputs of down_proj, outputs elsewhere)", "scaling", lr=1e-2,
           config=_ia3, four_bit=NATIVE),
    Method("vera", "VeRA: frozen shared random A, B; trained scaling vectors (r = 256 as in the paper)", "scaling",
           lr=1e-2, config=_vera, size_name="r", sizes=(256,), default_size=256, four_bit=BACKEND, paper_size="r256"),
    Method("miss", "MiSS: one shared (r, d_out) block per layer", "additive", lr=1e-3, config=_miss, size_name="r",
           sizes=RANKS, default_size=8, four_bit=BACKEND, paper_size="r8"),
]

for _method in BUILTIN:
    register(Method(**{**_method.__dict__, "builtin": True}), replace=True)
