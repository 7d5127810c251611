"""Activation-space distortion: how far a finetuned module moves the base model's activations, and how (spec C1-C5).

Two halves:

* pure metrics on token-activation matrices ``X`` of shape ``[n_tokens, d]`` (``csd``, ``token_drift``,
  ``gram_distortion``, ``procrustes``, ``linear_cka``, ``pca_subspace_distance``, bundled by ``geometry_metrics``);
* ``capture_activations``, which collects those matrices from a model with forward hooks, and
  ``default_module_set``, the paper's ``paper8`` modules scaled to a model's depth.

Every metric works in float32 whatever the input dtype; scalar sums are taken in float64. Linear convention: a module
computes ``y = W h`` with ``W`` of shape ``[d_out, d_in]`` (``torch.nn.Linear``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .tensors import f32

EPS = 1e-12  # the spec's epsilon (C2, C3)
PEFT_PREFIX = "base_model.model."  # what peft puts in front of the wrapped model's module names
PAPER_LAYERS = (9, 18)  # paper8 layers (C4), out of ...
PAPER_DEPTH = 28  # ... the 28 layers of the paper's models
PAPER_KINDS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.down_proj")



def _centre(x: torch.Tensor) -> torch.Tensor:
    x = f32(x)
    return x - x.mean(dim=0, keepdim=True)


def _pair(X0: torch.Tensor, X1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if X0.ndim != 2 or X0.shape != X1.shape:
        raise ValueError(f"need two [n, d] matrices of the same shape, got {tuple(X0.shape)} and {tuple(X1.shape)}")
    return f32(X0), f32(X1)


# ---------------------------------------------------------------------------------------------------------------- CSD
def csd(W0: torch.Tensor, dW: torch.Tensor, H: torch.Tensor, eps: float = EPS, chunk: int = 512) -> dict:
    """Capability-conditioned drift of one linear module on the tokens of one dataset (spec C2).

    ``H`` holds the **base** model's inputs to the module, ``[n, d_in]``, so every method is scored on the same tokens;
    ``W0`` is the base weight and ``dW = W_ft - W0`` (merged), both ``[d_out, d_in]``.

    * ``abs = mean_t ||dW h_t||^2``
    * ``rel = abs / (mean_t ||W0 h_t||^2 + eps)``
    * ``update_norm = abs / ((||dW||_F^2 + eps) (mean_t ||h_t||^2 + eps))``

    plus ``n_tokens``, ``dW_fro2``, ``mean_h2`` and ``mean_W0h2``. Products are fp32 in chunks of ``chunk`` tokens.
    """
    W0, dW, H = f32(W0), f32(dW), f32(H)
    if W0.shape != dW.shape or H.ndim != 2 or H.shape[1] != W0.shape[1]:
        raise ValueError(f"shapes do not fit y = W h: W0 {tuple(W0.shape)}, dW {tuple(dW.shape)}, H {tuple(H.shape)}")
    n = H.shape[0]
    if n == 0:
        raise ValueError("H has no tokens")
    s_dwh = s_w0h = s_h = 0.0
    for i in range(0, n, chunk):
        h = H[i:i + chunk]
        s_dwh += (h @ dW.T).pow(2).sum(dtype=torch.float64).item()
        s_w0h += (h @ W0.T).pow(2).sum(dtype=torch.float64).item()
        s_h += h.pow(2).sum(dtype=torch.float64).item()
    dw2 = dW.pow(2).sum(dtype=torch.float64).item()
    ab, w0h2, h2 = s_dwh / n, s_w0h / n, s_h / n
    return {"abs": ab, "rel": ab / (w0h2 + eps), "update_norm": ab / ((dw2 + eps) * (h2 + eps)),
            "n_tokens": n, "dW_fro2": dw2, "mean_h2": h2, "mean_W0h2": w0h2}


# ------------------------------------------------------------------------------------------------ geometry (spec C3)
def token_drift(X0: torch.Tensor, X1: torch.Tensor) -> dict:
    """Per-token drift between base ``X0`` and finetuned ``X1`` activations of the same tokens (spec C3).

    ``cos_t = cos(h0_t, h1_t)`` gives ``mean_cosine``, ``mean_cosine_drift = mean(1 - cos_t)`` and the mean and median
    of ``arccos(cos_t)`` in radians; ``rho_t = ||h1_t|| / ||h0_t||`` gives
    ``mean_abs_log_norm_ratio = mean |log rho_t|``, ``mean_norm_ratio`` and ``std_norm_ratio`` (population std).
    """
    X0, X1 = _pair(X0, X1)
    n0, n1 = X0.norm(dim=1), X1.norm(dim=1)
    cos = ((X0 * X1).sum(dim=1) / (n0 * n1).clamp_min(EPS)).clamp(-1.0, 1.0)
    ang = torch.arccos(cos)
    rho = n1 / n0.clamp_min(EPS)
    # log of each norm rather than of the ratio: exact for a pure scaling, and no overflow for near-zero rows.
    log_rho = torch.log(n1.clamp_min(EPS)) - torch.log(n0.clamp_min(EPS))
    return {"mean_cosine": cos.mean().item(), "mean_cosine_drift": (1.0 - cos).mean().item(),
            "mean_angular_drift": ang.mean().item(), "median_angular_drift": ang.median().item(),
            "mean_abs_log_norm_ratio": log_rho.abs().mean().item(), "mean_norm_ratio": rho.mean().item(),
            "std_norm_ratio": rho.std(correction=0).item()}


def gram_distortion(X0: torch.Tensor, X1: torch.Tensor, max_tokens: int = 1024, seed: int = 0) -> float:
    """Cosine-Gram distortion ``||Z1 Z1^T - Z0 Z0^T||_F / (||Z0 Z0^T||_F + eps)`` (spec C3 ``gram_cosine_dist``).

    ``Z`` are the rows L2-normalised, not centred; above ``max_tokens`` rows the same random subset (numpy, ``seed``) is
    taken from both. It ignores any rotation of the whole space and sees only changes in angles between tokens.
    """
    X0, X1 = _pair(X0, X1)
    n = X0.shape[0]
    if n > max_tokens:
        # sorted so the subset keeps token order; which numpy sampler the paper used is not known (spec C3).
        idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, size=max_tokens, replace=False)))
        X0, X1 = X0[idx], X1[idx]
    Z0 = X0 / X0.norm(dim=1, keepdim=True).clamp_min(EPS)
    Z1 = X1 / X1.norm(dim=1, keepdim=True).clamp_min(EPS)
    G0 = Z0 @ Z0.T
    return ((Z1 @ Z1.T - G0).norm() / (G0.norm() + EPS)).item()


def procrustes(X0: torch.Tensor, X1: torch.Tensor) -> dict:
    """How much of the movement ``X0 -> X1`` is one global rotation (orthogonal Procrustes, spec C3).

    Columns of both are mean-centred first (for the raw residual too). With ``U S V^T = SVD(X1^T X0)`` and
    ``R = U V^T`` (reflections allowed, no scaling), ``raw_residual = ||X1 - X0||_F / ||X0||_F``,
    ``proc_residual = ||X1 R - X0||_F / ||X0||_F`` and ``proc_improvement = raw - proc``.
    """
    X0, X1 = _pair(X0, X1)
    X0, X1 = _centre(X0), _centre(X1)
    U, _, Vh = torch.linalg.svd(X1.T @ X0, full_matrices=False)
    den = X0.norm() + EPS
    raw = ((X1 - X0).norm() / den).item()
    proc = ((X1 @ (U @ Vh) - X0).norm() / den).item()
    return {"raw_residual": raw, "proc_residual": proc, "proc_improvement": raw - proc}


def linear_cka(X0: torch.Tensor, X1: torch.Tensor) -> float:
    """Centred linear CKA ``||X0^T X1||_F^2 / (||X0^T X0||_F ||X1^T X1||_F)`` (spec C3).

    The paper's page shows the formula without centring; the code centres. 1 for any rotation or uniform scaling.
    """
    X0, X1 = _pair(X0, X1)
    X0, X1 = _centre(X0), _centre(X1)
    if X0.shape[0] < X0.shape[1]:
        # same value through the n x n token Grams: ||A^T B||_F^2 = <A A^T, B B^T>_F and ||A^T A||_F = ||A A^T||_F.
        K0, K1 = X0 @ X0.T, X1 @ X1.T
        num, d0, d1 = (K0 * K1).sum(dtype=torch.float64), K0.norm(), K1.norm()
    else:
        num, d0, d1 = (X0.T @ X1).pow(2).sum(dtype=torch.float64), (X0.T @ X0).norm(), (X1.T @ X1).norm()
    return (num / (d0.double() * d1.double() + EPS)).item()


def _top_directions(X: torch.Tensor, k: int) -> torch.Tensor:
    # exact SVD (deterministic) where the paper used randomised torch.pca_lowrank; signs do not matter for projectors.
    return torch.linalg.svd(_centre(X), full_matrices=False)[2][:k].T


def pca_subspace_distance(X0: torch.Tensor, X1: torch.Tensor, k: int) -> float:
    """Distance between the top-``k`` principal subspaces, ``||P0 - P1||_F / sqrt(2k)`` in [0, 1] (spec C3).

    ``P = V_k V_k^T`` from each centred ``X``; ``k`` is clamped to ``min(n, d)``. Computed without forming the d x d
    projectors: ``||P0 - P1||_F^2 = 2k - 2 ||V0^T V1||_F^2``, i.e. ``sqrt(1 - mean cos^2 of the principal angles)``.
    """
    X0, X1 = _pair(X0, X1)
    k = max(1, min(int(k), *X0.shape))
    overlap = (_top_directions(X0, k).T @ _top_directions(X1, k)).pow(2).sum().item()
    return math.sqrt(min(1.0, max(0.0, 1.0 - overlap / k)))


def geometry_metrics(X0: torch.Tensor, X1: torch.Tensor, ks: tuple[int, ...] = (32, 64), seed: int = 0) -> dict:
    """All spec-C3 geometry metrics for one (dataset, module): base ``X0`` vs finetuned ``X1``, truncated to common n.

    Keys: the ``token_drift`` keys, ``gram_cosine_dist``, the ``procrustes`` keys, ``cka``, ``pca_dist_k{k}``.
    """
    n = min(X0.shape[0], X1.shape[0])
    X0, X1 = _pair(X0[:n], X1[:n])
    out = token_drift(X0, X1)
    out["gram_cosine_dist"] = gram_distortion(X0, X1, seed=seed)
    out.update(procrustes(X0, X1))
    out["cka"] = linear_cka(X0, X1)
    for k in ks:
        out[f"pca_dist_k{k}"] = pca_subspace_distance(X0, X1, k)
    return out


# ------------------------------------------------------------------------------------------- capture (spec C1, C4)
def default_module_set(n_layers: int, kinds: tuple[str, ...] = PAPER_KINDS) -> list[str]:
    """The ``paper8`` modules (spec C4: layers 9 and 18 of 28; q, k, v, down) at the same relative depths.

    Layers ``round(n * 9/28)`` and ``round(n * 18/28)`` (deduplicated for very shallow models), names like
    ``model.layers.{i}.self_attn.q_proj``, layer-major.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    layers = sorted({min(n_layers - 1, round(n_layers * l / PAPER_DEPTH)) for l in PAPER_LAYERS})
    return [f"model.layers.{i}.{kind}" for i in layers for kind in kinds]


