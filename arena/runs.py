"""Every cached run of a model: the base scored (``evaluate_base``, once per split and starting base), and one
method's size at the budget, training key and trained path, its checkpoints loaded back and the scores of a checkpoint
(``evaluate_step``) (book/definitions.md A5-A8). Everything here is stored in the results store under a key
of everything that determines it, so a finished run is never recomputed; ``benchmark`` orchestrates many of these, and
the analyses and rewinding read them.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from . import stock_fixtures, store
from .budget import at_size, match, Sized
from .distributed import is_main, main_first
from .errors import ArenaError
from .evaluate import evaluate
from .forgetting import against_base, log_probs, summarise_proxies
from .keys import base_eval_key, scoring_quantization, step_eval_key, train_key
from .methods import build, get_method, linear_targets
from .methods.init import lora_layers, subtract_adapter
from .methods.quantized import base_quantization
from .methods.registry import loadable_elsewhere, register_from, source_module
from .models import base_config, count_parameters, device, load_base, release_memory
from .paper_data import load_training_rows
from .profiles import Profile
from .provenance import peak_memory_mb, provenance
from .scores import resummarised
from .suite import build_suite, read_jsonl
from .train import checkpoint_dir, encode_dataset, load_weights, micro_batch, StoppedEarly, train, TrainSpec

def sized_method(profile: Profile, method: str, size: int | None = None) -> Sized:
    """The method at the profile's budget, or at an explicit ``size``."""
    config = base_config(profile.model)
    if size is None:
        return match(method, config, profile.budget)
    return at_size(method, config, size, profile.budget)


def train_spec(profile: Profile, sized: Sized, lr: float | None = None) -> TrainSpec:
    """The training settings of one method: ``lr`` if given, else the profile's shared rate for adapters or full
    finetuning (the paper's protocol), else the method's own default times ``lr_scale``."""
    method = get_method(sized.method)
    shared = profile.full_lr if method.config is None and method.wrap is None else profile.peft_lr
    lr = lr or shared or method.lr * profile.lr_scale
    return TrainSpec(method=method.name, size=sized.size, lr=lr, steps=profile.steps,
                     batch_size=profile.batch_size, grad_accum=profile.grad_accum, max_length=profile.max_length,
                     save_every=profile.save_every, seed=profile.seed, optimizer=profile.optimizer)


def training_rows(profile: Profile) -> list[dict]:
    """The profile's SFT rows: the paper's data (hub or a local file) for the paper profile, else the suite's."""
    if profile.uses_stock_tasks:
        local = profile.extra.get("train_file")
        if local == "fixture":  # a dry run: the release's schema, generated word problems
            local = str(stock_fixtures.sft_file())
        return load_training_rows(profile.domain, local, profile.n_train)

    return read_jsonl(build_suite(profile) / "wordproblems_train.jsonl")


def log_note(note: str) -> None:
    """A note the user must see (stderr, also under papermill): what the run does differently from what was asked."""
    import sys

    print(f"note: {note}", file=sys.stderr)


def _prepare(profile: Profile, spec: TrainSpec):
    """Base model, tokenizer and encoded examples."""
    quantization, note = base_quantization(profile, spec.method)
    if note:
        log_note(note)
    model, tokenizer = load_base(profile.model, quantization,
                                 dtype=training_dtype(get_method(spec.method), quantization, note, device()))
    model = prepare_for_training(model, quantization, gradient_checkpointing(profile))
    examples = encode_dataset(tokenizer, training_rows(profile), spec.max_length)
    return model, tokenizer, examples


def training_dtype(method, quantization: str | None, note: str | None, where: str) -> str:
    """The dtype the base loads in for training. Weights a method trains are fp32 master weights everywhere (bf16
    autocast does the compute): pure-bf16 AdamW rounds most small updates away (full FT at lr 1e-4 on SmolLM2: 14 %
    of weights changed in 3 steps, update norm 45 % of fp32's). A frozen full-precision fallback base on CUDA is
    bf16 (peft keeps the adapter itself in fp32); a 4-bit base keeps its loader's default."""
    if quantization:
        return "auto"
    trains_base = method.config is None and method.wrap is None  # full finetuning
    return "bf16" if note and where == "cuda" and not trains_base else "fp32"


