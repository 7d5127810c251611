"""The effective weight update of each adapted module, in fp32, from the adapter's own tensors (book/definitions.md
B1, F8).

dW = W_effective - W0, with W0 the weight the method started from: the *pretrained* weight (not a residual base), or
its dequantised 4-bit copy deq(Q(W0)) for a method trained on an nf4 base (``start_weight``):

- LoRA family (LoRA, PiSSA, MiLoRA, KeepLoRA, AdaLoRA): dW = (W_base - W0) + s B A, where W_base - W0 = -s B0 A0 for
  the residual initialisations and 0 otherwise (peft's ``get_delta_weight`` gives s B A);
- DoRA: dW = m * (W_base + s B A) / ||W_base + s B A||_row - W0 (the magnitude vector rescales each output row);
- OFT: dW = W0 (R^T - I) with R rebuilt by peft's own routine (Cayley-Neumann or exact), B5;
- IA3: dW = W0 * (l - 1), l broadcast over outputs, or over inputs for feed-forward modules;
- VeRA: peft's ``get_delta_weight`` (diag(lambda_b) B diag(lambda_d) A on the shared frozen projections);
- anything else (MiSS, BOFT, a user's method): the layer is copied, cast to fp32 and merged by peft; dW is the
  difference, exact up to fp32 rounding (never a bf16 or 4-bit merge).
"""

from __future__ import annotations

import copy

import torch

from .errors import ArenaError
from .oft_path import apply_blocks_to_weight, oft_rotation
from .tensors import f32



def is_quantized(weight) -> bool:
    """A bitsandbytes 4-bit or 8-bit weight (it cannot be written to or compared as a float matrix)."""
    return type(weight).__name__ in ("Params4bit", "Int8Params")


def custom_layers(model) -> list[tuple[str, torch.nn.Module]]:
    """``(name, module)`` of every layer a plain-torch method added (``Method.wrap``): the kit's convention is a
    ``delta_weight()`` method returning the layer's dW, which the analyses, rewinding and exports read."""
    return [(n, m) for n, m in model.named_modules() if callable(getattr(m, "delta_weight", None))]


def base_weight(layer) -> torch.Tensor:
    """The layer's base weight in fp32 on CPU; a 4-bit base is dequantised."""
    base = layer.get_base_layer()
    return _dequantized(base) if is_quantized(base.weight) else f32(base.weight, "cpu")


def start_weight(module, W0: torch.Tensor) -> torch.Tensor:
    """W_start, the weight a method trained from: the dequantised deq(Q(W0)) (fp32, CPU) when the module's base is
    4-bit, else ``W0`` itself. Analyses measure dW = W_after - W_start, so an nf4 method's update excludes the
    quantisation error deq(Q(W0)) - W0, which ``weight_analysis`` reports on its own."""
    get_base = getattr(module, "get_base_layer", None)
    base = get_base() if get_base else module
    if is_quantized(getattr(base, "weight", None)):
        return base_weight(module) if get_base else _dequantized(base)
    return W0


def _dequantized(linear) -> torch.Tensor:
    from peft.utils.integrations import dequantize_module_weight

    if getattr(getattr(linear.weight, "quant_state", None), "packing_format_for_cpu", False):
        raise ArenaError("this 4-bit weight was repacked by bitsandbytes' CPU inference path and cannot be "
                         "dequantised exactly; load the model with arena.models.load_base (it keeps the layout)")

    return f32(dequantize_module_weight(linear), "cpu")


def adapted_layers(model, adapter: str = "default"):
    """(module name without the peft prefix, layer) for every peft tuner layer holding ``adapter``."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer) and adapter in getattr(module, "active_adapters", [adapter]):
            yield name.removeprefix("base_model.model."), module


def effective_update(layer, W0: torch.Tensor, adapter: str = "default") -> torch.Tensor:
    """dW (fp32, shape of W0) of one peft layer relative to the pretrained weight ``W0``."""
    W0 = f32(W0, "cpu")
    base = base_weight(layer)
    if hasattr(layer, "lora_A") and adapter in layer.lora_A:
        delta = f32(_lora_delta(layer, adapter), "cpu")
        magnitude = getattr(layer, "lora_magnitude_vector", {})
        if adapter in magnitude:  # DoRA
            direction = base + delta
            norm = direction.norm(p=2, dim=1, keepdim=True)
            return f32(magnitude[adapter].weight, "cpu").reshape(-1, 1) * direction / norm - W0
        return (base - W0) + delta
    if hasattr(layer, "oft_R") and adapter in layer.oft_R:
        R = oft_rotation(layer, 1.0, adapter=adapter, blocks=True)
        return apply_blocks_to_weight(base, f32(R, "cpu")) - W0
    if hasattr(layer, "ia3_l") and adapter in layer.ia3_l:
        return base * f32(layer.ia3_l[adapter], "cpu") - W0
    if hasattr(layer, "vera_lambda_b") and adapter in layer.vera_lambda_b:
        return (base - W0) + f32(layer.get_delta_weight(adapter), "cpu")
    return _merged_fp32(layer, adapter) - W0


def _lora_delta(layer, adapter: str) -> torch.Tensor:
    """s B A from peft's ``get_delta_weight``; AdaLoRA's 4-bit layer has none, so its B (A * E) s / (r + 1e-5) is
    written out as peft's full-precision SVDLinear computes it."""
    if hasattr(layer, "lora_E") and not hasattr(layer, "get_delta_weight"):
        B, A, E = layer.lora_B[adapter], layer.lora_A[adapter], layer.lora_E[adapter]
        return B @ (A * E) * layer.scaling[adapter] / (layer.ranknum[adapter] + 1e-5)
    return layer.get_delta_weight(adapter)


def module_update(module, W0: torch.Tensor, adapter: str = "default") -> torch.Tensor:
    """dW of any analysed module: a peft layer (``effective_update``), a plain-torch method's layer (its
    ``delta_weight()``) or a fully finetuned ``nn.Linear``."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(module, BaseTunerLayer):
        return effective_update(module, W0, adapter)
    if callable(getattr(module, "delta_weight", None)):  # a plain-torch method's layer (Method.wrap)
        return f32(module.delta_weight(), "cpu")
    return f32(module.weight, "cpu") - f32(W0, "cpu")


def _merged_fp32(layer, adapter: str) -> torch.Tensor:
    """Merge a fp32 copy of one layer with peft's own merge; the model itself is left untouched. A 4-bit base is
    replaced in the copy by its dequantised fp32 weight, so the merge is never a 4-bit (re-quantising) one."""
    clone = copy.deepcopy(layer).to("cpu")
    base = clone.get_base_layer()
    if is_quantized(base.weight):
        linear = torch.nn.Linear(base.in_features, base.out_features, bias=base.bias is not None)
        linear.weight.data = _dequantized(base)
        if base.bias is not None:
            linear.bias.data = f32(base.bias, "cpu")
        clone.base_layer, clone.quantization_backend = linear, None
    clone = clone.float()
    clone.merge(adapter_names=[adapter])
    return f32(clone.get_base_layer().weight, "cpu")
