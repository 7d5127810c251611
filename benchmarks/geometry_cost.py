"""Cost of the activation-space analysis: capturing and scoring every module of one checkpoint on the
current device, with the base activations cold (captured now) and warm (reused from the store).

    python benchmarks/geometry_cost.py [--profile embedded] [--method lora]

Analyses the stored final checkpoint of ``--method`` (train it first: ``make reproduce`` or
``python -m arena train --method lora``). A measurement, not a test: nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import time

from _cold import set_aside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="embedded")
    parser.add_argument("--method", default="lora")
    args = parser.parse_args()

    from arena import activation_analysis
    from arena.runs import sized_method, train_spec
    from arena.geometry import default_module_set
    from arena.models import base_config, configure_torch, device
    from arena.profiles import get_profile
    from arena.provenance import peak_memory_mb

    configure_torch()
    profile = get_profile(args.profile)
    spec = train_spec(profile, sized_method(profile, args.method))
    modules = default_module_set(base_config(profile.model).num_hidden_layers)
    # the cold run captures the base activations again; the stored ones come back afterwards
    with set_aside(activation_analysis.base_activations_file(profile, modules)):
        for label in ("base activations captured now", "base activations reused"):
            start = time.perf_counter()
            out = activation_analysis.analyse_checkpoint(profile, spec, force=True)
            print(f"{profile.name} {spec.method} on {device()}: {len(out['modules'])} modules x 2 prompt sets, "
                  f"{label}: {time.perf_counter() - start:.1f} s; peak RSS {peak_memory_mb()['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
