"""Trained runs out of the kit, in standard formats: a peft adapter folder, or a merged Hugging Face model.

- A peft method whose adapter applies to the unchanged base (LoRA, DoRA, OFT, IA3, VeRA, MiSS, BOFT, ...) exports as
  ``adapter_config.json`` + ``adapter_model.safetensors`` (peft's ``save_pretrained``); ``base_model_name_or_path``
  names the base folder or hub id, so ``PeftModel.from_pretrained(base, out)`` rebuilds the kit's model.
- Full finetuning, plain-torch methods (``Method.wrap``), the residual initialisations (their adapter sits on a
  rewritten base W0 - s B0 A0) and AdaLoRA (the kit keeps its masked ranks, which peft's adapter files prune) export
  as a merged model: ``save_pretrained`` of the base with every update folded in, in fp32, plus the tokenizer.

A run trained on a 4-bit base exports its adapter the same way (the adapter is full precision; load the base in
4-bit to use it as trained). A merged export is always made on the full-precision base.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .assets import smollm2_dir
from .errors import ArenaError
from .methods import get_method
from .methods.quantized import base_quantization
from .models import random_base_folder, smoke_folder
from .runs import load_trained, sized_method, train_spec
from .updates import custom_layers


def base_path(spec) -> str:
    """What ``from_pretrained`` loads the profile's base from: the smoke or embedded folder, or the hub id."""
    if spec.source == "smoke":
        return str(smoke_folder())
    if spec.source == "embedded":
        return str(smollm2_dir())
    if spec.source == "architecture":
        return str(random_base_folder(spec.repo_id, spec.layers))
    return spec.repo_id


def adapter_exportable(method) -> bool:
    """Whether the run leaves as a peft adapter on the unchanged base (else as a merged model)."""
    return method.config is not None and not method.residual and method.name != "adalora"


def export_run(profile, method: str, out: Path, size: int | None = None, lr: float | None = None,
               step: int | None = None) -> dict:
    """Write the trained run (its final checkpoint, or ``step``) to ``out``; returns what was written."""

    m = get_method(method)
    spec = train_spec(profile, sized_method(profile, method, size), lr)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ArenaError(f"{out} exists and is not empty; choose a new --out folder")
    if adapter_exportable(m):
        model, tokenizer = load_trained(profile, spec, step, merge=False)
        model.peft_config["default"].base_model_name_or_path = base_path(profile.model)
        model.save_pretrained(str(out))
        kind = "peft adapter"
    else:
        model, tokenizer = _merged(profile, spec, step)
        model.save_pretrained(str(out))
        kind = "merged model"
    tokenizer.save_pretrained(str(out))
    return {"method": method, "label": m.label(spec.size), "step": step or spec.steps, "kind": kind, "out": str(out),
            "base": base_path(profile.model)}


def _merged(profile, spec, step):
    """The run on its full-precision base with every update folded into the weights (fp32)."""

    if base_quantization(profile, spec.method)[0]:
        raise ArenaError(f"{spec.method} trained on a 4-bit base cannot be merged into full-precision weights here; "
                         "train it with QUANT=none to export a merged model")
    model, tokenizer = load_trained(profile, spec, step, merge=True)
    layers = custom_layers(model)
    if layers:  # a plain-torch method: fold each layer's delta_weight() into the linear it wraps
        model = _fold_custom(model, layers)
    return model.float(), tokenizer


def _fold_custom(model, layers):
    """Replace each plain-torch layer by an ``nn.Linear`` holding W0 + dW (its ``delta_weight()``) and its bias."""
    named = dict(model.named_modules())
    with torch.no_grad():
        for name, layer in layers:
            inner = next((c for c in layer.modules() if isinstance(c, torch.nn.Linear) and c is not layer), None)
            if inner is None:
                raise ArenaError(f"{name} has delta_weight() but wraps no nn.Linear; export needs the wrapped layer")
            linear = torch.nn.Linear(inner.in_features, inner.out_features, bias=inner.bias is not None)
            linear.weight.copy_(inner.weight.float() + layer.delta_weight().float())
            if inner.bias is not None:
                linear.bias.copy_(inner.bias.float())
            parent, _, child = name.rpartition(".")
            setattr(named[parent] if parent else model, child, linear)
    return model
