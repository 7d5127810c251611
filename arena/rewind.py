"""Overshoot and post-hoc rewinding (book/definitions.md D): the operating points between the base and a finetuned
model, applied to a loaded model in place (no model copy per point) and restored exactly afterwards.

- **Training path** (D1): the checkpoints saved along training (``runs.load_trained(step=...)``).
- **Dense interpolation** (D2): W(alpha) = W0 + alpha dW, dW = W_ft - W0 the effective update of every adapted or
  finetuned matrix, the same alpha everywhere. Plain LoRA does it by scaling the adapter (s -> alpha s, exact, works on
  a 4-bit base); every other method writes W0 + alpha dW into the base weights with the adapter switched off (dW from
  ``updates.module_update`` in fp32, so residual inits, DoRA, IA3, OFT, ... all follow the same definition), one
  matrix at a time at each point; on a 4-bit base, whose weights cannot hold it, each layer's output is interpolated
  instead, the same linear map.
- **OFT generator path** (D3): R(alpha) = Cayley(s Q) with s = sqrt(alpha) (the paper) or s = alpha, built by the
  adapter's own routine because the generators are scaled in place (``oft_path.scaled_generators``): alpha = 1 is the
  trained model bit for bit, every point stays (to the routine's precision) orthogonal. The two schedules trace the
  same set of models (Cayley(sqrt(a) Q) = Cayley(a' Q) at a' = sqrt(a)); they differ in where the grid samples it.
- **Layer-wise OFT rescaling** (D4): uniform c, SafeScale and MinScale (``oft_path.layerwise_scales``).
- **Selection** (D5): :func:`select_point` reads validation scores only (the suite's validation split, disjoint from
  every test item); the chosen point is then scored once on the test split.
"""

from __future__ import annotations

import contextlib
import gc
import math
from typing import Callable

import torch

from .errors import ArenaError
from .evaluate import evaluate
from .keys import point_key
from .methods import get_method
from .oft_path import (
    dense_factor, iter_oft_layers, layer_strength, layerwise_scales, oft_rotation, orthogonality_error,
    scaled_generators,
)
from .profiles import get_profile
from .runs import (cached_eval, evaluate_base, evaluate_step, found_eval, load_trained, sized_method, train_method,
                   train_spec)
from .scores import paired_difference
from .updates import adapted_layers, custom_layers, is_quantized, module_update
from .weight_analysis import pretrained_source

SCHEDULES = ("sqrt", "linear")
LAYER_RULES = ("uniform", "safe", "min")
UNIFORM_ALPHA = 0.4  # D4/D6's "uniform 0.4", read as a position on the generator path


# ---------------------------------------------------------------------------------------------------- dense path
_LORA_LINEARS = ("Linear", "Linear4bit", "Linear8bitLt")  # peft's LoRA layers for full-precision and bnb bases


def _plain_lora(layer, adapter: str) -> bool:
    """A LoRA layer whose update is exactly s B A (no DoRA magnitude), so scaling s walks the dense path."""
    return (hasattr(layer, "lora_A") and adapter in layer.lora_A
            and adapter not in getattr(layer, "lora_magnitude_vector", {})
            and type(layer).__name__ in _LORA_LINEARS and type(layer).__module__.startswith("peft.tuners.lora"))


