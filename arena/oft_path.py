"""Geometry-aware rewinding path for OFT (spec D3) and layer-wise generator rescaling (spec D4).

peft 0.21.2 (``peft/tuners/oft/layer.py``, ``OFTRotationModule``) stores, per adapted layer, ``oft_R[adapter].weight``
of shape ``[r, b(b-1)/2]`` (``r = d_in/b`` blocks; ``[1, ...]`` with ``block_share``). Row i fills the strict upper
triangle of block i (``torch.triu_indices(b, b, 1)`` order) and Q = U - U^T; there is no extra scaling. Then

* Neumann (``use_cayley_neumann=True``, k = ``num_cayley_neumann_terms``): R = I + 2Q + 2Q^2 + ... + 2Q^(k-2) + Q^(k-1),
  a truncation of (I+Q)(I-Q)^-1 (k=3 behaves like k=4, k=2 gives I+2Q, k<=1 gives I; mirrored literally below);
* exact (``use_cayley_neumann=False``): ``solve(I+Q, I-Q, left=False)`` = (I-Q)(I+Q)^-1.
  NB: the two options use *opposite* sign conventions (one is the transpose of the other for the same Q);
  we mirror each one, so a path is only meaningful with the routine the adapter was trained with.
* forward rotates the *input*: x -> x @ blockdiag(R); merge writes W <- (R W^T)^T = W0 R^T.
* ``coft=True`` projects the vector onto an eps-ball first (``_project_batch``), mirrored in ``_coft_project``.

Path (D3): R(alpha) = Cayley(s Q) with s = sqrt(alpha) (paper) or alpha, W(alpha) = W0 R(alpha)^T; alpha=1 is the
trained model bit-for-bit (same routine), alpha=0 the base. Dense path: W0 ((1-alpha) I + alpha R^T), off the group.
"""
from __future__ import annotations

import contextlib
import math
import re

import torch

_LAYER_RE = re.compile(r"layers\.(\d+)\.")


def skew_from_vector(vec: torch.Tensor, block_size: int) -> torch.Tensor:
    """[r, b(b-1)/2] -> skew blocks [r, b, b]: upper triangle = vec, Q = U - U^T (peft ``_pytorch_skew_symmetric``)."""
    rows, cols = torch.triu_indices(block_size, block_size, 1, device=vec.device)
    m = torch.zeros(vec.shape[0], block_size, block_size, device=vec.device, dtype=vec.dtype)
    m[:, rows, cols] = vec
    return m - m.transpose(-2, -1)


def vector_from_skew(Q: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`skew_from_vector` (reads the strict upper triangle)."""
    b = Q.shape[-1]
    rows, cols = torch.triu_indices(b, b, 1, device=Q.device)
    return Q[:, rows, cols]


def cayley(Q: torch.Tensor, neumann_terms: int | None = None) -> torch.Tensor:
    """peft's Cayley map of skew blocks Q [r, b, b] (``_cayley_batch``).

    ``neumann_terms=None``: exact (I-Q)(I+Q)^-1 via the same ``linalg.solve`` call as peft.
    ``neumann_terms=k``: I + 2Q + 2Q^2 + ... + Q^(k-1), with peft's in-place op sequence (so alpha=1 is bit-exact).
    """
    r, b = Q.shape[0], Q.shape[-1]
    dtype = Q.dtype
    if neumann_terms is None:
        # peft builds the identity in the default dtype (not Q's); mirror it so rounding matches
        eye = torch.eye(b, device=Q.device).unsqueeze(0).expand(r, b, b)
        return torch.linalg.solve(eye + Q, eye - Q, left=False).to(dtype)
    R = torch.eye(b, device=Q.device, dtype=dtype).repeat(r, 1, 1)
    if neumann_terms > 1:
        R.add_(Q, alpha=2.0)
        if neumann_terms > 2:
            Qp = torch.bmm(Q, Q)
            R.add_(Qp, alpha=2.0)
            for _ in range(3, neumann_terms - 1):
                Qp = torch.bmm(Qp, Q)
                R.add_(Qp, alpha=2.0)
            Qp = torch.bmm(Qp, Q)
            R.add_(Qp)  # last term has coefficient 1 in peft >= 0.18
    return R.to(dtype)


def _coft_project(vec: torch.Tensor, block_size: int, eps: float) -> torch.Tensor:
    """peft ``_project_batch``: clip each block's skew matrix to Frobenius radius eps/sqrt(#blocks)."""
    Q = skew_from_vector(vec, block_size)
    eps = eps * 1 / torch.sqrt(torch.tensor(Q.shape[0]))
    norm = torch.norm(Q, dim=(1, 2), keepdim=True)
    Q = torch.where(norm <= eps, Q, eps * (Q / norm))
    return vector_from_skew(Q)


def _rot_module(layer, adapter: str = "default"):
    """The ``OFTRotationModule`` of a peft OFT layer (Linear/Conv2d: ``oft_R``; Embedding: ``oft_embedding_R``)."""
    for attr in ("oft_R", "oft_embedding_R"):
        d = getattr(layer, attr, None)
        if d is not None and adapter in d:
            return d[adapter]
    raise KeyError(f"layer has no OFT adapter {adapter!r}")


def oft_rotation(layer, s: float = 1.0, adapter: str = "default", blocks: bool = False) -> torch.Tensor:
    """R(s) = Cayley(s Q) of a peft OFT layer with the layer's own routine and settings (D3).

    Returns the full block-diagonal [d_in, d_in] matrix (= peft ``get_delta_weight`` at s=1), or with ``blocks=True``
    the [d_in/b, b, b] blocks (``block_share`` expanded), which is what large layers should use.
    """
    rot = _rot_module(layer, adapter)
    vec = rot.weight.detach()
    dtype = vec.dtype
    if vec.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16):
        vec = vec.float()  # peft get_delta_weight computes CPU half-precision merges in fp32
    vec = vec * s
    if rot.coft:
        vec = _coft_project(vec, rot.block_size, rot.eps)  # applied to the scaled vector, as in a scaled forward
    terms = rot.num_cayley_neumann_terms if rot.use_cayley_neumann else None
    R = cayley(skew_from_vector(vec, rot.block_size), terms).to(dtype)
    n_blocks = rot.in_features // rot.block_size
    if R.shape[0] == 1 and n_blocks > 1:
        R = R.expand(n_blocks, -1, -1)
    return R if blocks else torch.block_diag(*R.unbind(0))


