"""Whole-model weight-space analysis of a trained checkpoint (book/definitions.md B).

Streams one matrix at a time: the pretrained W0 is read lazily from the base's safetensors (for a method trained on
a 4-bit base, its dequantised copy deq(Q(W0)) is the start, and ||deq(Q(W0)) - W0|| / ||W0|| is reported per matrix
as ``quantization_error``), its SVD comes from an on-disk cache keyed by the starting weights (computed once for all
methods and checkpoints, F15), the update dW is computed in fp32 from the adapter's own tensors
(``updates.effective_update``), and only per-matrix summaries are
kept, plus the full profiles of one "figure" matrix (the paper plots layer 18 of 28, ``mlp.down_proj``). Results are
stored per checkpoint, so a finished analysis is never recomputed.
"""

from __future__ import annotations

import re
import time
from typing import Callable

import torch

from . import store
from .assets import cache_dir, smollm2_dir
from .keys import spectra_key, train_key
from .methods import get_method, linear_targets
from .models import model_identity, random_base_folder, smoke_model
from .profiles import Profile
from .progress import progress
from .provenance import peak_memory_mb
from .runs import load_trained
from .spectra import base_svd, cached_base_svd, intruder_dimensions, singular_vector_alignment, update_profile
from .updates import adapted_layers, custom_layers, module_update, start_weight

_LAYER = re.compile(r"layers\.(\d+)\.")
MLP_KINDS = ("gate_proj", "up_proj", "down_proj")


def pretrained_source(profile: Profile) -> Callable[[str], torch.Tensor]:
    """``name -> W0`` (fp32, CPU) for the profile's base, read one tensor at a time where the base is a file."""
    spec = profile.model
    if spec.source == "smoke":
        state = {k: v.detach() for k, v in smoke_model().state_dict().items()}
        return lambda name: state[name].float()
    if spec.source == "embedded":
        files = [smollm2_dir() / "model.safetensors"]
    elif spec.source == "architecture":  # a dry run's random base, written like a checkpoint
        files = sorted(random_base_folder(spec.repo_id, spec.layers).glob("*.safetensors"))
    else:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(spec.repo_id, revision=spec.revision, allow_patterns=["*.safetensors"])
        from pathlib import Path

        files = sorted(Path(folder).glob("*.safetensors"))
    from safetensors import safe_open

    index = {}
    for f in files:
        with safe_open(str(f), framework="pt") as handle:
            index |= {k: f for k in handle.keys()}

    def read(name: str) -> torch.Tensor:
        with safe_open(str(index[name]), framework="pt") as handle:
            return handle.get_tensor(name).float()

    return read


def _layer_module(name: str) -> tuple[int | None, str]:
    match = _LAYER.search(name)
    return (int(match.group(1)) if match else None), name.rsplit(".", 1)[-1]


def figure_layer(n_layers: int) -> int:
    """The paper's figure matrix is layer 18 of Qwen's 28; the same relative depth on another model."""
    return round(18 / 28 * n_layers)


def figure_matrix(n_layers: int, modules: tuple[str, ...] = ()) -> str:
    """The matrix whose full profiles are kept: the paper's ``mlp.down_proj`` at ``figure_layer``, or, when the
    analysis covers only ``modules`` (``Profile.spectra_modules``) and not down_proj, the first of them there."""
    kind = "down_proj" if not modules or "down_proj" in modules else modules[0]
    return f"model.layers.{figure_layer(n_layers)}.{'mlp' if kind in MLP_KINDS else 'self_attn'}.{kind}"


def updates_of(model, method_is_full: bool, targets: list[str]):
    """(name, updated module) for each analysed matrix: peft layers; a plain-torch method's layers that expose
    ``delta_weight()``; or every targeted linear for full FT."""
    if not method_is_full:
        yield from adapted_layers(model)
        return

    custom = custom_layers(model)
    if custom:
        yield from custom
        return
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in targets and isinstance(module, torch.nn.Linear):
            yield name, module


