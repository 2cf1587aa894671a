"""The demo's training under `accelerate launch` with two processes (DDP; gloo on CPU)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from tests.helpers import REPO, assert_parity, free_port
from tests.helpers.training_job import small_trainer

JOB = REPO / "tests" / "helpers" / "training_job.py"
STEPS = 4




def test_two_processes_end_with_identical_weights_equal_to_one_process(tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        str(JOB), str(tmp_path), str(STEPS),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    job = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr[-3000:]

    ranks = [load_file(tmp_path / f"weights-rank{rank}-of-2.safetensors") for rank in range(2)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"processes disagree on {name}"

    # Each process took half of every global batch of 32 and DDP averaged the gradients: the same steps as one
    # process taking whole batches, up to the order of floating-point sums. (Key biases have an exactly-zero true
    # gradient, softmax ignores them; Adam scales their float noise up to ~1e-5 moves, so compare as parity does.)
    single = small_trainer(tmp_path / "single", max_steps=STEPS)
    initial = {name: p.detach().clone() for name, p in single.model.state_dict().items()}
    single.train()
    for name, parameter in single.model.state_dict().items():
        assert_parity(ranks[0][name], parameter)
    assert any(not torch.allclose(p, initial[name]) for name, p in single.model.state_dict().items())
