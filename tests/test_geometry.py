"""Tests for arena.geometry: known answers for each metric, and hook capture on a tiny random Llama (CPU, seconds)."""

import math

import pytest
import torch

from arena import geometry as geo


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _orthogonal(d, seed=0):
    return torch.linalg.qr(_rand(d, d, seed=seed))[0]


# ------------------------------------------------------------------------------------------------------ metrics
def test_pure_rotation_is_invisible_to_procrustes_cka_and_gram():
    X0 = _rand(300, 48)
    X1 = X0 @ _orthogonal(48, seed=1)
    m = geo.geometry_metrics(X0, X1, ks=(8,))
    assert m["proc_residual"] < 1e-4
    assert m["cka"] == pytest.approx(1.0, abs=1e-5)
    assert m["gram_cosine_dist"] < 1e-4
    assert m["raw_residual"] > 0.5 and m["proc_improvement"] > 0.5
    assert m["mean_cosine_drift"] > 0.5  # a random rotation moves every token a lot
    assert m["mean_abs_log_norm_ratio"] < 1e-5  # but keeps norms


def test_uniform_scaling_keeps_cka_and_shows_as_log_norm_ratio():
    X0 = _rand(200, 16)
    c = 2.5
    m = geo.geometry_metrics(X0, c * X0, ks=(4,))
    assert m["cka"] == pytest.approx(1.0, abs=1e-6)
    assert m["mean_abs_log_norm_ratio"] == pytest.approx(math.log(c), abs=1e-5)
    assert m["mean_norm_ratio"] == pytest.approx(c, rel=1e-5)
    assert m["std_norm_ratio"] < 1e-5
    assert m["mean_cosine"] == pytest.approx(1.0, abs=1e-5)
    assert m["gram_cosine_dist"] < 1e-5 and m["pca_dist_k4"] < 1e-3


def test_procrustes_matches_scipy_and_uses_centred_columns():
    linalg = pytest.importorskip("scipy.linalg")
    X0 = _rand(120, 10, seed=2).double() + 3.0  # an offset, so centring matters
    X1 = (X0 @ _orthogonal(10, seed=3).double() + 0.3 * _rand(120, 10, seed=4).double() + 1.0)
    A, B = (X1 - X1.mean(0)).numpy(), (X0 - X0.mean(0)).numpy()
    R, _ = linalg.orthogonal_procrustes(A, B)
    nb = (B ** 2).sum() ** 0.5
    expected_proc = (((A @ R - B) ** 2).sum() ** 0.5) / nb
    expected_raw = (((A - B) ** 2).sum() ** 0.5) / nb
    out = geo.procrustes(X0, X1)
    assert out["proc_residual"] == pytest.approx(expected_proc, rel=1e-4)
    assert out["raw_residual"] == pytest.approx(expected_raw, rel=1e-4)
    assert out["proc_improvement"] == pytest.approx(expected_raw - expected_proc, rel=1e-3)
    assert 0 < out["proc_residual"] < out["raw_residual"]


def test_cka_token_gram_path_matches_feature_path():
    # n < d takes the n x n route: its value must equal the d x d formula computed directly
    X0, X1 = _rand(12, 40, seed=5), _rand(12, 40, seed=6)
    a, b = X0 - X0.mean(0), X1 - X1.mean(0)
    direct = ((a.T @ b).norm() ** 2 / ((a.T @ a).norm() * (b.T @ b).norm())).item()
    assert geo.linear_cka(X0, X1) == pytest.approx(direct, rel=1e-4)


def test_csd_of_zero_update_is_zero():
    W0, H = _rand(6, 5, seed=1), _rand(40, 5, seed=2)
    out = geo.csd(W0, torch.zeros_like(W0), H)
    assert out["abs"] == 0 and out["rel"] == 0 and out["update_norm"] == 0
    assert out["n_tokens"] == 40


def test_csd_closed_form_on_a_tiny_example():
    W0 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    dW = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    H = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.0, 1.0]])
    dwh = [sum((sum(dW[i, j] * h[j] for j in range(2))) ** 2 for i in range(3)) for h in H]
    w0h = [sum((sum(W0[i, j] * h[j] for j in range(2))) ** 2 for i in range(3)) for h in H]
    h2 = [float(h @ h) for h in H]
    ab = float(sum(dwh)) / 3  # (4+1) + (1+9) + (1+0) = 16 -> 16/3
    assert ab == pytest.approx(16 / 3)
    out = geo.csd(W0, dW, H.half(), chunk=2)  # any float dtype, and a chunk boundary inside the data
    assert out["abs"] == pytest.approx(ab)
    assert out["rel"] == pytest.approx(ab / (float(sum(w0h)) / 3))
    assert out["update_norm"] == pytest.approx(ab / (2.0 * (sum(h2) / 3)))
    assert out["dW_fro2"] == pytest.approx(2.0) and out["mean_h2"] == pytest.approx(sum(h2) / 3)


def test_pca_distance_identical_random_and_orthogonal_subspaces():
    X = _rand(100, 16, seed=7)
    assert geo.pca_subspace_distance(X, X.clone(), 4) < 1e-3
    d = geo.pca_subspace_distance(X, _rand(100, 16, seed=8), 4)
    assert 0.0 < d <= 1.0
    A, B = torch.zeros(100, 16), torch.zeros(100, 16)
    A[:, :4], B[:, 4:8] = _rand(100, 4, seed=9), _rand(100, 4, seed=10)
    assert geo.pca_subspace_distance(A, B, 4) == pytest.approx(1.0, abs=1e-5)
    assert geo.pca_subspace_distance(X[:3], X[:3], 64) < 1e-3  # k clamps to min(n, d)