def analyse_model(model, read_w0, base_id: str, full: bool, targets: list[str], figure: str | None,
                  progress_desc: str = "spectra", modules: tuple[str, ...] = ()) -> dict:
    """Per-matrix spectral summaries of ``model`` against the pretrained weights (see module docstring), over the
    matrices whose module kind is in ``modules`` (every adapted matrix when empty)."""

    svd_dir = cache_dir() / "svd" / re.sub(r"[^A-Za-z0-9_.-]", "_", base_id)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # SVDs on the GPU when there is one
    rows, curves = [], None
    items = [(name, module) for name, module in updates_of(model, full, targets)
             if not modules or name.rsplit(".", 1)[-1] in modules]
    for name, module in progress(items, desc=progress_desc, unit="matrix"):
        pretrained = read_w0(name + ".weight")
        W0 = start_weight(module, pretrained)  # deq(Q(W0)) on a 4-bit base: the weight the method started from
        dW = module_update(module, W0)
        quantization_error = float((W0 - pretrained).norm() / pretrained.norm()) if W0 is not pretrained else 0.0
        W0, dW = W0.to(device), dW.to(device)
        svd = cached_base_svd(W0, svd_dir, name)
        prof = update_profile(W0, dW, svd)
        W1 = W0 + dW
        W1_svd = base_svd(W1)  # one SVD of the finetuned matrix serves intruders and SVA
        intruders = intruder_dimensions(svd, W1, W1_svd=W1_svd)
        layer, kind = _layer_module(name)
        prof = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in prof.items()}
        row = {"name": name, "layer": layer, "module": kind, "stable_rank": prof["stable_rank"],
               "dW_fro": float(dW.norm()), "relative_dW": float(dW.norm() / W0.norm()),
               "intruders": intruders["count"], "top_sv": prof["top_singular_values"].tolist(),
               "quantization_error": quantization_error}
        for key in ("fluctuation_retention", "fluctuation_adaptation", "fluctuation_scale_free_retention",
                    "fluctuation_scale_free_adaptation", "retention_mean", "retention_max", "adaptation_mean",
                    "adaptation_max"):
            row[key] = prof[key]
        if hasattr(module, "oft_R"):
            sva = singular_vector_alignment(svd, W1, W1_svd)
            row["sva_mean"], row["sva_min"] = float(sva.mean()), float(sva.min())
        rows.append(row)
        if name == figure:
            curves = {k: prof[k].tolist() for k in ("retention", "adaptation", "sigma", "retention_normalised",
                                                    "adaptation_normalised", "sigma_over_max", "sigma_over_sum")}
    return {"rows": rows, "figure": figure, "curves": curves}


def analyse_checkpoint(profile: Profile, spec, step: int | None = None, force: bool = False) -> dict:
    """The whole-model analysis of one trained checkpoint (cached in the results store)."""

    step = spec.steps if step is None else step
    tkey = train_key(profile, spec)
    key = spectra_key(profile, spec, step)

    def compute(folder) -> dict:
        start = time.perf_counter()
        model, _ = load_trained(profile, spec, step, merge=False)
        full = get_method(spec.method).config is None
        targets = linear_targets(model)
        n_layers = model.config.num_hidden_layers
        figure = figure_matrix(n_layers, profile.spectra_modules)
        start_id = model_identity(profile.model) + (f"-{tkey['quantization']}" if tkey["quantization"] else "")
        with torch.no_grad():  # the SVD cache is keyed by the starting weights: a 4-bit base has its own
            out = analyse_model(model, pretrained_source(profile), start_id, full, targets, figure,
                                progress_desc=f"spectra {spec.method}", modules=profile.spectra_modules)
        return {**out, "method": spec.method, "step": step, "n_layers": n_layers,
                "wall_s": time.perf_counter() - start, **peak_memory_mb()}

    return store.cached("spectra", key, compute, force=force)
