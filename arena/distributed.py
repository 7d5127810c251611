"""Data-parallel training under ``accelerate launch``: the same trainer on several GPUs (or CPU processes).

    accelerate launch --multi_gpu --num_processes 4 -m arena train --profile paper --method lora
    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 -m arena train --profile smoke ...  # CPU

The run is the same run as in one process, so it has the same results key: every optimiser step still sees the
profile's ``batch_size x grad_accum`` sequences, the ``grad_accum`` micro-batches of a step are dealt to the P
processes (process r takes micro-batches r, r + P, ...), each process divides its loss by its own count
``grad_accum / P`` and DDP averages the gradients over the P processes, so the update is the single-process one (sum
of micro-batch losses / grad_accum) up to the order of float additions. Only process 0 writes checkpoints, trainer
state and results. One difference remains: dropout masks (LoRA's 0.05). Process 0 keeps the single-process random
stream and process r draws from a stream seeded with seed + r, so a launched run with dropout is a statistically
equivalent run rather than the same bits; the per-process streams are saved with the trainer state and restored when
a launch of the same size resumes it. Accelerate does the process group, device placement and DDP wrapping; FSDP and
DeepSpeed launches are refused with the fix (the kit's adapters are small enough to replicate; a 4-bit base is not
sharded here).
"""

from __future__ import annotations

import contextlib
import os

from .errors import ArenaError


def world_size() -> int:
    """Processes in this launch (``WORLD_SIZE``, set by ``accelerate launch`` and ``torchrun``); 1 otherwise."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes results: process 0 of a launch, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


class Single:
    """One process: every operation is the plain one (the trainer's default path, unchanged by this module)."""

    size, rank, main = 1, 0, True

    def prepare(self, model):
        return model

    def micro_batches(self, grad_accum: int) -> list[int]:
        return list(range(grad_accum))

    def no_sync(self, model, sync: bool):
        return contextlib.nullcontext()

    def seed_streams(self, seed: int) -> None:
        pass

    def rng_states(self):
        return None

    def set_rng_state(self, states) -> None:
        pass

    def total(self, values: list[float]) -> list[float]:
        return values

    def barrier(self) -> None:
        pass


class DataParallel(Single):
    """Several processes launched by ``accelerate launch``: DDP through accelerate."""

    def __init__(self):
        from accelerate import Accelerator
        from accelerate.utils import DistributedType

        # explicit: a user's accelerate config (mixed precision, accumulation) would otherwise rescale the loss or
        # wrap the forward, and the update would no longer be the single-process one (the trainer autocasts itself)
        self.accelerator = Accelerator(mixed_precision="no", gradient_accumulation_steps=1)
        kind = self.accelerator.distributed_type
        if kind in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
            raise ArenaError(f"the kit's trainer runs data-parallel (DDP) launches, not {kind.value}; launch with "
                             "`accelerate launch --multi_gpu --num_processes N -m arena train ...`")
        if self.accelerator.num_processes != world_size():
            raise ArenaError(f"WORLD_SIZE={world_size()} but accelerate set up {self.accelerator.num_processes} "
                             "process(es): every process would train alone. On GPUs launch with `accelerate launch "
                             "--multi_gpu`; on CPU also set ACCELERATE_USE_CPU=true")
        self.size = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        self.main = self.accelerator.is_main_process

    def prepare(self, model):
        # only the model: the optimiser keeps the unwrapped parameters (DDP shares them), so its state dict and the
        # scheduler are exactly the single-process ones and a run resumes in either mode
        return self.accelerator.prepare_model(model)

    def micro_batches(self, grad_accum: int) -> list[int]:
        if grad_accum % self.size:
            raise ArenaError(f"grad_accum={grad_accum} is not a multiple of the {self.size} processes: each process "
                             f"takes an equal share of a step's micro-batches; set --grad-accum to a multiple of "
                             f"{self.size} (the paper profile's 128 suits 1, 2, 4 or 8 GPUs)")
        return list(range(self.rank, grad_accum, self.size))

    def no_sync(self, model, sync: bool):
        # gradients are averaged across processes once per step, after the last local micro-batch
        return contextlib.nullcontext() if sync else self.accelerator.no_sync(model)

    def seed_streams(self, seed: int) -> None:
        """Process 0 keeps the seed's stream (the single-process one); process r uses seed + r, so dropout masks
        differ across the micro-batches of a step as they do in one process."""
        import torch

        if self.rank:
            torch.manual_seed(seed + self.rank)

    def rng_states(self) -> list:
        """Every process's CPU random state, gathered to all (process 0 saves them with the trainer state)."""
        import torch
        import torch.distributed as dist

        states = [None] * self.size
        dist.all_gather_object(states, torch.get_rng_state())
        return states

    def set_rng_state(self, states) -> None:
        import torch

        if states is not None and len(states) == self.size:
            torch.set_rng_state(states[self.rank])

    def total(self, values: list[float]) -> list[float]:
        """Sums over processes (each process's loss share is already divided by the step's grad_accum)."""
        import torch

        tensor = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        return self.accelerator.reduce(tensor, "sum").tolist()

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()


@contextlib.contextmanager
def main_first():
    """Process 0 runs the block first, then the others (shared caches: assets, the suite, a forced run's folder);
    one process just runs it."""
    if world_size() == 1:
        yield
        return
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # the process group as Accelerator will set it up (PartialState is shared; on CPU it must be told, as Accelerator
    # is by the same variable)
    with PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).main_process_first():
        yield


def context() -> Single:
    """``DataParallel`` under a multi-process launch, else ``Single``."""
    return DataParallel() if world_size() > 1 else Single()
