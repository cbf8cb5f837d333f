"""Cells backed by torch's fused nn.RNN / nn.GRU / nn.LSTM (oneDNN on CPU, cuDNN on GPU).

The torch module lives in `self.rnn`, so the state dict has torch's names
(rnn.weight_ih_l0, ...) and matches the scratch cells'. Single steps at inference go
through torch's single-step kernels instead of the module (step.py says why), and
generation's LSTM stepper on CPU through lstm_stepper.py.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqgen import State, Stepper

from . import gru_cpu
from .base import RecurrentCell
from .init import apply_init
from .lstm_stepper import MAX_BATCH, LSTMStepper, blocks_for_threads
from .scratch_gru import gru_recurrence
from .scratch_lstm import lstm_recurrence
from .scratch_rnn import ACTIVATIONS, rnn_recurrence
from .step import LayerStepper, gru_kernel, lstm_kernel, rnn_relu_kernel, rnn_tanh_kernel


class _Initialised:
    """Mixed into torch's modules so `reset_parameters(generator)` draws by the cell's
    `init` scheme (init.py); seqgen.seeding.initialize calls it with the run's generator.
    Until the cell sets `init` (during torch's constructor), torch's default."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        scheme = self.__dict__.get("init", {"type": "default"})
        apply_init(self.all_weights, self.hidden_size, scheme, generator)


# Named like torch's classes, so the modules print as before; state dicts are torch's.
class RNN(_Initialised, nn.RNN):
    pass


class GRU(_Initialised, nn.GRU):
    pass


class LSTM(_Initialised, nn.LSTM):
    pass


def refuse_layer_norm(layer_norm: bool, scratch: str) -> None:
    if layer_norm:
        raise ValueError(f'layer_norm needs the scratch cell: use "{scratch}"')


class FusedCell(RecurrentCell):
    """Subclasses build `self.rnn` with `make_module` and set `self.kernel` (see step.py)."""

    #: Single steps of more rows than this run the module (its kernel is faster there).
    kernel_max_batch: int | None = None

    @property
    def explicit_randomness(self) -> bool:
        """torch's fused kernels draw dropout between layers from the global generator
        (seqgen/seeding.py then seeds and restores it); without dropout nothing is drawn."""
        return self.dropout == 0.0 or self.num_layers == 1

    def make_module(self, module_class: type[nn.RNNBase], **extra) -> nn.RNNBase:
        """`module_class` (RNN, GRU or LSTM above), initialised by the `init` option."""
        module = module_class(self.input_size, self.hidden_size, self.num_layers,
                              bias=self.bias, dropout=self.dropout,
                              bidirectional=self.bidirectional, **extra)
        module.init = self.init
        if self.init["type"] != "default":  # torch's constructor drew the default already
            module.reset_parameters()
        return module

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        """x [T, B, I] -> (output [T, B, H*D], state [L*D, B, H] or (h, c))."""
        output, state = self._forward(x, state, lengths)
        return self.drop_output(output), state

    def _forward(self, x: torch.Tensor, state, lengths: torch.Tensor | None):
        T, B, _ = x.shape
        if state is None:
            state = self.initial_state(B, x.device)
        if lengths is not None:
            packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
            output, state = self.rnn(packed, state)  # state: each row's at its own length
            output, _ = pad_packed_sequence(output, total_length=T)  # zeros past each length
            return output, state
        if T == 1 and self.uses_kernels(B):
            step = LayerStepper(self, state, self.kernel)
            return step(x[0]).unsqueeze(0), step.state
        return self.rnn(x, state)

    def uses_kernels(self, batch: int) -> bool:
        """Whether single steps of `batch` rows go through the kernels: not when training
        with autograd (the module's backward is the tested one), nor above kernel_max_batch."""
        if self.training and torch.is_grad_enabled():
            return False
        return self.kernel_max_batch is None or batch <= self.kernel_max_batch

    def stepper(self, state: State) -> Stepper | LayerStepper:
        if self.uses_kernels(self.split_state(state)[0].shape[1]):                  # [L*D, B, H]
            return LayerStepper(self, state, self.kernel, output_dropout=True)
        return Stepper(self, state)


class FusedRNN(FusedCell):
    gate_count = 1

    def __init__(self, input_size: int, *, nonlinearity: str = "tanh", **options):
        super().__init__(input_size, **options)
        self.rnn = self.make_module(RNN, nonlinearity=nonlinearity)  # checks nonlinearity
        self.nonlinearity = nonlinearity
        self.kernel = rnn_tanh_kernel if nonlinearity == "tanh" else rnn_relu_kernel

    def layer_recurrence(self, index: int):
        activation = ACTIVATIONS[self.nonlinearity]
        return lambda *args: rnn_recurrence(*args, activation=activation)


class FusedGRU(FusedCell):
    gate_count = 3

    def __init__(self, input_size: int, *, layer_norm: bool = False, **options):
        refuse_layer_norm(layer_norm, "gru-scratch")
        super().__init__(input_size, **options)
        self.rnn = self.make_module(GRU)
        self.kernel = gru_kernel

    def layer_recurrence(self, index: int):
        return gru_recurrence

    def _forward(self, x: torch.Tensor, state, lengths: torch.Tensor | None):
        """CPU training runs seqgen's GRU kernel where it applies (gru_cpu.py: about 1.5x
        faster than nn.GRU here, and 1.27x nn.LSTM); else as FusedCell."""
        if gru_cpu.applies(self, x, lengths):
            if state is None:
                state = self.initial_state(x.shape[1], x.device)
            return gru_cpu.train_forward(self, x, state)
        return super()._forward(x, state, lengths)


class FusedLSTM(FusedCell):
    gate_count = 4
    has_cell_state = True
    kernel_max_batch = MAX_BATCH  # above it oneDNN's nn.LSTM beats lstm_cell (CPU, 2 cores)

    def __init__(self, input_size: int, *, layer_norm: bool = False, **options):
        refuse_layer_norm(layer_norm, "lstm-scratch")
        super().__init__(input_size, **options)
        self.rnn = self.make_module(LSTM)
        self.kernel = lstm_kernel

    def layer_recurrence(self, index: int):
        return lstm_recurrence

    def stepper(self, state: State) -> Stepper | LayerStepper | LSTMStepper:
        """LSTMStepper for CPU inference (eval, no autograd, one direction) up to MAX_BATCH
        rows; else as FusedCell."""
        h = state[0]                                                     # [L*D, B, H]
        if (h.device.type == "cpu" and not self.training and not torch.is_grad_enabled()
                and not self.bidirectional and h.shape[1] <= MAX_BATCH):
            return LSTMStepper(self, state, blocks_for_threads())
        return super().stepper(state)
