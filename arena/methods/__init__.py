"""The method registry: every finetuning method has the same shape (book/definitions.md A8).

A :class:`Method` holds a peft config factory (or the kit's own wrapper), its size knob (rank, block size) with the
sizes budget matching may choose from, and its default learning rate. ``register(Method(...))`` adds one, from a
notebook cell too; ``build(name, model, size)`` wraps a model; ``count_trainable`` counts on a meta-device skeleton.
"""

from .registry import (Method, build, count_trainable, get_method, linear_targets, method_names, register,
                       unregister)
from . import builtin  # noqa: F401  (registers full, lora, dora, pissa, milora, keeplora, oft, boft, ...)

__all__ = ["Method", "build", "count_trainable", "get_method", "linear_targets", "method_names", "register",
           "unregister"]
