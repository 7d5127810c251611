"""Scoring through lm-eval's vLLM backend (issue 7; the paper evaluates with vLLM in bf16, paper_spec.md A4).

``profile.eval_backend = "vllm"`` (``PARAMS='-p eval_backend vllm'`` or ``--eval-backend vllm``) scores each model as
the paper does: the adapter merged into a full-precision base (never a re-quantised merge: with this backend the kit
loads the base unquantised for scoring), written once as a bf16 safetensors folder, and served by vLLM through
lm-eval's ``VLLM`` class, which runs the same tasks and metrics as the default ``HFLM`` path. Needs CUDA and
``pip install vllm`` (not in the kit's pins: its wheels pin their own torch). The default, ``hf``, scores the model
object in place (4-bit bases unmerged).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from .errors import ArenaError


def vllm_args(folder: Path, profile) -> dict:
    """lm-eval ``VLLM(**args)`` for a merged export: bf16, one GPU, lm-eval's automatic batching, a fixed seed, the
    profile's sequence length. ``profile.extra["vllm_gpu_memory_utilization"]`` sets vLLM's share of the GPU."""
    return {"pretrained": str(folder), "dtype": "bfloat16", "tensor_parallel_size": 1, "batch_size": "auto",
            "seed": 0, "max_model_len": profile.max_length,
            "gpu_memory_utilization": profile.extra.get("vllm_gpu_memory_utilization", 0.85)}


def export_merged(model, tokenizer, folder: Path) -> Path:
    """Write ``model`` (adapters folded into the weights) and its tokenizer as a bf16 folder transformers and vLLM
    load. The caller's model is untouched."""
    import copy

    import torch

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise ArenaError("vLLM scores a merge into the full-precision base, not a quantised one; load the model "
                         "unquantised (the kit does this itself when eval_backend='vllm')")
    if any(callable(getattr(m, "delta_weight", None)) for m in model.modules()):  # the kit's plain-torch convention
        raise ArenaError("a plain-torch method's layers cannot be exported for vLLM; score it with eval_backend='hf'")
    merged = copy.deepcopy(model)
    if hasattr(merged, "merge_and_unload"):
        merged = merged.merge_and_unload()
    merged.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


@contextlib.contextmanager
def vllm_language_model(model, tokenizer, profile):
    """An lm-eval ``VLLM`` serving a merged export of ``model``; the model's GPU copy moves to the CPU meanwhile (vLLM
    reserves most of the GPU for itself) and comes back afterwards."""
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        raise ArenaError("eval_backend='vllm' needs vLLM: `pip install vllm` on a CUDA machine (or use "
                         "eval_backend='hf', the default)")
    if not torch.cuda.is_available():
        raise ArenaError("eval_backend='vllm' needs a CUDA GPU; use eval_backend='hf' here")
    from lm_eval.models.vllm_causallms import VLLM

    device = next(model.parameters()).device
    with tempfile.TemporaryDirectory(prefix="arena-vllm-") as tmp:
        folder = export_merged(model, tokenizer, Path(tmp) / "merged")
        model.to("cpu")
        torch.cuda.empty_cache()
        lm = VLLM(**vllm_args(folder, profile))
        try:
            yield lm
        finally:
            del lm
            import gc

            gc.collect()
            torch.cuda.empty_cache()
            model.to(device)
