"""Batch-1 generation for the fused LSTM on CPU: a chunk of tokens per C++ call.

At batch 1 a token's work is small (0.9 MFLOP at 2x256) but its weights are not: they
stream 3 MB through a 2 MB L2, which pushes torch's and Python's code out of the
caches, so each of the ~25 ops of a step, head and draw costs 15-20 us more than its own
work. `TokenLoop.run` does the steps, head and choices of a whole chunk of tokens in one
call to lstm_generate.cpp (built by seqgen.load_native on first use), reading the
stepper's own state buffers, so calls and chunks may be mixed.

Same formula and weights as nn.LSTM; the products sum in another order and exp is
glibc's (vector) exp, so logits differ from the torch path by rounding (~1e-7, checked
by the tests) and a draw lands on another token only where u falls within that of a
boundary (the cumulative sum is kept in double, as torch's). Used by generation at
batch 1 in float32 for a strategy with a plain choice (greedy, random, temperature:
seqgen.PlainChoice). SEQGEN_NATIVE=0 turns it off.
"""
from __future__ import annotations

import torch

from seqgen import load_native


def kernel():
    """The compiled extension (run), or None where it can't be built."""
    return load_native(__file__, "lstm_generate.cpp", "seqgen_lstm_generate_v1", openmp=True)


class TokenLoop:
    """Runs tokens through a batch-1 LSTMStepper's buffers, its folded input table
    ([V, 4H]: embedding rows through layer 1's input weights, plus its biases) and a
    linear head (head_w [V, H], head_b [V] or None)."""

    def __init__(self, stepper, table: torch.Tensor, head_w: torch.Tensor,
                 head_b: torch.Tensor | None):
        upper = stepper.weights[1:]                        # layers 2..L
        L, H = len(stepper.weights), stepper.c.shape[2]
        I = stepper.input_size
        self.h = stepper.xh[0, I:].view(L, H)              # the stepper's buffers, in place
        self.c = stepper.c.view(L, H)
        self.table = table.contiguous()
        self.w_hh = [w_hh.contiguous() for _, w_hh, _, _ in stepper.weights]
        self.w_ih = [w_ih.contiguous() for w_ih, _, _, _ in upper]
        empty = table.new_empty(0)
        self.bias = [empty if b_ih is None else b_ih + b_hh for _, _, b_ih, b_hh in upper]
        self.head_w = head_w.contiguous()
        self.head_b = empty if head_b is None else head_b.contiguous()
        self.parity = 0                                     # zig-zag phase, kept across calls

    def run(self, logits: torch.Tensor, count: int, temperature: float,
            uniforms: torch.Tensor | None, eos: int | None, step_last: bool):
        """Up to `count` tokens, choosing each from `logits` [V] (float32, overwritten with
        the next token's logits after each step): argmax when uniforms is None, else a
        draw from softmax(logits / temperature) with uniforms[t]. Stops after `eos`; after
        the last token steps only if step_last. -> (tokens [n], logits chosen from [n, V])."""
        tokens, chosen_from = kernel().run(
            logits, torch.empty(0) if uniforms is None else uniforms, float(temperature),
            -1 if eos is None else int(eos), int(count), bool(step_last), self.parity,
            self.h, self.c, self.table, self.w_hh, self.w_ih, self.bias, self.head_w,
            self.head_b)
        self.parity += len(tokens)
        return tokens, chosen_from


def applies(stepper, table: torch.Tensor, head_w: torch.Tensor, head_b) -> bool:
    """Whether the kernel can run this batch-1 stepper with this table and head."""
    tensors = [table, head_w, stepper.xh, stepper.c] + [head_b] * (head_b is not None)
    tensors += [w for layer in stepper.weights for w in layer if w is not None]
    return (stepper.xh.shape[0] == 1 and stepper.c.is_contiguous()
            and table.shape[0] == head_w.shape[0]
            and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and kernel() is not None)
