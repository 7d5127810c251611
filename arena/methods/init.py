"""The kit's LoRA initialisations that peft 0.21 lacks (book/definitions.md A8, F5, F6).

Both leave the starting model equal to the base: the base weight becomes the residual W0 - s*B0*A0 (s = alpha/r),
as peft does for PiSSA. The release's KeepLoRA skipped that compensation and keyed its gradients by unwrapped names,
so it could touch no module at all (F6); here a run that initialises no module raises.
"""

from __future__ import annotations

import torch

from ..errors import ArenaError


def lora_layers(model, adapter: str = "default"):
    """(name, layer) for every peft LoRA layer of ``model`` holding ``adapter``."""
    from peft.tuners.lora import LoraLayer

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer) and adapter in m.lora_A]
    if not layers:
        raise ArenaError("no LoRA layers found to initialise")
    return layers


def _dense_weight(layer) -> torch.Tensor:
    weight = layer.get_base_layer().weight
    if weight.dtype not in (torch.float32, torch.float16, torch.bfloat16) or type(weight).__name__ == "Params4bit":
        raise ArenaError("this initialisation rewrites the base weights and needs an unquantised base "
                         "(run with quantization='none')")
    return weight


def _check_rank(weight: torch.Tensor, r: int, k: int | None = None) -> None:
    if r > min(weight.shape):
        raise ArenaError(f"rank {r} exceeds the smallest side of a {tuple(weight.shape)} weight; use a smaller r")
    if k is not None and k >= weight.shape[1]:
        raise ArenaError(f"KeepLoRA removes the top {k} = 4r right singular directions, which span the whole input "
                         f"of a {tuple(weight.shape)} weight; use a smaller r")


def minor_components(weight: torch.Tensor, r: int, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MiLoRA factors: with W = U S V^T (singular values descending), take the r smallest components and split them
    evenly, A = sqrt(S_min / s) V_min^T and B = U_min sqrt(S_min / s), so that s * B A = U_min S_min V_min^T."""
    _check_rank(weight, r)
    u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
    root = torch.sqrt(s[-r:] / scaling)
    return u[:, -r:] * root, root[:, None] * vh[-r:]


def keeplora_factors(weight: torch.Tensor, grad: torch.Tensor, r: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """KeepLoRA factors: G_res = G - G V_k V_k^T with V_k the top-k right singular vectors of W; with the rank-r SVD
    G_res ~ U S V^T, B = U S and A = V^T (A is then frozen)."""
    _check_rank(weight, r, k)
    _, _, vh = torch.linalg.svd(weight.float(), full_matrices=False)
    v_k = vh[: min(k, vh.shape[0])].T
    g = grad.float()
    residual = g - (g @ v_k) @ v_k.T
    u, s, vh_res = torch.linalg.svd(residual, full_matrices=False)
    return u[:, :r] * s[:r], vh_res[:r]


def subtract_adapter(layer, adapter: str = "default") -> None:
    """Base weight <- W - s B A with the layer's current factors: the residual base of PiSSA, MiLoRA and KeepLoRA.
    In fp32, then one rounding to the base dtype (as peft does for PiSSA): bf16 - bf16(sBA) would round twice."""
    weight = _dense_weight(layer)
    a, b = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
    with torch.no_grad():
        product = (b.float() @ a.float()).to(weight.device)
        weight.copy_((weight.float() - layer.scaling[adapter] * product).to(weight.dtype))


def _install(layer, adapter: str, b: torch.Tensor, a: torch.Tensor) -> None:
    with torch.no_grad():
        layer.lora_A[adapter].weight.copy_(a.to(layer.lora_A[adapter].weight.dtype))
        layer.lora_B[adapter].weight.copy_(b.to(layer.lora_B[adapter].weight.dtype))
    subtract_adapter(layer, adapter)


def milora_init(model, r: int, init_batch=None, adapter: str = "default") -> None:
    """MiLoRA (Wang et al., 2024): adapt the minor singular components (book/definitions.md A8, F5)."""
    for _, layer in lora_layers(model, adapter):
        b, a = minor_components(_dense_weight(layer), r, layer.scaling[adapter])
        _install(layer, adapter, b, a)


def keeplora_init(model, r: int, init_batch: dict, adapter: str = "default", k_factor: int = 4) -> None:
    """KeepLoRA (book/definitions.md A8): initialise from the first micro-batch's full-model gradient outside W's top-4r
    right subspace, freeze A, train B."""
    layers = lora_layers(model, adapter)
    weights = [_dense_weight(layer) for _, layer in layers]
    flags = [w.requires_grad for w in weights]
    for w in weights:
        w.requires_grad_(True)
        w.grad = None
    with model.disable_adapter():
        batch = {k: v.to(weights[0].device) for k, v in init_batch.items()}
        model(**batch).loss.backward()
    for (name, layer), weight, flag in zip(layers, weights, flags):
        if weight.grad is None:
            raise ArenaError(f"KeepLoRA: no gradient reached {name}; is it used in the forward pass?")
        b, a = keeplora_factors(weight.detach(), weight.grad, r, k_factor * r)
        weight.grad = None
        weight.requires_grad_(flag)
        _install(layer, adapter, b, a)
        layer.lora_A[adapter].weight.requires_grad_(False)
    model.zero_grad(set_to_none=True)
