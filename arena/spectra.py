"""Weight-space spectral analysis of one finetuned matrix against its pretrained base (book/definitions.md B1-B6, F8,
F15, F17).

Pure functions on torch tensors. All math runs in float32 (bf16/fp16/fp64 inputs are cast), as the paper's
``tools/spectral_analysis.py`` does; results stay on the input's device. Notation: W0 = U diag(S) Vh is the thin SVD of
the pretrained matrix (m x n, k = min(m, n)), dW = W1 - W0 the update, u_i / v_i the i-th left / right singular vectors.
Pass a dW computed analytically in fp32 from the adapter tensors where possible: a difference of bf16 merges is
dominated by rounding for small updates (F8).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .tensors import f32



def _safe_div(x: torch.Tensor, d: float) -> torch.Tensor:
    # A zero denominator only happens for an all-zero profile, whose normalised form is zero too.
    return x / d if d != 0 else torch.zeros_like(x)


@dataclass(frozen=True)
class BaseSVD:
    """Thin SVD W0 = U diag(S) Vh in float32: U (m x k), S (k,) descending, Vh (k x n)."""

    U: torch.Tensor
    S: torch.Tensor
    Vh: torch.Tensor

    @property
    def V(self) -> torch.Tensor:
        return self.Vh.mT

    @property
    def shape(self) -> tuple[int, int]:
        return (self.U.shape[0], self.Vh.shape[1])


def base_svd(W0: torch.Tensor) -> BaseSVD:
    """Thin float32 SVD of the pretrained matrix (B2): ``torch.linalg.svd(W0, full_matrices=False)``."""
    U, S, Vh = torch.linalg.svd(f32(W0), full_matrices=False)
    return BaseSVD(U, S, Vh)


def _check(dW: torch.Tensor, svd: BaseSVD) -> torch.Tensor:
    dW = f32(dW)
    if tuple(dW.shape) != svd.shape:
        raise ValueError(f"update has shape {tuple(dW.shape)} but the base SVD is for {svd.shape}; "
                         "pass the SVD of this W0")
    return dW


def retention_profile(dW: torch.Tensor, svd: BaseSVD) -> torch.Tensor:
    """Retention profile ΔP(i) = |u_iᵀ dW v_i| = |diag(Uᵀ dW V)|_i, shape (k,) (B2, "diagonal projection").

    The diagonal is read as row-sums of (Uᵀ dW) ⊙ Vh, so the k x k matrix Uᵀ dW V is never formed.
    """
    dW = _check(dW, svd)
    return ((svd.U.mT @ dW) * svd.Vh).sum(dim=1).abs()


def adaptation_profile(dW: torch.Tensor, svd: BaseSVD) -> torch.Tensor:
    """Adaptation profile E_Δ(i) = ‖dW v_i‖₂, the column norms of dW V, shape (k,) (B2, "update energy")."""
    dW = _check(dW, svd)
    return torch.linalg.vector_norm(dW @ svd.V, dim=0)


def _stable_rank(sv: torch.Tensor) -> float:
    # ‖dW‖_F² = Σ σ_j², so the singular values alone give the stable rank.
    return 0.0 if sv.numel() == 0 or sv[0] == 0 else float((sv.square().sum() / sv[0].square()))


def stable_rank(dW: torch.Tensor) -> float:
    """Effective rank as the paper defines it (B2): the stable rank ‖dW‖_F² / σ₁(dW)²; 0.0 for a zero matrix."""
    return _stable_rank(torch.linalg.svdvals(f32(dW)))


def top_singular_values(dW: torch.Tensor, n: int = 5) -> torch.Tensor:
    """The ``n`` largest singular values of dW, descending (B2 stores the top 5 as ``delta_sv_top5``)."""
    return torch.linalg.svdvals(f32(dW))[:n]


def _check_window(window: int) -> None:
    # An even window has no centre sample; padded by window//2 its average is one longer than the profile (B2).
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window={window} must be a positive odd integer (the paper uses 5); try window={window + 1}")


def moving_average(x, window: int = 5, padding: str = "reflect") -> torch.Tensor:
    """Centred moving average of a 1-D profile with ``window // 2`` values padded at each end (B2).

    ``padding="reflect"`` is the paper's choice (mirror without repeating the edge: x2, x1 | x0, x1, ...).
    ``padding="linear"`` point-reflects through the edge value (2·x0 - x2, 2·x0 - x1 | x0, ...), which continues any
    straight line exactly. The window must be odd and at most ``len(x)``.
    """
    _check_window(window)
    x = f32(x).reshape(-1)
    if x.numel() < window:
        raise ValueError(f"profile of length {x.numel()} is shorter than window={window}; use a smaller odd window")
    h = window // 2
    if padding == "reflect":
        padded = F.pad(x.view(1, 1, -1), (h, h), mode="reflect").view(-1)
    elif padding == "linear":
        left, right = 2 * x[0] - x[1:h + 1].flip(0), 2 * x[-1] - x[-h - 1:-1].flip(0)
        padded = torch.cat([left, x, right])
    else:
        raise ValueError(f"padding={padding!r} is unknown; use 'reflect' (the paper's) or 'linear'")
    return padded.unfold(0, window, 1).mean(dim=1)


def fluctuation(x, window: int = 5, padding: str = "reflect") -> float:
    """Fluctuation ("spectral smoothness") score mean_i |x_i - MA(x)_i| of a raw profile (B2); lower is smoother.

    Returns 0.0 when ``len(x) < window`` (as the paper does); an even window raises ValueError.

    Edges: with the paper's reflect padding a straight line is *not* scored 0. For x_i = a·i the interior residuals
    vanish but position i < h = window//2 from either end has residual |a|(h-i)(h-i+1)/window, so
    fluctuation = 2|a|·h(h+1)(h+2) / (3·window·len(x)) (3.2|a|/len(x) for window 5), a small O(1/k) offset that we
    keep for fidelity to the paper's numbers. ``padding="linear"`` removes it: a linear ramp then scores exactly 0.
    """
    _check_window(window)
    x = f32(x).reshape(-1)
    if x.numel() < window:
        return 0.0
    return float((x - moving_average(x, window, padding)).abs().mean())


def fluctuation_scale_free(x, window: int = 5, padding: str = "reflect") -> float:
    """Scale-free fluctuation(x) / mean|x| (F17): comparable across profile magnitudes; 0 if the mean is 0."""
    x = f32(x).reshape(-1)
    scale = float(x.abs().mean()) if x.numel() else 0.0
    return 0.0 if scale == 0 else fluctuation(x, window, padding) / scale


def singular_vector_alignment(W0_svd: BaseSVD, W1: torch.Tensor, W1_svd: BaseSVD | None = None) -> torch.Tensor:
    """SVA (B2): |cos(v_i^pre, v_i^ft)| for each index i, with W1's SVD taken separately; shape (k,).

    Singular vectors are unit norm, so the cosine is the row-wise dot product of the two Vh's; the absolute value
    removes the SVD's arbitrary sign. ``W1_svd`` (``base_svd(W1)``) saves a second SVD when the caller has one.
    """
    W1 = _check(W1, W0_svd)
    Vh1 = (W1_svd or base_svd(W1)).Vh
    return (W0_svd.Vh * Vh1).sum(dim=1).abs()


def intruder_dimensions(W0_svd: BaseSVD, W1: torch.Tensor, top: int = 10, threshold: float = 0.5,
                        W1_svd: BaseSVD | None = None) -> dict:
    """Intruder dimensions (Shuttleworth et al. 2024, "LoRA vs Full Fine-tuning: An Illusion of Equivalence").

    For each of the ``top`` leading left singular vectors u_j^ft of W1, max_i |cos(u_j^ft, u_i^pre)| over all k
    pretrained left singular vectors; an intruder is one whose max similarity is below ``threshold``.
    Returns ``{"count": int, "max_similarity": Tensor[top]}`` (``top`` is clipped to k). ``W1_svd`` as in
    ``singular_vector_alignment``.
    """
    W1 = _check(W1, W0_svd)
    U1 = (W1_svd or base_svd(W1)).U[:, :top]
    max_sim = (U1.mT @ W0_svd.U).abs().amax(dim=1)
    return {"count": int((max_sim < threshold).sum()), "max_similarity": max_sim}


def update_profile(W0: torch.Tensor, dW: torch.Tensor, svd: BaseSVD | None = None, window: int = 5) -> dict:
    """Per-matrix summary of B2-B4: profiles (tensors) and their statistics (floats).

    Keys, with the paper's ``spectral_summary.json`` / ``.pt`` names in brackets:
    ``retention`` [delta_P_diag], ``adaptation`` [E_delta], ``fluctuation_{retention,adaptation}``
    [smoothness_*] and the scale-free variants ``fluctuation_scale_free_*`` (F17), ``{retention,adaptation}_{mean,max}``
    [delta_P_diag_*, E_delta_*], ``stable_rank`` [effective_rank], ``top_singular_values`` [delta_sv_top5],
    ``sigma`` [S_pre], and the normalised curves as the plotting code draws them (B4, which differs from the figure
    labels): ``retention_normalised`` = ΔP/σ₁, ``adaptation_normalised`` = E_Δ/ΣE_Δ, ``sigma_over_max`` = σ/σ₁ (the
    dashed reference for retention) and ``sigma_over_sum`` = σ/Σσ (the reference for adaptation).
    """
    svd = base_svd(W0) if svd is None else svd
    if tuple(W0.shape) != svd.shape:
        raise ValueError(f"W0 has shape {tuple(W0.shape)} but the SVD is for {svd.shape}; pass svd=base_svd(W0)")
    ret, ada = retention_profile(dW, svd), adaptation_profile(dW, svd)
    sv = torch.linalg.svdvals(f32(dW))
    S = svd.S
    s1, s_sum = float(S[0]) if S.numel() else 0.0, float(S.sum())
    out = {"retention": ret, "adaptation": ada, "sigma": S}
    for name, p in (("retention", ret), ("adaptation", ada)):
        out[f"fluctuation_{name}"] = fluctuation(p, window)
        out[f"fluctuation_scale_free_{name}"] = fluctuation_scale_free(p, window)
        out[f"{name}_mean"] = float(p.mean()) if p.numel() else 0.0
        out[f"{name}_max"] = float(p.max()) if p.numel() else 0.0
    out["stable_rank"] = _stable_rank(sv)
    out["top_singular_values"] = sv[:5]
    out["retention_normalised"] = _safe_div(ret, s1)
    out["adaptation_normalised"] = _safe_div(ada, float(ada.sum()))
    out["sigma_over_max"] = _safe_div(S, s1)
    out["sigma_over_sum"] = _safe_div(S, s_sum)
    return out


def _cache_path(cache_dir, key: str) -> Path:
    return Path(cache_dir) / (key.replace("/", "_").replace(".", "_") + ".safetensors")


def _load_cached(path: Path, W0: torch.Tensor) -> BaseSVD | None:
    from safetensors.torch import load_file

    try:
        t = load_file(str(path), device=str(W0.device))
        svd = BaseSVD(t["U"], t["S"], t["Vh"])
    except Exception:  # a missing, truncated or foreign file: recompute rather than trust it
        return None
    m, n = W0.shape
    k = min(m, n)
    if (svd.U.shape, svd.S.shape, svd.Vh.shape) != ((m, k), (k,), (k, n)):
        return None
    # ‖W0‖_F² = Σσ² is a free fingerprint: it catches a same-shaped matrix cached under the same key by mistake.
    fro2 = float(f32(W0).square().sum())
    if abs(float(svd.S.double().square().sum()) - fro2) > 1e-4 * max(fro2, 1e-30):
        return None
    return svd


def cached_base_svd(W0: torch.Tensor, cache_dir, key: str) -> BaseSVD:
    """``base_svd(W0)``, computed once and kept at ``cache_dir/<key, '/' and '.' -> '_'>.safetensors`` (F15).

    A cache file that cannot be read, whose shapes do not fit W0, or whose Σσ² differs from ‖W0‖_F² is recomputed
    and overwritten. The write goes to a temporary file that is then renamed, so an interrupted run leaves no torn file.
    """
    from safetensors.torch import save_file

    path = _cache_path(cache_dir, key)
    if path.exists() and (svd := _load_cached(path, W0)) is not None:
        return svd
    svd = base_svd(W0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tensors = {"U": svd.U, "S": svd.S, "Vh": svd.Vh}
    save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(tmp))
    os.replace(tmp, path)
    return svd