def _resolve_modules(model: torch.nn.Module, names: list[str]) -> dict[str, torch.nn.Module]:
    modules = dict(model.named_modules())
    found = {}
    for name in names:
        if name in modules:
            found[name] = modules[name]
            continue
        # a bare name on a peft model, or a peft-prefixed name on a bare model: match on the dotted suffix.
        bare = name[len(PEFT_PREFIX):] if name.startswith(PEFT_PREFIX) else name
        hits = [m for m in modules if m == bare or m.endswith("." + bare)]
        if len(hits) != 1:
            some = [m for m in modules if m.endswith(("proj", "fc1", "fc2"))][:6] or list(modules)[1:7]
            why = "not found" if not hits else f"ambiguous ({hits[:4]})"
            raise ValueError(f"module {name!r} {why}; valid names look like {some}")
        found[name] = modules[hits[0]]
    return found


@torch.no_grad()
def capture_activations(model, tokenizer, prompts: list[str], module_names: list[str], kind="input",
                        max_tokens: int | None = 4096, max_length: int = 256, batch_size: int = 8) -> dict:
    """Token activations of named modules on ``prompts``: ``{name: Tensor[n_tokens, d]}`` (spec C1).

    A forward hook takes each module's first input (``kind="input"``, for CSD) or its output (``"output"``, for
    geometry); padding is dropped with the attention mask and rows are stacked on CPU in prompt order, stopping at
    exactly ``max_tokens`` rows (``None``: no cap). Names may carry peft's ``base_model.model.`` prefix or not.
    No chat template; ``pad_token`` is set to ``eos_token`` when unset (this mutates ``tokenizer``, as the paper does).

    Rows are float32: the paper stored fp16, whose ~5e-4 relative rounding is the size of the drifts being measured
    (CSD_rel ~1e-3), so fp16 would let storage noise leak into ``X1 - X0``. Padding is forced to the right for the call:
    causal attention then never lets a real token see a pad, so batched rows equal one-prompt-at-a-time rows (the
    paper's batch 1) up to float noise, with no dependence on how the model derives positions from the mask.
    """
    if isinstance(kind, (tuple, list)):  # several kinds from one forward pass: {kind: {name: X}}
        if not kind or any(k not in ("input", "output") for k in kind):
            raise ValueError(f"kinds must be 'input' and/or 'output', got {kind!r}")
        both = _capture(model, tokenizer, prompts, module_names, tuple(kind), max_tokens, max_length, batch_size)
        return {k: {name: both[(k, name)] for name in _resolve_modules(model, list(module_names))} for k in kind}
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    out = _capture(model, tokenizer, prompts, module_names, (kind,), max_tokens, max_length, batch_size)
    return {name: out[(kind, name)] for name in _resolve_modules(model, list(module_names))}