class DenseInterpolation:
    """W0 + alpha dW for every adapted matrix of ``model`` (D2): peft layers, a plain-torch method's layers (those with
    ``delta_weight()``), or every finetuned weight (full FT). ``read_w0(name)`` returns the pretrained weight by
    parameter name (``weight_analysis.pretrained_source``).

    Routes, all exact at both ends: plain LoRA on an untouched base scales peft's ``scaling`` (no copies; works on a
    4-bit base); other peft layers on a full-precision base get W0 + alpha dW written into their base weight with the
    adapter switched off; peft layers on a 4-bit base and plain-torch layers output (1 - alpha) y_start + alpha y, y
    being the trained layer's output and y_start that of the weight it started from (deq(Q(W0)) on a 4-bit base): by
    linearity x (W_start + alpha dW)^T + b; full FT writes the weights. A residual initialisation (PiSSA, MiLoRA,
    KeepLoRA: base != W0) is detected by comparing the base with W0, so it is rewound towards W0, not towards its
    residual. ``with path.at(alpha): ...``; the trained model comes back exactly on exit.

    Memory: at 7B an fp32 W0 and dW of every matrix would be 48.6 GiB, so nothing is kept between calls. Each call
    reads W0 and recomputes dW one matrix at a time; on exit a base that equals W0 is read back from the source, and
    only weights the source cannot rebuild (a residual base, full FT's trained weights) wait on the host meanwhile.
    ``allow_scaling=False`` forces the weight-writing route on plain LoRA too.
    """

    def __init__(self, model, read_w0: Callable[[str], torch.Tensor], adapter: str = "default",
                 residual: bool | None = None, allow_scaling: bool = True):
        self.model, self.adapter, self.read_w0 = model, adapter, read_w0
        self.layers = list(adapted_layers(model, adapter)) if hasattr(model, "peft_config") else []
        self.custom = [] if self.layers else custom_layers(model)
        self.writes: list[tuple[str, torch.Tensor, object, bool]] = []  # (W0's name, parameter, layer, rebuildable)
        self.outputs: list[torch.nn.Module] = []  # layers whose output is interpolated
        self._held: dict[str, torch.Tensor] = {}
        self.scale_only = allow_scaling and bool(self.layers) and all(_plain_lora(m, adapter) for _, m in self.layers)
        if self.scale_only and residual is None:
            # residual inits moved the base off W0; a 4-bit base cannot be compared, and has no residual method
            residual = any(not is_quantized(w := m.get_base_layer().weight)
                           and not torch.equal(w.detach().float().cpu(), read_w0(n + ".weight"))
                           for n, m in self.layers)
        self.scale_only = self.scale_only and not residual
        if self.scale_only:
            return

        with torch.no_grad():
            if any(is_quantized(m.get_base_layer().weight) for _, m in self.layers):
                self.outputs = [m for _, m in self.layers]  # a 4-bit weight cannot hold W0 + alpha dW
            else:
                for name, layer in self.layers:
                    weight = layer.get_base_layer().weight
                    self.writes.append((name + ".weight", weight, layer, _holds(weight, read_w0(name + ".weight"))))
            self.outputs += [m for _, m in self.custom]
            if not self.layers and not self.custom:  # full finetuning: every parameter that moved
                self.writes = [(name, p, None, False) for name, p in model.named_parameters()
                               if not _holds(p, read_w0(name))]
        if not self.writes and not self.outputs:
            raise ArenaError("the model has no update to interpolate (is it the base model?)")

    @contextlib.contextmanager
    def at(self, alpha: float):
        if self.scale_only:
            with lora_scaled(self.model, alpha, self.adapter):
                yield self.model
            return
        written = []
        hooks = []
        try:
            with torch.no_grad():
                for name, p, layer, rebuildable in self.writes:  # one W0 and one dW alive at a time
                    W0 = self.read_w0(name)
                    dW = module_update(layer, W0, self.adapter) if layer is not None else p.detach().cpu().float() - W0
                    if not rebuildable:  # the source cannot rebuild it: it waits on the host until exit
                        self._held[name] = p.detach().to("cpu", copy=True)
                    written.append((name, p, rebuildable))
                    p.copy_(torch.add(W0, dW, alpha=alpha).to(p.device, p.dtype))  # W0 may be the source's own
                    del W0, dW
            hooks = [m.register_forward_hook(_output_at(alpha, _start_of(m))) for m in self.outputs]
            with self.model.disable_adapter() if self.writes and self.layers else contextlib.nullcontext():
                yield self.model
        finally:
            for hook in hooks:
                hook.remove()
            with torch.no_grad():
                for name, p, rebuildable in written:
                    p.copy_((self.read_w0(name) if rebuildable else self._held.pop(name)).to(p.device, p.dtype))
            self._held = {}