def gradient_checkpointing(profile: Profile) -> bool:
    """Whether training recomputes activations: the profile's ``on``/``off``, or ``auto`` = on with CUDA."""
    return profile.gradient_checkpointing == "on" or (profile.gradient_checkpointing == "auto" and device() == "cuda")


def prepare_for_training(model, quantization: str | None, checkpointing: bool):
    """peft's k-bit preparation on a 4-bit base (fp32 norms and head, input gradients), and activation recomputation.
    Non-reentrant checkpointing: it needs no gradient on the (frozen) inputs of each block."""
    kwargs = {"use_reentrant": False}
    if quantization:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                               gradient_checkpointing_kwargs=kwargs)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        model.config.use_cache = False
    return model


def train_method(profile: Profile, spec: TrainSpec, force: bool = False, stop_after: int | None = None) -> dict:
    """Train one method along its path (cached; resumes an interrupted run). Returns the training record."""
    key = train_key(profile, spec)
    method = get_method(spec.method)

    def compute(folder: Path) -> dict:
        model, tokenizer, examples = _prepare(profile, spec)
        pad_id = tokenizer.pad_token_id
        init_batch = micro_batch(examples, spec, 0, 0, pad_id) if method.needs_init_batch else None
        import torch

        torch.manual_seed(spec.seed)  # adapter inits draw random numbers: the same seed gives the same run
        model = build(method, model, spec.size, init_batch=init_batch, steps=spec.steps)
        meta = {"base": key["base"], "method": method.name, "size": spec.size, "label": spec_label(spec),
                "save_init": method.config is not None or method.wrap is not None}
        record = train(model, examples, spec, folder, meta, pad_id, on_step=method.on_step, stop_after=stop_after)
        if stop_after is not None and stop_after < spec.steps:
            raise StoppedEarly(f"stopped after {stop_after} of {spec.steps} steps")  # leaves the run unfinished

        trainable = count_parameters(model)[0]
        return {**record, "key": key, "label": meta["label"], "trained_parameters": trainable,
                "base_quantization": key["quantization"], "base_note": base_quantization(profile, spec.method)[1],
                "provenance": provenance(),
                "n_examples": len(examples), "checkpoints": spec.save_steps(), "folder": str(folder)}

    if force:
        import shutil

        with main_first():  # under a launch only process 0 deletes, before any process starts the run again
            if is_main():
                shutil.rmtree(store.run_dir("train", key), ignore_errors=True)
    return store.cached("train", key, compute, label=spec_label(spec))


def spec_label(spec: TrainSpec) -> str:
    """The sized method a trained path is (``lora-r8``): the human part of its folder's name."""
    return get_method(spec.method).label(spec.size)


def load_trained(profile: Profile, spec: TrainSpec, step: int | None = None, merge: bool = True,
                 scoring: bool = False):
    """The model at ``step`` of a trained path (default: the end): base + method + checkpoint.

    Residual methods (PiSSA, MiLoRA, KeepLoRA) rebuild their base W0 - s*B0*A0 from the step-0 adapter instead of
    re-running their initialisation. ``merge`` folds the adapter into the weights (unquantised bases only);
    ``scoring`` loads it on the base it is scored on (``keys.scoring_quantization``: the full-precision one for
    vLLM), not necessarily the one it trained on.
    """
    key = train_key(profile, spec)
    folder = store.run_dir("train", key, spec_label(spec))
    step = spec.steps if step is None else step
    path = checkpoint_dir(folder, step)
    if not path.exists():
        raise ArenaError(f"no checkpoint at step {step} in {folder}; saved steps are {spec.save_steps()} "
                         "(train the method first: python -m arena train --method ...)")
    method = get_method(spec.method)
    if scoring:
        quantization = scoring_quantization(profile, spec.method)
    else:
        quantization = base_quantization(profile, spec.method)[0]
    model, tokenizer = load_base(profile.model, quantization)
    import torch

    torch.manual_seed(spec.seed)  # as in training: frozen random tensors a method creates (not saved) come back equal
    if method.config is None:
        model = build(method, model, spec.size)  # full FT, or a plain-torch method's own wrap
        load_weights(model, path, key["base"])
        return model.eval(), tokenizer
    from peft import get_peft_model

    config = method.config(spec.size, linear_targets(model), spec.steps)
    if hasattr(config, "init_lora_weights"):
        config.init_lora_weights = True  # the saved tensors replace any special init
    model = get_peft_model(model, config)
    if method.residual:
        load_weights(model, checkpoint_dir(folder, 0), key["base"])
        for _, layer in lora_layers(model):
            subtract_adapter(layer)  # the same residual the initialisation made
    load_weights(model, path, key["base"])
    if merge and not quantization:
        model = model.merge_and_unload()
    return model.eval(), tokenizer


