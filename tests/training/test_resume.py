"""Training interrupted after a checkpoint and resumed with `resume_from_checkpoint` ends exactly where an
uninterrupted run with the same seed ends."""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from tests.helpers.training_job import small_trainer


class Interrupted(RuntimeError):
    pass


class InterruptAt(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupted(f"stopped at step {self.step}")


def finish(trainer, resume_from_checkpoint=None):
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer.evaluate(), {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


def test_resumed_run_ends_with_the_same_metrics_and_weights(tmp_path):
    # 320 digits, batch 32: 10 steps an epoch, 20 in all. The checkpoint (step 7) and the interruption (step 9)
    # fall mid-epoch, so resuming must also restore the position in the shuffled epoch and the schedule.
    checkpoints = dict(save_strategy="steps", save_steps=7, save_total_limit=None)
    metrics, weights = finish(small_trainer(tmp_path / "uninterrupted"))

    interrupted = small_trainer(tmp_path / "run", **checkpoints)
    interrupted.add_callback(InterruptAt(9))
    with pytest.raises(Interrupted):
        interrupted.train()
    checkpoint = tmp_path / "run" / "checkpoint-7"
    assert checkpoint.is_dir()

    resumed_metrics, resumed_weights = finish(small_trainer(tmp_path / "run", **checkpoints), str(checkpoint))
    assert resumed_metrics["epoch"] == metrics["epoch"] == 2
    assert resumed_metrics["eval_accuracy"] == metrics["eval_accuracy"]
    assert resumed_metrics["eval_loss"] == pytest.approx(metrics["eval_loss"], abs=1e-6)
    for name, parameter in weights.items():
        torch.testing.assert_close(resumed_weights[name], parameter, atol=1e-6, rtol=0, msg=name)
    # ... and training did move the weights: the comparison is not between two untouched models.
    untouched = small_trainer(tmp_path / "untouched").model
    assert any(not torch.allclose(p, weights[name]) for name, p in untouched.named_parameters())