def _holds(weight: torch.Tensor, W0: torch.Tensor) -> bool:
    """Whether ``weight`` is W0 in its own dtype, so W0 read from the source restores it bit for bit."""
    return torch.equal(weight.detach(), W0.to(weight.device, weight.dtype))


def _start_of(module) -> Callable | None:
    """The map a layer started from: a peft layer's base layer, or the nn.Linear a plain-torch layer wraps (None when
    it wraps none: its ``delta_weight()`` is then subtracted instead)."""
    if hasattr(module, "get_base_layer"):
        return module.get_base_layer()
    return next((c for c in module.modules() if isinstance(c, torch.nn.Linear) and c is not module), None)


def _output_at(alpha: float, start: Callable | None):
    """A forward hook giving x (W_start + alpha dW)^T (+ b) as (1 - alpha) y_start + alpha y, y being the layer's own
    output: no weight is materialised, and torch.lerp returns y_start at 0 and y at 1 exactly."""

    def hook(module, inputs, output):
        x = inputs[0]
        if start is None:
            return output + (alpha - 1.0) * torch.nn.functional.linear(x, module.delta_weight().to(x.dtype))
        return torch.lerp(start(x).float(), output.float(), alpha).to(output.dtype)

    return hook


@contextlib.contextmanager
def merged_view(model, adapter: str = "default"):
    """Run a peft model with its adapter merged into the base weights (in place), as the benchmark scores every
    unquantised checkpoint (``load_trained(merge=True)``), so a rewound point and the final checkpoint are computed
    the same way; the base weights come back exactly on exit. A no-op on a quantised base or a non-peft model."""

    layers = [m for _, m in adapted_layers(model, adapter)] if hasattr(model, "peft_config") else []
    if not layers or any(is_quantized(m.get_base_layer().weight) for m in layers):
        yield model
        return
    saved = [m.get_base_layer().weight.data.clone() for m in layers]
    model.merge_adapter()
    try:
        yield model
    finally:
        # the saved weights come back as they were, and the layers are marked unmerged; peft's own unmerge would
        # invert the merge (for OFT a dense in_features x in_features inverse: minutes per 7B MLP matrix), only to
        # be overwritten here
        with torch.no_grad():
            for m, w in zip(layers, saved):
                m.get_base_layer().weight.data.copy_(w)
                m.merged_adapters.clear()


@contextlib.contextmanager
def lora_scaled(model, alpha: float, adapter: str = "default"):
    """Plain LoRA at W0 + alpha s B A: multiply each layer's scaling by alpha (peft ``scaling``), restore on exit."""

    layers = [m for _, m in adapted_layers(model, adapter)]
    saved = [m.scaling[adapter] for m in layers]
    try:
        for m, s in zip(layers, saved):
            m.scaling[adapter] = s * alpha
        yield model
    finally:
        for m, s in zip(layers, saved):
            m.scaling[adapter] = s


def dense_factor_error(R_blocks: torch.Tensor, alpha: float, reduce: str = "total") -> float:
    """||F^T F - I||_F of the dense OFT factor F = (1-alpha) I + alpha R^T, per block [n, b, b] reduced as in
    ``oft_path.orthogonality_error`` (D3: off the orthogonal group for 0 < alpha < 1, worst at 0.5)."""

    return orthogonality_error(torch.stack([dense_factor(R, alpha) for R in R_blocks.unbind(0)]), reduce)


# ------------------------------------------------------------------------------------------- OFT generator path
def generator_scale(alpha: float, schedule: str = "sqrt") -> float:
    """s(alpha) of R(alpha) = Cayley(s Q): sqrt(alpha) (the paper, D3) or alpha."""
    if schedule not in SCHEDULES:
        raise ArenaError(f"unknown OFT schedule {schedule!r}; choose one of {SCHEDULES}")
    if not 0.0 <= alpha <= 1.0:
        raise ArenaError(f"alpha must lie in [0, 1], got {alpha}")
    return math.sqrt(alpha) if schedule == "sqrt" else alpha


