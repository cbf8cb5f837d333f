"""Generation's LSTM step on CPU: every core on the matrix products, buffers made once.

At batch 1 a 2-layer LSTM of H=256 streams 3.3 MB of float32 weights per token through
matrix-vector products, which MKL runs on one thread (two torch.lstm_cell calls: ~120 us
a token), and the step's dozen small ops each cost a microsecond of dispatch. This stepper
  - joins each layer's [W_ih | W_hh] and cuts its 4H gate rows into `blocks` (one per
    thread, up to 4) run as one batched product: torch.bmm spreads its batch over the
    threads, so every core streams its share of the weights;
  - keeps inputs, states and gates in buffers made once, so a layer is one product and
    six pointwise ops writing in place.
Same weights and the same formula as nn.LSTM; only the summation order of the products
differs (float32 rounding, ~1e-7). Used for unidirectional cells in eval mode without
autograd, at small batch (FusedLSTM.stepper decides); state (h, c) as nn.LSTM's.
Batch-1 generation in float32 runs whole chunks of tokens on the same buffers through
`token_loop` instead (lstm_generate.py: one C++ call per chunk).
"""
from __future__ import annotations

import torch

from seqgen import State

from .lstm_generate import TokenLoop, applies

# Per step, 2 cores, H=256 (this stepper / lstm_cell / nn.LSTM): 276/338/416 us at 16 rows,
# 1.46/1.78/1.41 ms at 128, 2.8/3.3/2.9 ms at 256, 12.0/12.8/10.6 ms at 1024. Up to 256
# rows it beats lstm_cell and roughly ties nn.LSTM; beyond, nn.LSTM pulls ahead.
MAX_BATCH = 256


def blocks_for_threads() -> int:
    """How many blocks of gate rows: one per thread, up to 4 (4H divides by 1, 2 and 4).
    With one thread the joined weights and in-place buffers still beat lstm_cell (batch 1:
    102 vs 118 us a step)."""
    threads = torch.get_num_threads()
    return 4 if threads >= 4 else 2 if threads >= 2 else 1


