"""Every results-store key and version: what determines a trained path, an evaluation, an analysis, a rewinding point
and a base's stored activations. A key is a JSON-ready dict; the store names the run's folder by its hash
(``store.key_hash``), so a finished run is found again and never recomputed. Bump a version when the code that fills
such a run changes what it holds. (The evaluation suite's own folder is keyed by its sizes in ``suite.suite_dir``.)
"""

from __future__ import annotations

from dataclasses import asdict

from . import store
from .geometry import default_module_set
from .methods.quantized import base_quantization
from .methods.registry import fingerprint, get_method
from .models import base_config, compute_precision, model_identity, resolve_quantization
from .paper_data import FILES, REPO
from .profiles import Profile
from .scores import SCORING_VERSION, STOCK_GEN_TOKENS
from .suite import suite_dir, SUITE_VERSION, training_data_name, validation_name

TRAIN_VERSION = 1  # the trainer: what a finished training run contains
SPECTRA_VERSION = 1  # weight_analysis
GEOMETRY_VERSION = 2  # activation_analysis and the base activations it stores; 2: 1024 tokens per dataset
REWIND_VERSION = 2  # rewind; 2: points scored merged, like the final checkpoint


def scoring_quantization(profile: Profile, method: str | None = None) -> str | None:
    """The base's quantisation when scoring the base (``method`` None) or a method: the base it started from (the
    profile's, or full precision for a method with no 4-bit path, ``methods.quantized``), except that vLLM scores a
    merge into the full-precision base (``arena/vllm_backend.py``)."""
    if profile.eval_backend == "vllm":
        return None
    if method is None:
        return resolve_quantization(profile)
    return base_quantization(profile, method)[0]


def train_key(profile: Profile, spec) -> dict:
    """Everything that determines a trained path: base, quantisation, data, trainer version, hyperparameters."""
    code = fingerprint(get_method(spec.method))  # a user's method: its code, so an edit retrains it
    hyper = asdict(spec)
    if hyper["optimizer"] == "adamw":
        del hyper["optimizer"]  # the default stays out of the key: runs stored before the option existed stay valid
    return {"base": model_identity(profile.model), "quantization": base_quantization(profile, spec.method)[0],
            "data": training_data_name(profile), "n_train": profile.n_train, "train_version": TRAIN_VERSION,
            **hyper, **({"method_code": code} if code else {}), **_paper_data(profile)}


def _paper_data(profile: Profile) -> dict:
    """The training set of a profile that trains on the paper's data: its domain and file (the CPU profiles train on
    the suite's generated problems, which ``data`` already names, so their keys stay as they were)."""
    if not profile.uses_stock_tasks:
        return {}
    source = profile.extra.get("train_file") or f"hub:{REPO}/{FILES.get(profile.domain, profile.domain)}"
    return {"domain": profile.domain, "train_file": str(source)}


def eval_key(profile: Profile, model_id: str, what: dict) -> dict:
    """Everything that determines an evaluation: base identity, suite content (and, for ``split="validation"``, the
    validation split's), quantisation, compute precision, and the model variant."""
    split = {"validation": validation_name(profile)} if what.get("split") == "validation" else {}
    backend = {"backend": profile.eval_backend} if profile.eval_backend != "hf" else {}  # hf: stored keys stay valid
    # how the suite is scored (scores.SCORING_VERSION); the stock tasks also by their generation lengths
    stock = {"scoring": SCORING_VERSION}
    if profile.uses_stock_tasks:  # which items of each stock task each split scores (scores.stock_slices)
        stock |= {"generation": STOCK_GEN_TOKENS, "stock_validation": dict(sorted(profile.stock_validation.items())),
                  "stock_limits": dict(sorted(profile.stock_limits.items())), "stock_seed": profile.seed}
        if profile.dry_run:  # fixtures instead of the stock datasets, and short answers
            stock |= {"dry_run": True, "generation": profile.extra.get("max_gen_toks")}
    return {**stock, "base": model_id, "suite": suite_dir(profile).name, "suite_version": SUITE_VERSION,
            "quantization": scoring_quantization(profile), "compute": compute_precision(), **split, **backend,
            **what}


def base_eval_key(profile: Profile, split: str = "test", method: str | None = None) -> dict:
    """The base's evaluation on ``split``: the base ``method`` started from (the profile's when None)."""
    # the test split's key predates the validation split: it stays {"variant": "base"}, so stored results stay valid
    what = {"variant": "base", **({"split": split} if split != "test" else {})}
    return {**eval_key(profile, model_identity(profile.model), what),
            "quantization": scoring_quantization(profile, method)}


def step_eval_key(profile: Profile, spec, step: int) -> dict:
    """One checkpoint's evaluation."""
    tkey = train_key(profile, spec)
    return eval_key(profile, tkey["base"], {"variant": "trained", "train": store.key_hash(tkey), "step": step})


def point_key(profile: Profile, spec, point: dict, split: str) -> dict:
    """One rewinding point's evaluation (``rewind``)."""
    tkey = train_key(profile, spec)
    return eval_key(profile, tkey["base"], {"variant": "rewind", "train": store.key_hash(tkey), "point": point,
                                            "split": split, "rewind_version": REWIND_VERSION})


def spectra_key(profile: Profile, spec, step: int) -> dict:
    """One checkpoint's weight-space analysis (``weight_analysis``), over ``Profile.spectra_modules`` when set."""
    modules = {"modules": list(profile.spectra_modules)} if profile.spectra_modules else {}  # all: keys as before
    return {"train": store.key_hash(train_key(profile, spec)), "step": step, "analysis_version": SPECTRA_VERSION,
            **modules}


def default_modules(profile: Profile) -> list[str]:
    """The activation analysis's module set on the profile's base (``geometry.default_module_set``)."""

    return list(default_module_set(base_config(profile.model).num_hidden_layers))


def geometry_key(profile: Profile, spec, step: int, modules: list[str], max_tokens: int) -> dict:
    """One checkpoint's activation geometry and CSD (``activation_analysis``). It names the suite folder, whose
    prompts it runs: the training key no longer does (``suite.training_data_name``), and without it a new suite would
    have read geometry measured on the old prompts."""
    return {"train": store.key_hash(train_key(profile, spec)), "step": step, "modules": modules,
            "max_tokens": max_tokens, "analysis_version": GEOMETRY_VERSION, "suite": suite_dir(profile).name,
            **_stock_prompts(profile)}


def _stock_prompts(profile: Profile) -> dict:
    """Where a hub profile's activation prompts come from (``evaluate.stock_prompts``: the stock tasks' test slices,
    or a dry run's fixtures); nothing for the CPU profiles, whose suite folder (in the key beside it) names them."""
    if not profile.uses_stock_tasks:
        return {}
    return {"prompts": {"stock_limits": dict(sorted(profile.stock_limits.items())),
                        "stock_validation": dict(sorted(profile.stock_validation.items())), "seed": profile.seed,
                        "dry_run": profile.dry_run}}


def activations_key(profile: Profile, modules: list[str], max_tokens: int, quantization: str | None) -> dict:
    """A starting base's stored activations (full precision or ``quantization``) on the suite's prompts."""
    return {"base": model_identity(profile.model), "suite": suite_dir(profile).name, "modules": modules,
            "max_tokens": max_tokens, "quantization": quantization, "version": GEOMETRY_VERSION,
            **_stock_prompts(profile)}