def apply_blocks_to_weight(W0: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """W0 R^T for block-diagonal R given as blocks [n, b, b] or as a full matrix (peft's merge convention)."""
    if R.dim() == 2:
        return (R @ W0.t().to(R.dtype)).t()
    n, b, _ = R.shape
    Wr = W0.to(R.dtype).reshape(W0.shape[0], n, b)
    return torch.einsum("onk,nck->onc", Wr, R).reshape(W0.shape)


def orthogonality_error(R: torch.Tensor, reduce: str = "total") -> float:
    """||R^T R - I||_F. For blocks [n, b, b]: ``total`` = the norm of the block-diagonal matrix (sqrt of the sum of
    squared block errors), ``max`` = the worst block. A full [d, d] matrix is treated as one block."""
    R = R.unsqueeze(0) if R.dim() == 2 else R
    R = R.double()
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    err = torch.linalg.matrix_norm(R.transpose(-2, -1) @ R - eye)
    return float(err.max() if reduce == "max" else err.pow(2).sum().sqrt())


def dense_factor(R: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1-alpha) I + alpha R^T: the dense path W0 + alpha(W0 R^T - W0) = W0 @ dense_factor (D3). Not orthogonal for
    0<alpha<1: singular values sqrt(1 - 2 alpha(1-alpha)(1 - cos theta_j))."""
    eye = torch.eye(R.shape[-1], dtype=R.dtype, device=R.device)
    return (1 - alpha) * eye + alpha * R.transpose(-2, -1)


def generator_path_weight(W0: torch.Tensor, layer_or_Q, alpha: float, mode: str = "sqrt",
                          neumann_terms: int | None = 5, adapter: str = "default") -> torch.Tensor:
    """W(alpha) = W0 R(s)^T with R(s) = Cayley(s Q), s = sqrt(alpha) (``sqrt``, the paper) or alpha (``linear``).

    ``layer_or_Q`` is a peft OFT layer (its own routine is used) or skew generator blocks Q [n, b, b] (then
    ``neumann_terms`` picks the routine; None = exact). A rotation alone does not fix the path, hence the generator.
    """
    if mode not in ("sqrt", "linear"):
        raise ValueError(f"mode must be 'sqrt' or 'linear', got {mode!r}")
    s = math.sqrt(alpha) if mode == "sqrt" else alpha
    if isinstance(layer_or_Q, torch.Tensor):
        R = cayley(s * layer_or_Q, neumann_terms)
    else:
        R = oft_rotation(layer_or_Q, s, adapter=adapter, blocks=True)
    return apply_blocks_to_weight(W0, R).to(W0.dtype)


def iter_oft_layers(model, adapter: str = "default"):
    """Yield (module_name, layer, rotation_module) for every peft OFT layer holding ``adapter``."""
    for name, mod in model.named_modules():
        for attr in ("oft_R", "oft_embedding_R"):
            d = getattr(mod, attr, None)
            if isinstance(d, torch.nn.ModuleDict) and adapter in d:
                yield name, mod, d[adapter]


def layer_index(name: str) -> int | None:
    """Transformer layer index parsed from ``...layers.<i>....``; None when the module is outside the stack."""
    m = _LAYER_RE.search(name)
    return int(m.group(1)) if m else None


def set_generator_scale(model, s, adapter: str = "default") -> dict[str, torch.Tensor]:
    """Scale OFT generators in place, Q -> s Q, and return the original tensors (for :func:`restore_generators`).

    ``s``: a float for every layer, or a dict whose keys are module names (str, as in ``model.named_modules()``) or
    transformer-layer indices (int, e.g. the output of :func:`layerwise_scales`); modules not named keep scale 1.
    """
    backup: dict[str, torch.Tensor] = {}
    layers = list(iter_oft_layers(model, adapter))
    if isinstance(s, dict):
        unknown = {k for k in s if isinstance(k, str)} - {n for n, _, _ in layers}
        if unknown:
            raise KeyError(f"no OFT module named {sorted(unknown)}")
    with torch.no_grad():
        for name, layer, rot in layers:
            if getattr(layer, "merged", False):
                raise RuntimeError(f"{name} is merged; scaling its generator would not change the forward")
            c = s.get(name, s.get(layer_index(name), 1.0)) if isinstance(s, dict) else s
            if c == 1.0:
                continue
            backup[name] = rot.weight.data.clone()  # exact copy: restoring must be bit-exact, not a divide by c
            rot.weight.data.mul_(c)
    return backup


def restore_generators(model, backup: dict[str, torch.Tensor], adapter: str = "default") -> None:
    """Write back the tensors saved by :func:`set_generator_scale` (bit-exact)."""
    with torch.no_grad():
        for name, _, rot in iter_oft_layers(model, adapter):
            if name in backup:
                rot.weight.data.copy_(backup[name])


@contextlib.contextmanager
def scaled_generators(model, s, adapter: str = "default"):
    """Evaluate ``model`` with generators scaled by ``s`` (float or per-module / per-layer dict) without a model copy;
    originals are restored on exit, also when the body raises."""
    backup = set_generator_scale(model, s, adapter)
    try:
        yield model
    finally:
        restore_generators(model, backup, adapter)


def layer_strength(model, adapter: str = "default") -> dict[int, float]:
    """rho_l = sqrt(sum over OFT modules of layer l of ||Q||_F^2), Q the full block-diagonal skew generator (D4 [I]).

    Why this measure: to first order R = I +- 2Q, so ||Q||_F is the rotation's angle (sqrt of the sum of squared
    half-angles); it is basis-free within a block (invariant to Q -> P Q P^T), defined for every block size, and
    exactly linear in the generator scale: Q -> c Q gives rho -> |c| rho, so the rescaling rules of
    :func:`layerwise_scales` hit their target in closed form (no search). ||Q||_F^2 = 2 ||vec||^2 per block;
    a shared block (``block_share``) is counted once per copy. Modules outside ``layers.<i>.`` are ignored.
    """
    sq: dict[int, float] = {}
    for name, _, rot in iter_oft_layers(model, adapter):
        idx = layer_index(name)
        if idx is None:
            continue
        w = rot.weight.detach().double()
        copies = rot.in_features // rot.block_size if w.shape[0] == 1 else 1
        sq[idx] = sq.get(idx, 0.0) + copies * 2.0 * float(w.pow(2).sum())
    return {k: math.sqrt(v) for k, v in sorted(sq.items())}


def layerwise_scales(strength: dict[int, float], rule: str = "safe", value: float | None = None) -> dict[int, float]:
    """Per-layer generator scales c_l (D4).

    ``safe`` (SafeScale/SafeRho): rho* = mean strength of the first five layers (lowest indices);
    ``min`` (MinScale/MinRho): rho* = min over layers; both use c_l = min(1, rho*/rho_l) (1 where rho_l = 0), so
    after scaling every layer has strength min(rho_l, rho*). ``uniform``: c_l = ``value`` for all (e.g. 0.4).
    """
    if rule == "uniform":
        if value is None:
            raise ValueError("rule='uniform' needs value")
        return {k: float(value) for k in strength}
    keys = sorted(strength)
    if rule == "safe":
        target = sum(strength[k] for k in keys[:5]) / len(keys[:5])
    elif rule == "min":
        target = min(strength.values())
    else:
        raise ValueError(f"unknown rule {rule!r}")
    return {k: (min(1.0, target / strength[k]) if strength[k] > 0 else 1.0) for k in keys}