def uniform_scale(point: dict) -> float | None:
    """The generator scale of a layer-wise "uniform" point: ``generator_scale(alpha, schedule)`` when it names a
    path position (so "uniform 0.4" is the same model as the generator path at alpha = 0.4), else its raw
    ``value``."""
    if "alpha" in point:
        return generator_scale(point["alpha"], point.get("schedule", "sqrt"))
    return point.get("value")


def _require_oft(model, adapter: str) -> list:
    layers = list(iter_oft_layers(model, adapter))
    if not layers:
        raise ArenaError("the generator path needs an OFT model (peft OFT layers); use the dense path for other methods")
    return layers


@contextlib.contextmanager
def generator_path(model, alpha: float, schedule: str = "sqrt", adapter: str = "default"):
    """The OFT model at R(alpha) = Cayley(s(alpha) Q) in every layer (D3), by scaling generators in place."""

    _require_oft(model, adapter)
    with scaled_generators(model, generator_scale(alpha, schedule), adapter):
        yield model


def layer_scales(model, rule: str, value: float | None = None, adapter: str = "default") -> dict[int, float]:
    """Per-layer generator scales c_l for ``rule`` in uniform / safe / min (D4; strength rho_l defined in
    ``oft_path.layer_strength``)."""

    if rule not in LAYER_RULES:
        raise ArenaError(f"unknown layer-wise rule {rule!r}; choose one of {LAYER_RULES}")
    _require_oft(model, adapter)
    return layerwise_scales(layer_strength(model, adapter), rule, value)


@contextlib.contextmanager
def layerwise(model, rule: str, value: float | None = None, adapter: str = "default"):
    """The OFT model with layer l's generators scaled by c_l (D4)."""

    with scaled_generators(model, layer_scales(model, rule, value, adapter), adapter):
        yield model


def rotation_errors(model, alphas, schedule: str = "sqrt", adapter: str = "default") -> list[dict]:
    """Per alpha: the worst ||R^T R - I||_F over OFT layers on the generator path, and the same for the dense path's
    factor (1-alpha) I + alpha R^T. The generator path's error is the routine's own (Cayley-Neumann truncation), at most
    that of the trained rotation; the dense path's is not."""

    layers = [layer for _, layer, _ in _require_oft(model, adapter)]
    trained = [oft_rotation(layer, 1.0, adapter, blocks=True).float() for layer in layers]
    rows = []
    for alpha in alphas:
        s = generator_scale(alpha, schedule)
        gen = max(orthogonality_error(oft_rotation(layer, s, adapter, blocks=True).float(), "max") for layer in layers)
        dense = max(dense_factor_error(R, alpha, "max") for R in trained)
        rows.append({"alpha": alpha, "generator_error": gen, "dense_error": dense})
    return rows


# ------------------------------------------------------------------------------------------------- selection
def select_point(candidates: list[dict], final: dict, delta: float | None = None) -> dict:
    """The operating point chosen on the validation split (D5; never the test split).

    Rule: among the candidates whose validation Target is at least the final checkpoint's minus ``delta`` (default:
    one standard error of the final's validation Target), take the highest validation General; ties go to the larger
    alpha (closer to the trained model), and an exact tie with the final keeps the final. Each dict has ``general``,
    ``target`` (and ``alpha``) from the validation split; ``final`` is the final checkpoint on the same split. The
    final itself is always a candidate, so "no better point" is a possible answer.
    """
    for c in [*candidates, final]:
        if c.get("split", "validation") != "validation":
            raise ArenaError("select_point reads validation scores only; got a test-split score")
    delta = final.get("target_se", 0.0) if delta is None else delta
    pool = [c for c in candidates if c["target"] >= final["target"] - delta] + [final]
    return max(pool, key=lambda c: (c["general"], c.get("alpha", 1.0), c is final))  # an exact tie keeps the final


