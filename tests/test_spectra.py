"""Unit tests for arena.spectra on small seeded matrices, checked against closed forms (paper_spec B5, F)."""

import pytest
import torch

from arena.spectra import (
    adaptation_profile,
    base_svd,
    cached_base_svd,
    fluctuation,
    fluctuation_scale_free,
    intruder_dimensions,
    moving_average,
    retention_profile,
    singular_vector_alignment,
    stable_rank,
    top_singular_values,
    update_profile,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _block_rotation(n, block, gen, scale=0.3):
    """A block-diagonal orthogonal R near the identity, like an OFT rotation (Q of the QR of I + noise per block)."""
    blocks = []
    for _ in range(n // block):
        q, r = torch.linalg.qr(torch.eye(block) + scale * torch.randn(block, block, generator=gen))
        blocks.append(q * torch.sign(torch.diagonal(r)))  # fix signs so Q stays close to I
    return torch.block_diag(*blocks)


def test_rotation_keeps_sigma_and_matches_oft_closed_form():
    g = _gen(0)
    W0 = torch.randn(48, 32, generator=g)
    R = _block_rotation(32, 8, g)
    assert torch.allclose(R @ R.T, torch.eye(32), atol=1e-5)
    W1 = W0 @ R.T  # peft OFT rotates the input: W1 = W0 Rᵀ (B5)
    dW = W1 - W0
    svd = base_svd(W0)
    assert torch.allclose(torch.linalg.svdvals(W1), svd.S, rtol=1e-5, atol=1e-5)

    V = svd.V
    vRv = torch.einsum("ni,nm,mi->i", V, R, V)
    expected_ret = (svd.S * (1 - vRv)).abs()
    assert torch.allclose(retention_profile(dW, svd), expected_ret, rtol=1e-4, atol=1e-5)
    expected_ada = torch.linalg.vector_norm(W0 @ (R.T - torch.eye(32)) @ V, dim=0)
    assert torch.allclose(adaptation_profile(dW, svd), expected_ada, rtol=1e-4, atol=1e-5)
    assert expected_ret.max() > 1e-2  # the rotation is not trivially close to I


def test_retention_and_adaptation_match_naive_loops():
    g = _gen(1)
    W0, dW = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    svd = base_svd(W0)
    U, V = svd.U, svd.V
    naive_ret = torch.stack([(U[:, i] @ dW @ V[:, i]).abs() for i in range(4)])
    naive_ada = torch.stack([torch.sqrt(((dW @ V[:, i]) ** 2).sum()) for i in range(4)])
    assert torch.allclose(retention_profile(dW, svd), naive_ret, atol=1e-6)
    assert torch.allclose(adaptation_profile(dW, svd), naive_ada, atol=1e-6)


def test_low_precision_input_is_upcast():
    g = _gen(2)
    W0 = torch.randn(16, 12, generator=g).to(torch.bfloat16)
    dW = (0.1 * torch.randn(16, 12, generator=g)).to(torch.bfloat16)
    svd = base_svd(W0)
    assert svd.S.dtype == torch.float32
    assert retention_profile(dW, svd).dtype == torch.float32
    assert isinstance(stable_rank(dW), float)


@pytest.mark.parametrize("r", [1, 4])
def test_rank_r_update_has_stable_rank_at_most_r(r):
    g = _gen(3)
    B, A = torch.randn(64, r, generator=g), torch.randn(r, 48, generator=g)
    dW = 2.0 * B @ A  # (alpha / r) B A
    sr = stable_rank(dW)
    assert 0 < sr <= r + 1e-4
    assert r == 1 or sr > 1.0  # a random rank-r product is not numerically rank 1
    top = top_singular_values(dW, n=r + 2)
    assert top.shape == (r + 2,)
    assert torch.all(top[r:] < 1e-4 * top[0])


def test_zero_update_gives_zero_everything():
    W0 = torch.randn(20, 12, generator=_gen(4))
    out = update_profile(W0, torch.zeros(20, 12))
    for key in ("retention", "adaptation", "top_singular_values", "retention_normalised", "adaptation_normalised"):
        assert torch.count_nonzero(out[key]) == 0, key
    for key in ("stable_rank", "fluctuation_retention", "fluctuation_adaptation", "fluctuation_scale_free_retention",
                "fluctuation_scale_free_adaptation", "retention_mean", "adaptation_max"):
        assert out[key] == 0.0, key
    assert stable_rank(torch.zeros(5, 3)) == 0.0
    assert fluctuation(torch.zeros(10)) == 0.0


def test_update_profile_bundles_consistent_values():
    g = _gen(5)
    W0, dW = torch.randn(24, 16, generator=g), 0.01 * torch.randn(24, 16, generator=g)
    svd = base_svd(W0)
    out = update_profile(W0, dW, svd=svd)
    assert torch.equal(out["retention"], retention_profile(dW, svd))
    assert out["retention_max"] == pytest.approx(float(out["retention"].max()))
    assert out["fluctuation_adaptation"] == pytest.approx(fluctuation(out["adaptation"]))
    assert out["stable_rank"] == pytest.approx(stable_rank(dW), rel=1e-5)
    assert float(out["adaptation_normalised"].sum()) == pytest.approx(1.0, rel=1e-5)
    assert float(out["sigma_over_max"][0]) == pytest.approx(1.0)
    assert float(out["sigma_over_sum"].sum()) == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(out["retention_normalised"], out["retention"] / svd.S[0])
    with pytest.raises(ValueError, match="shape"):
        update_profile(W0, dW.T)


def test_linear_ramp_reflect_edge_offset_and_linear_padding_zero():
    n, a = 40, 0.7
    ramp = 3.0 + a * torch.arange(n, dtype=torch.float32)
    for window in (5, 7):
        h = window // 2
        # Reflect padding (the paper's): interior residuals vanish, the ends leave a known O(1/n) offset.
        resid = ramp - moving_average(ramp, window)
        assert torch.allclose(resid[h:-h], torch.zeros(n - 2 * h), atol=1e-5)
        expected = 2 * a * h * (h + 1) * (h + 2) / (3 * window * n)
        assert fluctuation(ramp, window) == pytest.approx(expected, rel=1e-5)
        # Linear (point-reflection) padding continues the line, so a ramp scores exactly zero.
        assert fluctuation(ramp, window, padding="linear") == pytest.approx(0.0, abs=1e-5)
    assert fluctuation(ramp) == pytest.approx(3.2 * a / n, rel=1e-5)


def test_fluctuation_detects_noise_and_scale_free_variant_is_scale_invariant():
    x = 1.0 + 0.1 * torch.randn(100, generator=_gen(6))
    assert fluctuation(x) > 0.01
    assert fluctuation(1e3 * x) == pytest.approx(1e3 * fluctuation(x), rel=1e-4)
    assert fluctuation_scale_free(1e3 * x) == pytest.approx(fluctuation_scale_free(x), rel=1e-4)
    assert fluctuation_scale_free(x) == pytest.approx(fluctuation(x) / float(x.abs().mean()), rel=1e-6)


def test_fluctuation_window_rules():
    assert fluctuation(torch.randn(4, generator=_gen(7)), window=5) == 0.0  # shorter than the window
    for bad in (4, 2, 0):
        with pytest.raises(ValueError, match="odd"):
            fluctuation(torch.randn(20), window=bad)
    with pytest.raises(ValueError, match="odd"):
        fluctuation(torch.randn(3), window=4)  # even is an error even when the profile is short
    with pytest.raises(ValueError, match="padding"):
        fluctuation(torch.randn(20), padding="zeros")


def test_alignment_and_intruders_for_identical_matrices():
    W0 = torch.randn(40, 24, generator=_gen(8))
    svd = base_svd(W0)
    assert torch.allclose(singular_vector_alignment(svd, W0.clone()), torch.ones(24), atol=1e-5)
    out = intruder_dimensions(svd, W0.clone(), top=10)
    assert out["count"] == 0
    assert out["max_similarity"].shape == (10,)
    assert torch.allclose(out["max_similarity"], torch.ones(10), atol=1e-5)


def test_alignment_drops_under_rotation():
    g = _gen(9)
    W0 = torch.randn(40, 24, generator=g)
    R = _block_rotation(24, 24, g, scale=1.0)
    sva = singular_vector_alignment(base_svd(W0), W0 @ R.T)
    assert sva.shape == (24,) and float(sva.max()) <= 1 + 1e-5 and float(sva.mean()) < 0.9


def test_rank_one_spike_outside_column_space_is_an_intruder():
    g = _gen(10)
    m, n = 64, 32  # m > n, so W0's k = 32 left singular vectors leave room for an orthogonal direction
    W0 = torch.randn(m, n, generator=g)
    svd = base_svd(W0)
    u = torch.randn(m, generator=g)
    u = u - svd.U @ (svd.U.T @ u)
    u = u / u.norm()
    v = torch.randn(n, generator=g)
    v = v / v.norm()
    W1 = W0 + 20 * float(svd.S[0]) * torch.outer(u, v)
    out = intruder_dimensions(svd, W1, top=10, threshold=0.5)
    assert out["count"] >= 1
    assert float(out["max_similarity"][0]) < 0.2  # the new top direction is the spike, far from every u_i^pre
    assert torch.all(out["max_similarity"][1:] > 0.5)


def test_cached_base_svd_loads_second_time(tmp_path, monkeypatch):
    W0 = torch.randn(12, 8, generator=_gen(11))
    first = cached_base_svd(W0, tmp_path, "model.layers.3.mlp/down_proj.weight")
    path = tmp_path / "model_layers_3_mlp_down_proj_weight.safetensors"
    assert path.exists()

    def no_svd(*args, **kwargs):
        raise AssertionError("SVD recomputed although the cache is valid")

    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    second = cached_base_svd(W0, tmp_path, "model.layers.3.mlp/down_proj.weight")
    assert torch.equal(first.S, second.S) and torch.equal(first.U, second.U) and torch.equal(first.Vh, second.Vh)


def _count_svd_calls(monkeypatch):
    calls = []
    real = torch.linalg.svd

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", counting)
    return calls


def test_cached_base_svd_recomputes_truncated_cache(tmp_path, monkeypatch):
    W0 = torch.randn(12, 8, generator=_gen(12))
    cached_base_svd(W0, tmp_path, "w")
    path = tmp_path / "w.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    calls = _count_svd_calls(monkeypatch)
    svd = cached_base_svd(W0, tmp_path, "w")
    assert len(calls) == 1
    assert torch.allclose(svd.S, torch.linalg.svdvals(W0))
    cached_base_svd(W0, tmp_path, "w")  # the overwritten file is valid again
    assert len(calls) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_cached_base_svd_recomputes_on_shape_or_content_mismatch(tmp_path, monkeypatch):
    g = _gen(13)
    cached_base_svd(torch.randn(12, 8, generator=g), tmp_path, "w")
    calls = _count_svd_calls(monkeypatch)
    other_shape = torch.randn(10, 8, generator=g)
    assert cached_base_svd(other_shape, tmp_path, "w").U.shape == (10, 8)
    same_shape_other_content = 2 * other_shape
    svd = cached_base_svd(same_shape_other_content, tmp_path, "w")
    assert len(calls) == 2
    assert torch.allclose(svd.S, torch.linalg.svdvals(same_shape_other_content), rtol=1e-5)

