"""A request from outside train() (a launcher's signal handler) to save a checkpoint and stop.

    request()             asks; True when train() is in its training loop and will answer, False otherwise (then
                          the caller stops the run its own way). It only sets a flag: safe in a signal handler.
    StoppedAtCheckpoint   what train() raises once the checkpoint of the step it stopped at is on disk.

train() listens while it runs its training loop. The request is looked at on the logging steps, where the
processes synchronise already (every `log_every_steps`): it is reduced over them with the logged loss, so one
process having seen it is enough and every process saves the same step, then all of them stop.

The final evaluation (the main process alone) listens while a fine-tuning of a protocol runs (evaluate/parts.py):
the fine-tuning saves its progress at its next epoch end and stops (finetune_progress.py), or, asked during its last
epoch or its test pass, stops once its metrics are saved: StoppedInEvaluation.
"""
from __future__ import annotations


class StoppedAtCheckpoint(KeyboardInterrupt):
    """train() stopped on request after saving the checkpoint of `step`; the run resumes from there. `during` and
    `saved` say where it stopped and what it saved, in words."""
    during = "training"

    def __init__(self, step: int):
        super().__init__(f"stopped on request after saving the checkpoint of step {step}")
        self.step = step
        self.saved = f"checkpoint saved at step {step}"


class StoppedInEvaluation(StoppedAtCheckpoint):
    """train() stopped on request during its final evaluation (its checkpoint is that of the last step, `step`) after
    saving `saved` (a fine-tuning's progress, or its metrics); the rerun goes on from there."""
    during = "evaluation"

    def __init__(self, step: int, saved: str):
        KeyboardInterrupt.__init__(self, f"stopped on request during the final evaluation: {saved}")
        self.step = step
        self.saved = saved


_listening = False
_requested = False


def request() -> bool:
    """Ask the training loop to checkpoint at its next logging step and stop; False when no loop is listening."""
    global _requested
    if not _listening:
        return False
    _requested = True
    return True


def requested() -> bool:
    return _requested


def listen() -> None:
    """train(), as its training loop starts: requests are answered from now on (none is pending)."""
    global _listening, _requested
    _requested, _listening = False, True


def stop_listening() -> bool:
    """train(), as its training loop ends: whether a request came that the loop did not answer (it came after the
    loop's last logging step)."""
    global _listening, _requested
    unanswered = _requested
    _requested, _listening = False, False
    return unanswered
