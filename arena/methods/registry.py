"""One registry of methods, each with the same shape: config, builder, trainable-parameter count."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Callable

from ..errors import ArenaError

# Linear leaves the paper targets ("all-linear" = q,k,v,o,gate,up,down; lm_head excluded; book/definitions.md A6).
EXCLUDED_LINEARS = ("lm_head",)


@dataclass(frozen=True)
class Method:
    """A finetuning method.

    - ``config(size, targets, steps)`` returns a peft config (None for methods that are not peft adapters, e.g. full FT);
    - ``init(model, size, init_batch)`` runs after wrapping (the kit's MiLoRA and KeepLoRA initialisations);
    - ``on_step(model, step)`` runs after each optimiser step (AdaLoRA's rank allocation);
    - ``sizes`` are the values of the size knob ``size_name`` budget matching may pick; empty = fixed size;
    - ``residual``: the init moves the base weights to W0 - s*B0*A0 so the starting model equals the base
      (PiSSA, MiLoRA, KeepLoRA); checkpoints then keep the step-0 adapter to rebuild the residual base.
    - ``wrap(model, size)``: a method written in plain torch instead of peft (``config`` stays None). The kit freezes
      every weight, then ``wrap`` adds the method's own trainable modules in place; checkpoints hold exactly the
      trainable tensors. A wrapped layer should expose ``delta_weight()`` (its fp32 dW) so the weight-space and
      activation analyses can read its update (chapter 06 has a worked example).
    - ``four_bit``: how it trains on a 4-bit (nf4) base, or None when it cannot, with ``no_four_bit`` saying why
      (``methods.quantized`` then trains it on the full-precision base);
    - ``paper_size``: the configuration the paper reports (``"r8"``), shown beside the paper's numbers;
    - ``rotation``: built as peft OFT layers (an orthogonal R = Cayley(Q)), so rewinding can walk its generator path
      (book/definitions.md D3).
    """

    name: str
    description: str
    family: str  # "full", "additive" (W0 + dW), "multiplicative" (W0 R^T), "scaling" (IA3-like)
    lr: float  # default learning rate for the kit's short CPU runs (profile.lr_scale multiplies it)
    config: Callable | None = None
    size_name: str | None = None
    sizes: tuple[int, ...] = ()
    default_size: int | None = None
    init: Callable | None = None
    on_step: Callable | None = None
    residual: bool = False
    needs_init_batch: bool = False
    size_divides_inputs: bool = False  # block sizes must divide every adapted layer's input width (OFT, BOFT)
    wrap: Callable | None = None
    four_bit: str | None = None
    no_four_bit: str | None = None
    paper_size: str | None = None
    rotation: bool = False
    builtin: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def matchable(self) -> bool:
        return len(self.sizes) > 1

    def label(self, size: int | None) -> str:
        return self.name if size is None or self.size_name is None else f"{self.name}-{self.size_name}{size}"


_REGISTRY: dict[str, Method] = {}


def register(method: Method, replace: bool = False) -> Method:
    """Add a method (one call, e.g. from a notebook). Re-registering a name needs ``replace=True``."""
    if not isinstance(method, Method):
        raise ArenaError("register() takes an arena.methods.Method(...)")
    if method.name in _REGISTRY and not replace:
        raise ArenaError(f"a method named {method.name!r} is already registered; pass replace=True to redefine it")
    if method.default_size is not None and method.sizes and method.default_size not in method.sizes:
        raise ArenaError(f"{method.name}: default_size {method.default_size} is not one of sizes {method.sizes}")
    _REGISTRY[method.name] = method
    return method


def _callables(method: Method):
    for fn in (method.config, method.wrap, method.init, method.on_step):
        while isinstance(fn, functools.partial):
            fn = fn.func
        if fn is not None:
            yield fn


def source_module(method: Method) -> str | None:
    """The importable module that defines (and registers) ``method``, or None when it lives in ``__main__`` (a
    notebook cell or script): worker processes import it to get the method, so such methods train in parallel."""
    for fn in _callables(method):
        module = getattr(fn, "__module__", None)
        if module and module != "__main__" and not module.startswith(("arena.", "functools", "builtins")):
            return module
    return None


def loadable_elsewhere(method: Method) -> bool:
    """Whether a fresh process (a benchmark worker, a side scorer) can get ``method``: the kit's own, or one an
    importable module registers (``register_from``)."""
    return method.builtin or source_module(method) is not None


def register_from(module: str | None) -> None:
    """In a fresh process: import ``module`` (``source_module``'s answer; None for the kit's own methods), which
    registers the method it defines here too."""
    if module:
        import importlib

        importlib.import_module(module)


def fingerprint(method: Method) -> str | None:
    """A hash of a user method's code (None for the kit's own): part of the training cache key, so editing the
    method retrains it instead of returning results of the old code. A method in a module is hashed by the whole
    module's source (its classes included); one in a notebook cell by its functions and the cell-level classes and
    functions they name."""
    if method.builtin:
        return None
    import hashlib
    import inspect
    import sys

    parts = [method.description, str(method.lr), str(method.sizes)]
    module = source_module(method)
    if module and module in sys.modules:
        try:
            parts.append(inspect.getsource(sys.modules[module]))
        except (OSError, TypeError):
            module = None
    if not module or module not in sys.modules:
        for fn in _callables(method):
            parts.append(_source(fn))
            scope = getattr(fn, "__globals__", {})
            for name in getattr(getattr(fn, "__code__", None), "co_names", ()):
                obj = scope.get(name)
                if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == fn.__module__:
                    parts.append(_source(obj))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _source(obj) -> str:
    import inspect

    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # defined without a source file: fall back to its name
        return getattr(obj, "__qualname__", type(obj).__name__)


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def method_names() -> list[str]:
    return list(_REGISTRY)


def get_method(name: str | Method) -> Method:
    if isinstance(name, Method):
        return name
    if name not in _REGISTRY:
        raise ArenaError(f"unknown method {name!r}; known methods: {', '.join(_REGISTRY)} "
                         "(register a new one with arena.methods.register(Method(...)))")
    return _REGISTRY[name]


def linear_targets(model) -> list[str]:
    """Leaf names of the linear layers to adapt (every nn.Linear, 4-bit ones included, except the LM head)."""
    import torch

    names = set()
    for full_name, module in model.named_modules():
        leaf = full_name.rsplit(".", 1)[-1]
        is_linear = isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt")
        if is_linear and leaf not in EXCLUDED_LINEARS:
            names.add(leaf)
    if not names:
        raise ArenaError("the model has no linear layers to adapt")
    return sorted(names)


def _check_size(method: Method, size: int | None) -> int | None:
    if method.size_name is None:
        return None
    size = method.default_size if size is None else int(size)
    if size is None or size < 1:
        raise ArenaError(f"{method.name}: {method.size_name} must be a positive integer, not {size!r}")
    return size


def _check_divides(method: Method, size: int | None, model) -> None:
    """peft silently shrinks an OFT block size that does not divide a layer's width; refuse it instead."""
    if not method.size_divides_inputs or size is None:
        return
    targets = set(linear_targets(model))
    widths = {m.in_features for n, m in model.named_modules()
              if n.rsplit(".", 1)[-1] in targets and hasattr(m, "in_features")}
    if any(w % size for w in widths):
        valid = [s for s in method.sizes if all(w % s == 0 for w in widths)]
        raise ArenaError(f"{method.label(size)}: {method.size_name}={size} does not divide the layer widths "
                         f"{sorted(widths)}; choose one of {valid}")


def build(name: str | Method, model, size: int | None = None, init_batch: dict | None = None, steps: int = 100):
    """Wrap ``model`` with the method (in place for peft). Full FT trains every weight except embeddings and LM head
    (the paper's full-FT count is about the non-embedding parameters, A8)."""
    method = get_method(name)
    size = _check_size(method, size)
    if method.wrap is not None:
        return _wrapped(method, model, size)
    if method.config is None:
        _full_finetuning(model)
        return model
    from peft import get_peft_model

    _check_divides(method, size, model)
    config = method.config(size, linear_targets(model), steps)
    try:
        wrapped = get_peft_model(model, config)
    except (ValueError, TypeError, RuntimeError) as err:
        raise ArenaError(f"{method.label(size)} cannot wrap this model: {err}") from None
    if method.init is not None:
        if method.needs_init_batch and init_batch is None:
            raise ArenaError(f"{method.name} initialises from a gradient and needs init_batch=...")
        method.init(wrapped, size, init_batch)
    return wrapped


def _wrapped(method: Method, model, size: int | None):
    """A plain-torch method: every weight frozen, then the method's own ``wrap`` adds its trainable modules."""
    for p in model.parameters():
        p.requires_grad_(False)
    model = method.wrap(model, size) or model
    if not any(p.requires_grad for p in model.parameters()):
        raise ArenaError(f"{method.name}: wrap() added no trainable parameters")
    return model


def _full_finetuning(model) -> None:
    embeddings = {id(p) for p in model.get_input_embeddings().parameters()}
    if model.get_output_embeddings() is not None:
        embeddings |= {id(p) for p in model.get_output_embeddings().parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) not in embeddings)


