"""The one tensor helper the maths modules share: a detached float32 copy (spectra, geometry and the update
readers all compute in fp32, whatever the model's dtype)."""

from __future__ import annotations

import torch


def f32(t, device: str | torch.device | None = None) -> torch.Tensor:
    """``t`` (a tensor or array) detached, as float32, on ``device`` (default: where it is)."""
    return torch.as_tensor(t).detach().to(device=device, dtype=torch.float32)