def test_gram_distortion_subsamples_the_same_tokens_and_sees_angle_changes():
    X0 = _rand(50, 8, seed=11)
    assert geo.gram_distortion(X0, X0 @ _orthogonal(8), max_tokens=20) < 1e-5
    X1 = X0.clone()
    X1[:, 0] *= 5  # an anisotropic stretch changes angles between tokens
    assert geo.gram_distortion(X0, X1, max_tokens=20) > 0.05
    assert geo.gram_distortion(X0, X1, max_tokens=20, seed=1) != geo.gram_distortion(X0, X1, max_tokens=20, seed=2)


def test_geometry_metrics_keys_and_truncation():
    m = geo.geometry_metrics(_rand(70, 12), _rand(60, 12, seed=1), ks=(32, 64))
    assert set(m) == {"mean_cosine", "mean_cosine_drift", "mean_angular_drift", "median_angular_drift",
                      "mean_abs_log_norm_ratio", "mean_norm_ratio", "std_norm_ratio", "gram_cosine_dist",
                      "raw_residual", "proc_residual", "proc_improvement", "cka", "pca_dist_k32", "pca_dist_k64"}
    assert all(math.isfinite(v) for v in m.values())
    assert m["pca_dist_k64"] == pytest.approx(0.0, abs=1e-3)  # k clamps to d = 12: both span everything


def test_default_module_set_scales_paper8():
    names = geo.default_module_set(28)
    assert len(names) == 8 and names[0] == "model.layers.9.self_attn.q_proj"
    assert names[-1] == "model.layers.18.mlp.down_proj"
    assert {n.split(".")[2] for n in geo.default_module_set(30)} == {"10", "19"}
    assert geo.default_module_set(2, kinds=("mlp.down_proj",)) == ["model.layers.1.mlp.down_proj"]


# ------------------------------------------------------------------------------------------------------ capture
CORPUS = ["the cat sat on the mat", "two plus two is four", "a dog ran", "what is seven times six",
          "the quick brown fox jumps over the lazy dog"]


def tiny_tokenizer(with_pad=True):
    """A word-level tokenizer trained in memory on CORPUS (no network), wrapped for transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=["<pad>", "<eos>", "<unk>"]))
    extra = {"pad_token": "<pad>"} if with_pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", **extra)


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).eval()


def _no_hooks(model):
    return all(not m._forward_hooks and not m._forward_hooks_with_kwargs for m in model.modules())


def test_capture_removes_padding_and_matches_one_by_one(tiny_llama):
    tok = tiny_tokenizer()
    tok.padding_side = "left"  # capture must pad on the right anyway, and restore this afterwards
    n_real = sum(len(tok(p)["input_ids"]) for p in CORPUS)
    names = ["model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj"]
    batched = geo.capture_activations(tiny_llama, tok, CORPUS, names, kind="input", batch_size=8)
    single = geo.capture_activations(tiny_llama, tok, CORPUS, names, kind="input", batch_size=1)
    assert batched[names[0]].shape == (n_real, 64)  # down_proj input: d = intermediate size
    assert batched[names[1]].shape == (n_real, 32)
    assert batched[names[0]].dtype == torch.float32
    for n in names:
        torch.testing.assert_close(batched[n], single[n], atol=1e-5, rtol=1e-4)
    assert _no_hooks(tiny_llama)
    assert tok.padding_side == "left"


def test_capture_output_cap_peft_prefix_and_default_pad(tiny_llama):
    tok = tiny_tokenizer(with_pad=False)
    name = "base_model.model.model.layers.1.mlp.down_proj"  # a peft-style name resolves on the bare model
    out = geo.capture_activations(tiny_llama, tok, CORPUS, [name], kind="output", max_tokens=7, batch_size=2)
    assert out[name].shape == (7, 32)
    assert tok.pad_token == tok.eos_token
    full = geo.capture_activations(tiny_llama, tok, CORPUS, [name], kind="output", max_tokens=None)
    torch.testing.assert_close(out[name], full[name][:7], atol=1e-5, rtol=1e-4)  # the first tokens, in order
    # hook outputs agree with running the module on the captured inputs
    inp = geo.capture_activations(tiny_llama, tok, CORPUS, [name], kind="input", max_tokens=None)
    lin = tiny_llama.model.layers[1].mlp.down_proj
    torch.testing.assert_close(lin(inp[name]), full[name], atol=1e-5, rtol=1e-4)


def test_capture_bad_name_and_hooks_removed_on_error(tiny_llama):
    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="not found"):
        geo.capture_activations(tiny_llama, tok, CORPUS, ["model.layers.7.mlp.down_proj"])
    with pytest.raises(ValueError):
        geo.capture_activations(tiny_llama, tok, CORPUS, ["model.layers.0.mlp.down_proj"], kind="middle")
    with pytest.raises(Exception):  # the second batch fails inside the loop, after hooks are registered
        geo.capture_activations(tiny_llama, tok, ["a dog ran", 42], ["model.layers.0.mlp.down_proj"], batch_size=1)
    assert _no_hooks(tiny_llama)
    assert not tiny_llama.training


def test_capture_inputs_and_outputs_in_one_pass_equals_two_passes(tiny_llama):
    tok = tiny_tokenizer()
    names = ["model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj"]
    both = geo.capture_activations(tiny_llama, tok, CORPUS, names, kind=("input", "output"), max_tokens=20)
    for kind in ("input", "output"):
        one = geo.capture_activations(tiny_llama, tok, CORPUS, names, kind=kind, max_tokens=20)
        for n in names:
            assert torch.equal(both[kind][n], one[n])