def count_trainable(name: str | Method, config, size: int | None = None) -> int:
    """Trainable parameters of the method at ``size`` on a model of this ``config`` (a transformers config), counted
    on a meta-device skeleton: no weights are allocated, so this is instant also for a 7B config."""
    method = get_method(name)
    size = _check_size(method, size)
    model_skeleton = skeleton(config)
    model = copy.deepcopy(model_skeleton)
    if method.wrap is not None:
        model = _wrapped(method, model, size)
    elif method.config is None:
        _full_finetuning(model)
    else:
        from peft import get_peft_model

        _check_divides(method, size, model)
        cfg = method.config(size, linear_targets(model), 100)
        if hasattr(cfg, "init_lora_weights"):
            cfg.init_lora_weights = True  # PiSSA-style inits need real weights; the count is the same
        model = get_peft_model(model, cfg)
    # AdaLoRA's rank counter is frozen by its initialiser, which does not run on meta tensors
    return sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and ".ranknum." not in n)


_SKELETONS: dict[str, object] = {}


def skeleton(config):
    """The model of ``config`` on the meta device (no weights allocated), built once per config."""
    import torch
    from transformers import AutoModelForCausalLM

    key = config.to_json_string()
    if key not in _SKELETONS:
        with torch.device("meta"):
            _SKELETONS[key] = AutoModelForCausalLM.from_config(config)
    return _SKELETONS[key]
