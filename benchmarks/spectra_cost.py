"""Cost of the weight-space analysis: whole-model time and peak memory on the embedded model, and one
Qwen2.5-7B-shaped ``mlp.down_proj`` (3584 x 18944, random) on the current device.

    python benchmarks/spectra_cost.py [--profile embedded] [--method lora]

The whole-model run analyses the stored final checkpoint of ``--method`` (train it first, e.g. with ``make reproduce``
or ``python -m arena train --method lora``); it measures a cold base-SVD cache and a warm one. A measurement, not a
test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import time

from _cold import set_aside


def one_qwen_matrix(device: str) -> dict:
    import torch

    from arena.spectra import base_svd, intruder_dimensions, update_profile

    gen = torch.Generator().manual_seed(0)
    W0 = (torch.randn(3584, 18944, generator=gen) / 18944**0.5).to(device)
    dW = (torch.randn(3584, 8, generator=gen) @ torch.randn(8, 18944, generator=gen) * 1e-4).to(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    start = time.perf_counter()
    svd = base_svd(W0)
    t_svd = time.perf_counter() - start
    update_profile(W0, dW, svd)
    intruder_dimensions(svd, W0 + dW)
    if device == "cuda":
        torch.cuda.synchronize()
    out = {"base SVD s": t_svd, "total s": time.perf_counter() - start}
    if device == "cuda":
        out["peak GPU MB"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--skip-qwen", action="store_true")
    args = parser.parse_args()

    from arena import weight_analysis
    from arena.assets import cache_dir
    from arena.runs import load_trained, sized_method, train_spec
    from arena.methods import get_method, linear_targets
    from arena.models import configure_torch, device, model_identity
    from arena.profiles import get_profile
    from arena.provenance import peak_memory_mb

    configure_torch()
    profile = get_profile(args.profile)
    spec = train_spec(profile, sized_method(profile, args.method))

    with set_aside(cache_dir() / "svd"):  # the cold run recomputes the base SVDs; the real cache comes back after
        for label in ("cold SVD cache", "warm SVD cache"):
            start = time.perf_counter()
            model, _ = load_trained(profile, spec, merge=False)
            out = weight_analysis.analyse_model(model, weight_analysis.pretrained_source(profile),
                                                model_identity(profile.model), get_method(spec.method).config is None,
                                                linear_targets(model), None)
            print(f"{profile.name} {spec.method}, {len(out['rows'])} matrices, {label}: "
                  f"{time.perf_counter() - start:.1f} s, peak RSS {peak_memory_mb()['peak_rss_mb']:.0f} MB")
    if not args.skip_qwen:
        r = one_qwen_matrix(device())
        print(f"Qwen2.5-7B-shaped down_proj 3584x18944 on {device()}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items())
              + f"; process peak RSS {peak_memory_mb()['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
