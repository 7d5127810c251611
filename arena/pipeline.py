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


def scoring_quantization(profile: Profile, method: str | None = None) -> str | None:
    """The base's quantisation when scoring the base (``method`` None) or a method: the base it trained on (the
    profile's, or bf16 for a method with no 4-bit path, ``methods.quantized``), except that vLLM scores a merge into
    the full-precision base (``arena/vllm_backend.py``)."""
    if profile.eval_backend == "vllm":
        return None
    if method is None:
        return resolve_quantization(profile)
    from .methods.quantized import base_quantization

    return base_quantization(profile, method)[0]


def evaluate_base(profile: Profile, force: bool = False, split: str = "test", method: str | None = None) -> dict:
    """The base model's scores on the profile's suite, or on its validation split (the alpha = 0 end of every
    rewinding path); cached: every chapter shares one base evaluation per split and starting base. With ``method``,
    the base that method started from and is compared against (``scoring_quantization``): a method that falls back
    to full precision under an nf4 profile is compared with the full-precision base, never with the nf4 one."""
    from .evaluate import evaluate

    spec = profile.model
    quantization = scoring_quantization(profile, method)
    # the test split's key predates the validation split: it stays {"variant": "base"}, so stored results stay valid
    what = {"variant": "base", **({"split": split} if split != "test" else {})}
    key = {**eval_key(profile, model_identity(spec), what), "quantization": quantization}

    def compute(folder):
        start = time.perf_counter()
        model, tokenizer = load_base(spec, quantization)
        result = evaluate(model, tokenizer, profile, split=split)
        return {**result, "variant": "base", "quantization": quantization, "wall_s": time.perf_counter() - start,
                **peak_memory_mb(), "provenance": provenance()}

    return store.cached("eval", key, compute, force=force)


def starting_bases(profile: Profile, methods, split: str = "test") -> dict:
    """``{quantization: base evaluation}`` of every base the ``methods`` start from (the profile's always first)."""
    bases = {scoring_quantization(profile): evaluate_base(profile, split=split)}
    for m in methods:
        q = scoring_quantization(profile, m)
        if q not in bases:
            bases[q] = evaluate_base(profile, split=split, method=m)
    return bases
