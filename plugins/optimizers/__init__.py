"""Built-in optimizers: torch's Adam, AdamW, SGD and RMSprop.

Each takes only the options it uses (momentum exists for sgd and rmsprop alone), with
the defaults seqgen has always had; AdamW included, whose weight decay is 0 unless set.
The trainer's learning-rate schedule scales `lr` every step.
"""
import torch

from seqgen import hookimpl

# Upper bounds: far above any value that trains, far below float32's overflow (where
# torch fails to convert the number instead of the run diverging cleanly). Momentum 1 or
# more never lets old gradients fade.
LR = {"type": "number", "exclusiveMinimum": 0, "maximum": 1000, "default": 0.002,
      "description": "Base learning rate (the schedule multiplies it)."}
WEIGHT_DECAY = {"type": "number", "minimum": 0, "maximum": 1000, "default": 0,
                "description": "L2 penalty (adamw: decoupled weight decay)."}
MOMENTUM = {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0}


def _schema(**props) -> dict:
    return {"type": "object", "properties": props}


def adam(params, *, lr, weight_decay):
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def adamw(params, *, lr, weight_decay):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def sgd(params, *, lr, weight_decay, momentum):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def rmsprop(params, *, lr, weight_decay, momentum):
    return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@hookimpl
def register_optimizers(register):
    register("adam", adam, _schema(lr=LR, weight_decay=WEIGHT_DECAY), "Adam (torch.optim.Adam).")
    register("adamw", adamw, _schema(lr=LR, weight_decay=WEIGHT_DECAY),
             "Adam with decoupled weight decay (torch.optim.AdamW).")
    register("sgd", sgd, _schema(lr=LR, weight_decay=WEIGHT_DECAY, momentum=MOMENTUM),
             "Stochastic gradient descent, with optional momentum (torch.optim.SGD).")
    register("rmsprop", rmsprop, _schema(lr=LR, weight_decay=WEIGHT_DECAY, momentum=MOMENTUM),
             "RMSprop (torch.optim.RMSprop).")
