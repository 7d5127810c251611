"""Scoring through lm-eval's vLLM backend (the paper evaluates with vLLM in bf16, book/definitions.md A4).

``profile.eval_backend = "vllm"`` (``--eval-backend vllm`` on the CLI) scores each model as the paper does: the adapter
merged into a full-precision base (never a re-quantised merge: with this backend the kit loads the base unquantised for
scoring), written once as a bf16 safetensors folder, and served by vLLM through lm-eval's ``VLLM`` class, which runs
the same tasks and metrics as the default ``HFLM`` path. Needs CUDA and ``pip install vllm`` (not in the kit's pins:
its wheels pin their own torch). The default, ``hf``, scores the model object in place (4-bit bases unmerged).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import ArenaError
from .updates import custom_layers

MAX_MODEL_LEN = 16384  # vLLM reserves KV cache for this many tokens; the kit's prompts + answers are far shorter


def vllm_args(folder: Path, profile, context: int, gpu_share: float) -> dict:
    """lm-eval ``VLLM(**args)`` for a merged export: bf16, one GPU, lm-eval's automatic batching, a fixed seed, the
    model's context up to MAX_MODEL_LEN (``profile.extra["vllm_max_model_len"]`` overrides), and ``gpu_share`` of
    the GPU's memory (``profile.extra["vllm_gpu_memory_utilization"]`` overrides)."""
    return {"pretrained": str(folder), "dtype": "bfloat16", "tensor_parallel_size": 1, "batch_size": "auto",
            "seed": 0, "max_model_len": min(context, profile.extra.get("vllm_max_model_len", MAX_MODEL_LEN)),
            "gpu_memory_utilization": profile.extra.get("vllm_gpu_memory_utilization", gpu_share)}


def export_merged(model, tokenizer, folder: Path) -> Path:
    """Write ``model`` with its adapter folded into the weights, as the caller sees it, plus its tokenizer, as a bf16
    folder transformers and vLLM load. An adapter switched off (rewinding writes W0 + alpha dW into the base and
    disables the adapter) is dropped, not merged. The caller's model is untouched; the copy is made on the CPU."""
    import copy

    import torch

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        raise ArenaError("vLLM scores a merge into the full-precision base, not a quantised one; load the model "
                         "unquantised (the kit does this itself when eval_backend='vllm')")

    if custom_layers(model):
        raise ArenaError("a plain-torch method's layers cannot be exported for vLLM; score it with eval_backend='hf'")
    device = next(model.parameters()).device
    model.to("cpu")
    try:
        merged = copy.deepcopy(model)
    finally:
        model.to(device)
    if hasattr(merged, "peft_config"):
        from peft.tuners.tuners_utils import BaseTunerLayer

        disabled = any(m.disable_adapters for m in merged.modules() if isinstance(m, BaseTunerLayer))
        merged = merged.unload() if disabled else merged.merge_and_unload()
    merged.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def score_with_vllm(model, tokenizer, profile, score):
    """``score(lm)`` with an lm-eval ``VLLM`` serving a merged export of ``model``. The model's GPU copy waits on the
    CPU meanwhile (vLLM takes most of the GPU) and the engine is shut down before it comes back."""
    import gc
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        raise ArenaError("eval_backend='vllm' needs vLLM: `pip install vllm` on a CUDA machine (or use "
                         "eval_backend='hf', the default)")
    if not torch.cuda.is_available():
        raise ArenaError("eval_backend='vllm' needs a CUDA GPU; use eval_backend='hf' here")
    from lm_eval.models.vllm_causallms import VLLM

    device = next(model.parameters()).device
    context = getattr(model.config, "max_position_embeddings", MAX_MODEL_LEN)
    with tempfile.TemporaryDirectory(prefix="arena-vllm-") as tmp:
        folder = export_merged(model, tokenizer, Path(tmp) / "merged")
        model.to("cpu")
        gc.collect()
        torch.cuda.empty_cache()
        free, total = torch.cuda.mem_get_info()
        # vLLM refuses a share larger than what is free (copies a rewinding study keeps on the GPU count against it)
        lm = VLLM(**vllm_args(folder, profile, context, round(0.95 * free / total, 2)))
        try:
            return score(lm)
        finally:
            _shutdown(lm)
            del lm
            gc.collect()
            torch.cuda.empty_cache()
            model.to(device)


def _shutdown(lm) -> None:
    """Release vLLM's engine and its GPU memory (dropping the Python object alone leaves the engine's workers)."""
    engine, lm.model = getattr(lm, "model", None), None
    if engine is not None and hasattr(engine, "llm_engine"):
        shutdown = getattr(engine.llm_engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
    del engine
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    except (ImportError, AssertionError, RuntimeError):
        pass  # older or newer vLLM without these helpers: the engine shutdown above is what frees the memory