def trained_loader(profile: Profile, spec: TrainSpec, step: int):
    """A picklable ``load_trained(..., scoring=True)`` for a fresh process (``evaluate``'s ``reload``), or None for a
    method defined in ``__main__``, which a fresh process cannot import."""
    method = get_method(spec.method)
    if not loadable_elsewhere(method):
        return None
    return functools.partial(_load_trained_elsewhere, source_module(method), profile, spec, step)


def _load_trained_elsewhere(module: str | None, profile: Profile, spec: TrainSpec, step: int):
    register_from(module)
    return load_trained(profile, spec, step, scoring=True)


def evaluate_step(profile: Profile, spec: TrainSpec, step: int | None = None, force: bool = False) -> dict:
    """General/Target scores and the forgetting proxies of one checkpoint (cached)."""

    step = spec.steps if step is None else step

    def compute(folder: Path) -> dict:
        start = time.perf_counter()
        model, tokenizer = load_trained(profile, spec, step, scoring=True)
        result = evaluate(model, tokenizer, profile, reload=trained_loader(profile, spec, step))
        texts = [r["text"] for r in read_jsonl(build_suite(profile) / "general_text.jsonl")]
        finetuned = log_probs(model, tokenizer, texts, profile.max_length)
        del model  # one model on the device at a time: two 7B bases in bf16 do not fit a 24 GB card
        release_memory()
        base, _ = load_base(profile.model, scoring_quantization(profile, spec.method))  # the base it is compared with
        per_doc = against_base(finetuned, base, tokenizer, texts, profile.max_length)
        del base
        release_memory()
        return {**result, "proxies": {**summarise_proxies(per_doc), "per_doc": per_doc}, "step": step,
                "variant": "trained", "eval_wall_s": time.perf_counter() - start, **peak_memory_mb(),
                "provenance": provenance()}

    return cached_eval(step_eval_key(profile, spec, step), compute, force=force)


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
        result = evaluate(model, tokenizer, profile, split=split, reload=functools.partial(load_base, spec, quantization))
        del model  # the caller loads the next model: this one must not hold the card meanwhile
        release_memory()
        return {**result, "variant": "base", "quantization": quantization, "wall_s": time.perf_counter() - start,
                **peak_memory_mb(), "provenance": provenance()}

    return cached_eval(key, compute, force=force)


def cached_eval(key: dict, compute, force: bool = False) -> dict:
    """``store.cached`` for an evaluation; its summary is recomputed from the stored items (``scores.resummarised``)."""
    return resummarised(store.cached("eval", key, compute, force=force))


def found_eval(key: dict) -> dict | None:
    """``store.find`` for an evaluation, likewise resummarised."""
    return resummarised(store.find("eval", key))


def starting_bases(profile: Profile, methods, split: str = "test") -> dict:
    """``{quantization: base evaluation}`` of every base the ``methods`` start from (the profile's always first)."""
    bases = {scoring_quantization(profile): evaluate_base(profile, split=split)}
    for m in methods:
        q = scoring_quantization(profile, m)
        if q not in bases:
            bases[q] = evaluate_base(profile, split=split, method=m)
    return bases


def stored_run(profile: Profile, spec: TrainSpec) -> tuple[dict, dict] | None:
    """The finished training and final evaluation records of a run, if both are in the store."""
    trained = store.find("train", train_key(profile, spec), spec_label(spec))
    scored = found_eval(step_eval_key(profile, spec, spec.steps))
    return (trained, scored) if trained and scored else None
