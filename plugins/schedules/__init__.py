"""Built-in learning-rate schedules: each factory returns `step -> factor of the base lr`.

A pure function of the 0-based optimizer step needs no state of its own, so a resumed
run continues exactly. Epoch-based schedules count whole epochs done at `step`.

  constant:     1
  exponential:  gamma ** (epochs past start_epoch)   (char-rnn: 0.97 after epoch 10)
  step:         gamma ** (epoch // step_size)
  cosine:       linear warmup over warmup_steps, then cosine from 1 down to min_factor
"""
import math

from seqgen import hookimpl

GAMMA = {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.97}


def constant(*, steps_per_epoch, total_steps):
    return lambda step: 1.0


def exponential(*, steps_per_epoch, total_steps, gamma, start_epoch):
    return lambda step: gamma ** max(0, step // steps_per_epoch + 1 - start_epoch)


def step_decay(*, steps_per_epoch, total_steps, gamma, step_size):
    return lambda step: gamma ** ((step // steps_per_epoch) // step_size)


def cosine(*, steps_per_epoch, total_steps, warmup_steps, min_factor):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def _schema(**props) -> dict:
    return {"type": "object", "properties": props}


@hookimpl
def register_schedules(register):
    register("constant", constant, _schema(), "The base learning rate throughout.")
    register("exponential", exponential, _schema(
        gamma={**GAMMA, "description": "Multiply the learning rate by this every epoch."},
        start_epoch={"type": "integer", "minimum": 0, "default": 10,
                     "description": "First epoch (1-based) after which decay starts."}),
        "Decay by gamma every epoch after start_epoch (char-rnn's 0.97 after epoch 10).")
    register("step", step_decay, _schema(
        gamma={**GAMMA, "description": "Multiply the learning rate by this every step_size "
                                       "epochs."},
        step_size={"type": "integer", "minimum": 1, "default": 10,
                   "description": "Epochs between decays."}),
        "Decay by gamma every step_size epochs.")
    register("cosine", cosine, _schema(
        warmup_steps={"type": "integer", "minimum": 0, "default": 0,
                      "description": "Linear warmup steps."},
        min_factor={"type": "number", "minimum": 0, "maximum": 1, "default": 0.0,
                    "description": "Final learning rate as a fraction of the base."}),
        "Linear warmup, then cosine decay to min_factor at the last step "
        "(train.max_steps, or epochs x batches).")
