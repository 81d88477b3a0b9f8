"""Ending a multi-process run (`accelerate launch`) cleanly.

A rank that leaves Python with its process group still up has the group torn down by interpreter exit,
while the other ranks may still be using it (rank 0 saving and evaluating the final model): gloo's worker
threads are then destroyed running and the process aborts ("terminate called without an active
exception", SIGABRT). Programs that launch ranks end them with `finish_processes()` instead.
"""

from __future__ import annotations


def finish_processes() -> None:
    """Wait for every rank, then destroy the process group; nothing when none is up (one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
