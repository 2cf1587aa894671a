"""A few FSDP training steps of a small float64 image classifier, each process taking its half of every batch.

Run by the FSDP test as `python -m torch.distributed.run --nproc_per_node 2 tests/helpers/fsdp_job.py OUTPUT_FILE STEPS`
(CPU, gloo); rank 0 writes the trained model's full state dict to OUTPUT_FILE. `train(model, steps)` is the same
training in one process, on whole batches.
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from perceiver_hf import PerceiverIOConfig, PerceiverIOForImageClassification

GLOBAL_BATCH = 8


def small_model() -> PerceiverIOForImageClassification:
    torch.manual_seed(0)
    config = PerceiverIOConfig.for_image_classification(
        "fourier", image_size=(8, 8), num_labels=5, num_latents=8, d_latents=32, num_blocks=2,
        num_self_attends_per_block=2, num_self_attention_heads=4,
    )
    # float64: the comparison with one process is then about the algebra, not about the order of float32 sums
    return PerceiverIOForImageClassification(config).double().train()


def batches(steps: int):
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        pixels = torch.randn(GLOBAL_BATCH, 3, 8, 8, generator=generator, dtype=torch.float64)
        yield pixels, torch.randint(0, 5, (GLOBAL_BATCH,), generator=generator)


def train(model: torch.nn.Module, steps: int, rank: int = 0, world_size: int = 1) -> None:
    """AdamW steps; each process takes its contiguous share of every global batch (FSDP averages the gradients)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    share = GLOBAL_BATCH // world_size
    for pixels, labels in batches(steps):
        part = slice(rank * share, (rank + 1) * share)
        model(pixel_values=pixels[part], labels=labels[part]).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def main(output_file: str, steps: str) -> None:
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    from perceiver_hf.sharding import fully_shard_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    model = fully_shard_model(small_model(), mesh=init_device_mesh("cpu", (world_size,)))
    train(model, int(steps), rank, world_size)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    if rank == 0:
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, output_file)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