# ------------------------------------------------------------------------------------------------ orchestration
def variants(profile, spec) -> list[dict]:
    """The points of one method's rewinding study, all scored on the validation split: the saved checkpoints between
    the first and the last (D1), the dense path at the profile's alphas (D2) and, for OFT, the sqrt generator path at
    the same alphas (D3) and the layer-wise rules (D4: uniform 0.4, SafeScale, MinScale)."""
    points = [{"path": "train", "step": s} for s in spec.save_steps() if 0 < s < spec.steps]
    points += [{"path": "dense", "alpha": a} for a in profile.rewind_alphas]
    if is_oft(spec.method):
        points += [{"path": "generator", "schedule": "sqrt", "alpha": a} for a in profile.rewind_alphas]
        # "uniform 0.4" is the generator path's alpha = 0.4 (generators scaled by sqrt(0.4) = 0.63): the paper's
        # figure shows the two as one model (D4)
        points += [{"path": "layerwise", "rule": "uniform", "alpha": UNIFORM_ALPHA, "schedule": "sqrt"},
                   {"path": "layerwise", "rule": "safe"},
                   {"path": "layerwise", "rule": "min"}]
    return points


def is_oft(method: str) -> bool:
    """Whether a registered method is built as peft OFT layers, so the generator path applies (its registry row)."""
    return get_method(method).rotation


def point_label(point: dict) -> str:
    path = point["path"]
    if path == "train":
        return f"step {point['step']}"
    if path in ("dense", "generator"):
        return f"{path} a={point['alpha']:g}"
    if path == "layerwise":
        uniform = point.get("alpha", point.get("value", 0))
        return {"uniform": f"uniform {uniform:g}", "safe": "SafeScale", "min": "MinScale"}[point["rule"]]
    return path


def point_alpha(point: dict, steps: int) -> float:
    """Where a point sits between base (0) and final (1): alpha, or the step fraction for checkpoints."""
    if "alpha" in point:
        return float(point["alpha"])
    if point["path"] == "train":
        return point["step"] / steps
    return 1.0


class _Loaded:
    """The final model of a run, loaded once (unmerged) on first use, with the dense path built on demand."""

    def __init__(self, profile, spec):
        self.profile, self.spec, self._model, self._dense = profile, spec, None, None

    @property
    def model(self):
        if self._model is None:
            self._model, self.tokenizer = load_trained(self.profile, self.spec, merge=False, scoring=True)
        return self._model

    def dense(self) -> DenseInterpolation:
        if self._dense is None:
            self._dense = DenseInterpolation(self.model, pretrained_source(self.profile),
                                             residual=get_method(self.spec.method).residual or None)
        return self._dense

    @contextlib.contextmanager
    def at(self, point: dict):
        path = point["path"]
        if path == "train":
            model, self.tokenizer = load_trained(self.profile, self.spec, point["step"], scoring=True)  # merged
            yield model
            return
        model = self.model
        # every point is scored merged where the final checkpoint is (unquantised bases), so gains compare like
        if path == "final":
            with merged_view(model) as m:
                yield m
        elif path == "dense":
            dense = self.dense()
            with dense.at(point["alpha"]) as m, merged_view(m) if dense.scale_only else contextlib.nullcontext(m) as v:
                yield v
        elif path == "generator":
            with generator_path(model, point["alpha"], point.get("schedule", "sqrt")) as m, merged_view(m) as v:
                yield v
        elif path == "layerwise":
            with layerwise(model, point["rule"], uniform_scale(point)) as m, merged_view(m) as v:
                yield v
        else:
            raise ArenaError(f"unknown rewinding path {path!r}")


def evaluate_point(profile, spec, point: dict, split: str = "validation", loaded: _Loaded | None = None,
                   force: bool = False, stored_only: bool = False) -> dict | None:
    """General/Target of one point on ``split`` (cached; ``stored_only``: None instead of computing it). The final
    checkpoint on the test split is the benchmark's own stored evaluation."""
    import time

    if point["path"] == "final" and split == "test":
        return evaluate_step(profile, spec)
    if stored_only:
        return found_eval(point_key(profile, spec, point, split))
    loaded = loaded or _Loaded(profile, spec)

    def compute(folder):
        start = time.perf_counter()
        with loaded.at(point) as model:
            result = evaluate(model, loaded.tokenizer, profile, split=split)
        return {**result, "point": point, "wall_s": time.perf_counter() - start}

    return cached_eval(point_key(profile, spec, point, split), compute, force=force)