class _Layer:
    """One layer's views into the stepper's buffers, and its prepared weights."""
    __slots__ = ("xh", "w", "bias", "table", "gates", "sig", "i", "f", "g", "o", "tanh_g",
                 "c", "tanh_c", "h")

    def __init__(self, xh, w_ih, w_hh, b_ih, b_hh, c, h, blocks: int, table=None):
        B, H = h.shape
        rows = 4 * H // blocks                                      # gate rows per block
        # [4H, I+H] -> [blocks, I+H, rows]: block j is gate rows j*rows.., made contiguous:
        # with this layout a row's products round the same at every batch size from 2 on
        # (a transposed view switches kernels at 16 rows), which `seqgen serve` relies on
        # (w_ih None: the layer's input products come from `table`, see fold_input)
        w = w_hh if w_ih is None else torch.cat([w_ih, w_hh], 1)
        self.w = w.unflatten(0, (blocks, rows)).transpose(1, 2).contiguous()
        self.bias = None if b_ih is None else (b_ih + b_hh).view(blocks, 1, rows)
        self.table = None
        if table is not None:                          # [V, 4H] -> [blocks, V, rows]
            self.table = table.unflatten(1, (blocks, rows)).transpose(0, 1).contiguous()
            self.bias = h.new_empty(blocks, B, rows)   # this step's rows of the table
        self.xh = xh.expand(blocks, B, xh.shape[1])                  # [blocks, B, I+H]
        self.gates = h.new_empty(blocks, B, rows)                    # pre-activation
        self.sig = torch.empty_like(self.gates)                      # sigmoid of every gate

        def gate(t, k):  # gate k (i, f, g, o) of a [blocks, B, rows] tensor: [B, H]
            per = 4 // blocks
            return t[k // per, :, (k % per) * H:(k % per + 1) * H]

        self.i, self.f, self.o = gate(self.sig, 0), gate(self.sig, 1), gate(self.sig, 3)
        self.g = gate(self.gates, 2)
        self.tanh_g, self.tanh_c = h.new_empty(B, H), h.new_empty(B, H)
        self.c, self.h = c, h                                        # [B, H] buffer views

    def step(self, ids=None) -> None:
        if self.table is not None:
            torch.index_select(self.table, 1, ids, out=self.bias)
        if self.bias is None:
            torch.bmm(self.xh, self.w, out=self.gates)
        else:
            torch.baddbmm(self.bias, self.xh, self.w, out=self.gates)
        torch.sigmoid(self.gates, out=self.sig)
        torch.tanh(self.g, out=self.tanh_g)
        self.c.mul_(self.f).addcmul_(self.i, self.tanh_g)           # c = f*c + i*tanh(g)
        torch.mul(self.o, torch.tanh(self.c, out=self.tanh_c), out=self.h)


class LSTMStepper:
    """A fused LSTM's stepper for generation (see the module docstring).

    One buffer holds every layer's input and hidden state side by side,

        xh [B, I + L*H] = x | h_1 | h_2 | ... | h_L

    so layer l reads its input and its previous state as one contiguous slice
    [h_{l-1}, h_l] (h_0 = x) and then writes its new h_l in place, which is exactly the
    input of layer l+1.
    """

    def __init__(self, cell, state: State, blocks: int):
        h, c = state                                                  # each [L, B, H]
        L, B, H = h.shape
        I = cell.input_size
        self.input_size = I
        self.xh = h.new_empty(B, I + L * H)
        self.xh[:, I:].view(B, L, H).copy_(h.transpose(0, 1))
        self.c = c.clone()                                            # [L, B, H], updated in place
        self.layers = []
        self.weights = cell.all_layer_weights()
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.weights):
            start = 0 if layer == 0 else I + (layer - 1) * H
            stop = I + (layer + 1) * H
            self.layers.append(_Layer(self.xh[:, start:stop], w_ih, w_hh, b_ih, b_hh,
                                      self.c[layer], self.xh[:, stop - H:stop], blocks))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, I] -> output [B, H] (a new tensor: the buffers change on the next call)."""
        return self.step_view(x).clone()

    def step_view(self, x: torch.Tensor) -> torch.Tensor:
        """As calling it, but the output is a view of the buffers, valid only until the
        next call: for a caller that uses it at once (the model's token stepper feeds it
        to the head), which saves a copy per token."""
        self.xh[:, :self.input_size].copy_(x)
        self.layers[0].step()
        return self._upper_layers()

    def _upper_layers(self) -> torch.Tensor:
        """Step layers 2..L (layer 1 has just stepped); the top layer's h, a view."""
        for layer in self.layers[1:]:
            layer.step()
        return self.layers[-1].h

    def fold_input(self, table: torch.Tensor):
        """For a stepper fed embedding rows: `table` [V, I] is the embedding's weight.
        Returns `step_ids`: ids [B] -> output [B, H] (a view, as step_view), which takes
        layer 1's input products from table @ W_ih^T + b [V, 4H], computed once, so a
        token costs a row lookup instead of the embedding and [x | h] products over the
        input's weights (at batch 1 each op after the step costs 15-20 us, and W_ih is 8%
        of the weights a token streams). Only the summation order changes (rounding,
        ~1e-7). None when the table would be more than twice W_ih's size (large
        vocabularies): then keep embedding and stepping."""
        first = self.layers[0]
        folded = self._fold(table)
        if folded is None:
            return None
        I, w_hh = self.input_size, self.weights[0][1]
        H = first.h.shape[1]
        blocks = first.w.shape[0]
        # the same state buffers as layer 1's: calls and step_ids may be mixed
        folded_first = _Layer(self.xh[:, I:I + H], None, w_hh, None, None, first.c, first.h,
                              blocks, table=folded)

        def step_ids(ids: torch.Tensor) -> torch.Tensor:
            folded_first.step(ids)
            return self._upper_layers()
        return step_ids

    def _declines(self, table: torch.Tensor) -> bool:
        """Whether folding `table` [V, I] is declined: not the input's width, or V > 2 I."""
        V, I = table.shape
        return I != self.input_size or V > 2 * I

    def _fold(self, table: torch.Tensor) -> torch.Tensor | None:
        """table [V, I] -> table @ W_ih^T + b_ih + b_hh [V, 4H] for layer 1; None when
        declined (see fold_input)."""
        if self._declines(table):
            return None
        w_ih, _, b_ih, b_hh = self.weights[0]
        with torch.no_grad():
            return table @ w_ih.T if b_ih is None else torch.addmm(b_ih + b_hh, table, w_ih.T)

    def token_loop(self, table: torch.Tensor, head_w: torch.Tensor,
                   head_b: torch.Tensor | None) -> TokenLoop | None:
        """For batch-1 generation through an embedding `table` [V, I] and a linear head
        (head_w [V, H], head_b [V] or None): a TokenLoop that runs whole chunks of tokens
        (steps, head and choices) in one C++ call on this stepper's state (see
        lstm_generate.py). None where it does not apply (batch > 1, not float32, the
        table declined as in fold_input, or no kernel)."""
        if self._declines(table) or not applies(self, table, head_w, head_b):
            return None                       # applies() last: it may build the kernel
        return TokenLoop(self, self._fold(table), head_w, head_b)

    @property
    def state(self) -> State:
        """(h, c), each [L, B, H], copied out of the buffers."""
        B, L = self.xh.shape[0], len(self.layers)
        h = self.xh[:, self.input_size:].view(B, L, -1).transpose(0, 1).contiguous()
        return h, self.c.clone()
