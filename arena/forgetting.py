"""Cheap forgetting proxies beside the paper's General score (book/definitions.md P):

- **CE drift**: mean token cross-entropy on general text, finetuned minus base (peft's method_comparison measures the
  base with the adapter disabled; the kit uses the untouched base model, because PiSSA, MiLoRA and KeepLoRA rewrite
  the base weights to a residual and "adapter disabled" would not be the base for them);
- **KL(base || finetuned)**: mean over tokens of sum_v p_base(v) (log p_base(v) - log p_ft(v)) on the same text
  (RL's Razor measures it on the new task's prompts; here it is general text, so it reads as drift of general
  behaviour).

Both are computed per document so the book can give paired standard errors.
"""

from __future__ import annotations

import torch
from .stats import mean_se


def _encode(tokenizer, texts: list[str], max_length: int) -> list[torch.Tensor]:
    return [torch.tensor(tokenizer(t, add_special_tokens=True, truncation=True, max_length=max_length)["input_ids"])
            for t in texts]


@torch.no_grad()
def _log_probs(model, ids: torch.Tensor) -> torch.Tensor:
    """Next-token log-probabilities (fp32), shape (n - 1, vocab)."""
    device = next(model.parameters()).device
    logits = model(input_ids=ids[None].to(device)).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1).cpu()


def cross_entropy_and_kl(model, base, tokenizer, texts: list[str], max_length: int = 256) -> dict:
    """Per-document mean token CE of ``model`` and of ``base``, and mean token KL(base || model)."""
    return against_base(log_probs(model, tokenizer, texts, max_length), base, tokenizer, texts, max_length)


def log_probs(model, tokenizer, texts: list[str], max_length: int = 256) -> list[torch.Tensor]:
    """The finetuned side of the proxies: per document, next-token log-probabilities on the CPU (fp32), so the model
    can be freed before the base is loaded (one model on the device at a time; ``against_base``). Documents are
    paragraphs of a few hundred tokens: 50 of them over a 152k vocabulary hold about 8 GB of host memory."""
    return [_log_probs(model, ids) if len(ids) >= 2 else None for ids in _encode(tokenizer, texts, max_length)]


def against_base(finetuned: list, base, tokenizer, texts: list[str], max_length: int = 256) -> dict:
    """``cross_entropy_and_kl`` from the finetuned model's stored ``log_probs`` and the base model."""
    out = {"ce": [], "ce_base": [], "kl": []}
    for lp, ids in zip(finetuned, _encode(tokenizer, texts, max_length)):
        if lp is None:
            continue
        lp0 = _log_probs(base, ids)
        target = ids[1:, None]
        out["ce"].append(-lp.gather(1, target).mean().item())
        out["ce_base"].append(-lp0.gather(1, target).mean().item())
        out["kl"].append((lp0.exp() * (lp0 - lp)).sum(-1).mean().item())
    return out


def summarise_proxies(per_doc: dict) -> dict:
    """CE drift and KL with standard errors over documents (paired: the same documents for base and finetuned)."""

    drift = [a - b for a, b in zip(per_doc["ce"], per_doc["ce_base"])]
    ce_drift, ce_drift_se = mean_se(drift)
    kl, kl_se = mean_se(per_doc["kl"])
    return {"ce_drift": ce_drift, "ce_drift_se": ce_drift_se, "kl": kl, "kl_se": kl_se,
            "ce": mean_se(per_doc["ce"])[0], "ce_base": mean_se(per_doc["ce_base"])[0]}