def _row(point: dict, scored: dict, steps: int, split: str) -> dict:
    return {"point": point, "label": point_label(point), "path": point["path"], "alpha": point_alpha(point, steps),
            "split": split, "general": scored["general"], "general_se": scored["general_se"],
            "target": scored["target"], "target_se": scored["target_se"]}


def rewind_method(profile, spec, force: bool = False, log=None) -> dict:
    """One method's rewinding study (cached point by point): every variant and the final on the validation split, the
    point :func:`select_point` picks, and that point's test scores with paired gains over the final checkpoint."""

    loaded = _Loaded(profile, spec)
    final_val = evaluate_point(profile, spec, {"path": "final"}, "validation", loaded, force)
    rows, scored = [], {}
    for point in variants(profile, spec):
        scored[point_label(point)] = s = evaluate_point(profile, spec, point, "validation", loaded, force)
        gc.collect()  # a point's scoring copies (a train-path model, merge temporaries) go before the next loads
        rows.append(_row(point, s, spec.steps, "validation"))
        if log:
            log(f"{spec.method} {point_label(point)}: General {s['general']:.1f}, Target {s['target']:.1f}")
    final_row = _row({"path": "final"}, final_val, spec.steps, "validation")
    chosen = select_point(rows, final_row)
    final_test = evaluate_point(profile, spec, {"path": "final"}, "test")
    chosen_test = final_test if chosen["path"] == "final" else evaluate_point(profile, spec, chosen["point"], "test",
                                                                               loaded, force)
    record = {"method": spec.method, "steps": spec.steps, "validation": [*rows, final_row], "selected": chosen,
              "test": {"selected": _row(chosen["point"], chosen_test, spec.steps, "test"),
                       "final": _row({"path": "final"}, final_test, spec.steps, "test")},
              "gain_test": _gain(paired_difference(chosen_test["items"], final_test["items"])),
              "gain_validation": {point_label(p["point"]): _gain(paired_difference(scored[point_label(p["point"])]
                                                                                   ["items"], final_val["items"]))
                                  for p in rows}}
    if "generator" in {p["path"] for p in rows}:
        model = loaded.model
        record["rotation_errors"] = rotation_errors(model, sorted({0.3, 0.5, 0.6, 1.0, *profile.rewind_alphas}))
        uniform = uniform_scale({"alpha": UNIFORM_ALPHA, "schedule": "sqrt"})
        scales = {rule: layer_scales(model, rule, uniform if rule == "uniform" else None) for rule in LAYER_RULES}
        record["layers"] = [{"layer": k, "strength": v, **{f"scale_{r}": scales[r][k] for r in LAYER_RULES}}
                            for k, v in layer_strength(model).items()]
    return record


def _gain(diff: dict) -> dict:
    return {"general": diff["general"], "general_se": diff["general_se"], "target": diff["target"],
            "target_se": diff["target_se"]}


def run_rewinding(profile, methods=None, force: bool = False, log=print) -> dict:
    """Every rewinding study of the profile: ``profile.rewind_methods`` among ``profile.methods`` (or ``methods``).
    Trained runs come from the benchmark's store (trained here if missing, unless the store is read-only). Returns
    ``{"base": the profile base's validation scores, "bases": {method: the validation scores of the base it started
    from}, "methods": {method: record}}``."""

    profile = get_profile(profile) if isinstance(profile, str) else profile
    methods = methods or [m for m in profile.rewind_methods if m in profile.methods]

    def base_row(method=None):
        return _row({"path": "base"}, evaluate_base(profile, force, split="validation", method=method), 1, "validation")

    out = {"base": base_row(), "methods": {}, "bases": {}}
    for method in methods:
        spec = train_spec(profile, sized_method(profile, method))
        train_method(profile, spec)  # stored: returns at once
        evaluate_step(profile, spec)
        out["methods"][method] = rewind_method(profile, spec, force=force)
        out["bases"][method] = base_row(method)
    return out
