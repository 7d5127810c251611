"""Thin orchestration: assets, base evaluation (computed once, shared), and the cached run records the book reads."""

from __future__ import annotations

import time

from . import store
from .models import compute_precision, load_base, model_identity, resolve_quantization
from .profiles import Profile
from .provenance import peak_memory_mb, provenance
from .suite import SUITE_VERSION, suite_dir


def ensure_assets(profile: Profile) -> None:
    """Fetch and verify what the profile needs (one-line ArenaError on failure; rebuilds corrupt caches)."""
    from .assets import set_offline, smollm2_dir
    from .suite import build_suite

    for spec in profile.models:
        if spec.source == "embedded":
            smollm2_dir()
    if profile.name != "paper":
        set_offline()
        build_suite(profile)


def eval_key(profile: Profile, model_id: str, what: dict) -> dict:
    """Everything that determines an evaluation: base identity, suite content (and, for ``split="validation"``, the
    validation split's), quantisation, compute precision, and the model variant."""
    from .suite import validation_name

    split = {"validation": validation_name(profile)} if what.get("split") == "validation" else {}
    backend = {"backend": profile.eval_backend} if profile.eval_backend != "hf" else {}  # hf: stored keys stay valid
    return {"base": model_id, "suite": suite_dir(profile).name, "suite_version": SUITE_VERSION,
            "quantization": scoring_quantization(profile), "compute": compute_precision(), **split, **backend,
            **what}


def scoring_quantization(profile: Profile) -> str | None:
    """The base's quantisation when scoring: the profile's, except that vLLM scores a merge into the full-precision
    base (``arena/vllm_backend.py``)."""
    return None if profile.eval_backend == "vllm" else resolve_quantization(profile)


def evaluate_base(profile: Profile, force: bool = False) -> dict:
    """The base model's scores on the profile's suite (cached: every chapter shares one base evaluation)."""
    from .evaluate import evaluate

    spec = profile.model
    key = eval_key(profile, model_identity(spec), {"variant": "base"})

    def compute(folder):
        start = time.perf_counter()
        model, tokenizer = load_base(spec, scoring_quantization(profile))
        result = evaluate(model, tokenizer, profile)
        return {**result, "variant": "base", "wall_s": time.perf_counter() - start, **peak_memory_mb(),
                "provenance": provenance()}

    return store.cached("eval", key, compute, force=force)