@torch.no_grad()
def _capture(model, tokenizer, prompts, module_names, kinds, max_tokens, max_length, batch_size) -> dict:
    """``{(kind, name): Tensor[n_tokens, d]}`` for every requested kind, from one forward pass per batch."""
    modules = _resolve_modules(model, list(module_names))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    cap = math.inf if max_tokens is None else int(max_tokens)
    store: dict[tuple, list[torch.Tensor]] = {(k, name): [] for k in kinds for name in modules}
    current: dict[tuple, torch.Tensor] = {}

    def hook_for(name):
        def hook(module, args, kwargs, output):
            if "output" in kinds:
                x = output[0] if isinstance(output, (tuple, list)) else output
                current[("output", name)] = x.detach()
            if "input" in kinds:
                x = args[0] if args else next(v for v in kwargs.values() if torch.is_tensor(v))
                current[("input", name)] = x.detach()
        return hook

    was_training, side = model.training, tokenizer.padding_side
    handles = [m.register_forward_hook(hook_for(n), with_kwargs=True) for n, m in modules.items()]
    try:
        model.eval()
        tokenizer.padding_side = "right"
        n_seen = 0
        for i in range(0, len(prompts), batch_size):
            if n_seen >= cap:
                break
            enc = tokenizer(list(prompts[i:i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                            max_length=max_length)
            current.clear()
            model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
            keep = enc["attention_mask"].bool()
            for key in store:
                if key not in current:
                    raise RuntimeError(f"module {key[1]!r} was not called in the forward pass")
                x = current[key]
                rows = x[keep.to(x.device)].to("cpu", torch.float32)  # [b, seq, d][mask] -> [n_real, d], prompt-major
                store[key].append(rows[: int(min(rows.shape[0], cap - n_seen))])
            n_seen += int(keep.sum())
    finally:
        for h in handles:
            h.remove()
        tokenizer.padding_side = side
        model.train(was_training)
    return {key: torch.cat(parts) if parts else torch.empty(0, 0) for key, parts in store.items()}
