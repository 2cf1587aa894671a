"""FSDP (torch's `fully_shard`) over two CPU processes (gloo) trains to the same weights as one process."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from perceiver_hf import PerceiverIOConfig, PerceiverIOForMultimodalAutoencoding
from perceiver_hf.core.attention import PerceiverIOLayer
from perceiver_hf.core.decoder import PerceiverIODecoder
from perceiver_hf.sharding import fsdp_units
from tests.helpers import REPO, free_port
from tests.helpers.fsdp_job import small_model, train

JOB = REPO / "tests" / "helpers" / "fsdp_job.py"
STEPS = 3


def test_units_are_encoder_layers_and_whole_decoders():
    model = small_model()
    units = fsdp_units(model)
    encoder = model.perceiver.encoder
    assert units == [encoder.cross_attention, *encoder.self_attention_layers, model.decoder]
    assert all(isinstance(unit, (PerceiverIOLayer, PerceiverIODecoder)) for unit in units)

    config = PerceiverIOConfig.for_multimodal_autoencoding(
        num_frames=2, image_size=(8, 8), audio_samples_per_frame=8, samples_per_patch=4, num_labels=4,
        num_latents=8, d_latents=16, num_self_attends_per_block=1, num_self_attention_heads=2,
    )
    autoencoder = PerceiverIOForMultimodalAutoencoding(config)
    assert fsdp_units(autoencoder)[-1] is autoencoder.decoder
    assert autoencoder.decoder.cross_attention not in fsdp_units(autoencoder)


def test_two_fsdp_processes_train_like_one(tmp_path):
    output = tmp_path / "fsdp.safetensors"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), str(JOB), str(output), str(STEPS),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    job = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert job.returncode == 0, job.stderr[-3000:]
    sharded = load_file(output)

    single = small_model()
    initial = {name: tensor.clone() for name, tensor in single.state_dict().items()}
    train(single, STEPS)
    expected = single.state_dict()
    assert sharded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert (sharded[name] - tensor).abs().max() <= 1e-5, name
    assert sum(not torch.equal(tensor, initial[name]) for name, tensor in expected.items()) > len(expected) // 2
