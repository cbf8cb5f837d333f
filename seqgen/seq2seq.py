"""The encoder-decoder model: a source read by one cell, a target written by another.

    source [S, B] --embed--> [S, B, Es] --encoder--> memory [S, B, M], final state
    final state --bridge--> the decoder's initial state
    target ids [T, B] --embed--> y [T, B, Et]
    each step t:  context_t, weights_t = attention(query_t, memory, mask)   [B, M], [B, S]
                  h_t = decoder([y_t ; context_t])                           [B, H]
                  logits_t = head(h_t)                                       [B, V]
                  query_{t+1} = h_t    (query_0: the top layer of the bridged state)

The encoder and decoder are any registered cells (the encoder may be bidirectional; the
decoder reads left to right). With the "none" attention the context is the encoder's
output at the last real source position at every step: d2l's plain Seq2SeqDecoder.

The model's state is one tuple, every tensor with its batch rows on dim 1, so the
trainer, the generator and beam search (`select_batch`) carry and reorder it as they do a
language model's state:

    (decoder cell state, memory [S, B, M], mask [S, B] bool, keys [S, B, K] or None,
     query [1, B, H])

`forward(ids, state, lengths)` and `stepper(state)` are a LanguageModel's, from an
encoded source: `encode(source, source_lengths)` gives the state to start from.
"""
from __future__ import annotations

import torch
from torch import nn

from .attention import Attention
from .cell import Cell
from .state import State

# (decoder cell state, memory [S, B, M], mask [S, B], keys [S, B, K] | None, query [1, B, H])
Seq2SeqState = tuple


def state_parts(state: State) -> tuple[torch.Tensor, ...]:
    """A cell state as its parts: (h,) for RNN and GRU, (h, c) for LSTM."""
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


class Bridge(nn.Module):
    """The encoder's final state -> the decoder's initial state.

    Each encoder part [Le*De, B, He] has its directions joined per layer ([Le, B, De*He]);
    decoder layer i takes encoder layer Le - Ld + i (the top layers; clamped at the
    bottom when the decoder is deeper). When De*He differs from the decoder's H, a
    learned tanh(W x + b) per part maps the width. A decoder part the encoder lacks (an
    LSTM's c after a GRU) keeps the decoder's own initial value. Equal shapes: the
    identity, no parameters (d2l's setup).
    """

    def __init__(self, encoder: Cell, decoder: Cell):
        super().__init__()
        self.encoder_layers, self.directions = encoder.num_layers, encoder.num_directions
        self.decoder_layers = decoder.num_layers
        width = encoder.hidden_size * encoder.num_directions
        shared = min(len(state_parts(encoder.initial_state(1))),
                     len(state_parts(decoder.initial_state(1))))
        self.project = (nn.ModuleList(nn.Linear(width, decoder.hidden_size) for _ in range(shared))
                        if width != decoder.hidden_size else None)

    def forward(self, final: State, initial: State) -> State:
        encoded, own = state_parts(final), state_parts(initial)
        parts = []
        for k, start in enumerate(own):
            if k >= len(encoded):
                parts.append(start)
                continue
            h = encoded[k]                                          # [Le*De, B, He]
            le, de, rows = self.encoder_layers, self.directions, h.shape[1]
            h = h.reshape(le, de, rows, -1).permute(0, 2, 1, 3).reshape(le, rows, -1)
            layers = [max(le - self.decoder_layers + i, 0) for i in range(self.decoder_layers)]
            h = h[layers]                                           # [Ld, B, De*He]
            if self.project is not None:
                h = torch.tanh(self.project[k](h))                  # [Ld, B, Hd]
            parts.append(h.to(start.dtype).contiguous())
        return parts[0] if isinstance(initial, torch.Tensor) else type(initial)(parts)


class Seq2Seq(nn.Module):
    """An encoder-decoder model (Session.build_model for a spec whose model has
    "type": "seq2seq"). Attributes: source_embedding, encoder, bridge, target_embedding,
    decoder, attention, head, vocab_size (the target's)."""

    def __init__(self, vocab_size: int, encoder: Cell, decoder: Cell, attention: Attention,
                 source_embedding: nn.Module, target_embedding: nn.Module):
        super().__init__()
        self.vocab_size = vocab_size
        self.source_embedding, self.encoder = source_embedding, encoder
        self.target_embedding, self.decoder = target_embedding, decoder
        self.attention = attention
        self.bridge = Bridge(encoder, decoder)
        self.head = nn.Linear(decoder.output_size, vocab_size)

    @property
    def explicit_randomness(self) -> bool:
        return bool(getattr(self.encoder, "explicit_randomness", False)
                    and getattr(self.decoder, "explicit_randomness", False))

    def encode(self, source: torch.Tensor, lengths: torch.Tensor | None = None) -> Seq2SeqState:
        """source [S, B] ids (padded with 0 past `lengths` [B], CPU) -> the state the
        decoder starts from."""
        steps, rows = source.shape
        memory, final = self.encoder(self.source_embedding(source.long()), None, lengths)
        if lengths is None:
            mask = torch.ones(steps, rows, dtype=torch.bool, device=source.device)
        else:
            mask = (torch.arange(steps).unsqueeze(1) < lengths.unsqueeze(0)).to(source.device)
        cell_state = self.bridge(final, self.decoder.initial_state(rows, source.device))
        query = state_parts(cell_state)[0][-1:]                     # [1, B, H] top layer
        keys = self.attention.keys(memory.transpose(0, 1))          # [B, S, K] or None
        return (cell_state, memory, mask, None if keys is None else keys.transpose(0, 1), query)

    def initial_state(self, batch_size: int, device=None) -> State:
        """None: a seq2seq batch starts from its source's encoding (`encode`)."""
        return None

    def forward(self, ids: torch.Tensor, state: Seq2SeqState,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, Seq2SeqState]:
        """ids [T, B] decoder inputs -> (logits [T, B, V], state), from an encoded state.
        `lengths` marks padding; the state after a padded batch is for inspection, not
        for continuing (a seq2seq target is decoded whole)."""
        cell_state, memory, mask, keys, query = state
        memory_b, mask_b = memory.transpose(0, 1), mask.t()         # [B, S, M], [B, S]
        keys_b = None if keys is None else keys.transpose(0, 1)
        y = self.target_embedding(ids.long())                       # [T, B, E]
        if self.attention.static:          # one context for every step: one cell call
            context, _ = self.attention(query[0], memory_b, mask_b, keys_b)   # [B, M]
            x = torch.cat([y, context.unsqueeze(0).expand(len(y), -1, -1)], -1)
            h, cell_state = self.decoder(x, cell_state, lengths)    # [T, B, H]
            query = h[-1:]
        else:
            outputs = []
            for t in range(len(y)):
                context, _ = self.attention(query[0], memory_b, mask_b, keys_b)
                out, cell_state = self.decoder(torch.cat([y[t], context], -1).unsqueeze(0),
                                               cell_state)          # [1, B, H]
                outputs.append(out[0])
                query = out
            h = torch.stack(outputs)                                # [T, B, H]
        return self.head(h), (cell_state, memory, mask, keys, query)

    def attention_weights(self, state: Seq2SeqState, ids: torch.Tensor) -> torch.Tensor:
        """The attention over the source at every decoder step of `ids` [T, B] (the
        decoder's inputs: <bos> + output), from an encoded state: [T, B, S]."""
        stepper = Seq2SeqStepper(self, state, record=True)
        for t in range(len(ids)):
            stepper(ids[t])
        return torch.stack(stepper.weights)

    def stepper(self, state: Seq2SeqState) -> "Seq2SeqStepper":
        return Seq2SeqStepper(self, state)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class Seq2SeqStepper:
    """Decoding's inner step (a LanguageModel's TokenStepper for seq2seq): ids [B] ->
    logits [B, V], carrying the decoder's state through its cell's own stepper.
    record=True keeps each step's attention weights [B, S] in `weights`."""

    def __init__(self, model: Seq2Seq, state: Seq2SeqState, record: bool = False):
        cell_state, self.memory, self.mask, self.keys, self.query = state
        self.model, self.cell = model, model.decoder.stepper(cell_state)
        self.memory_b, self.mask_b = self.memory.transpose(0, 1), self.mask.t()
        self.keys_b = None if self.keys is None else self.keys.transpose(0, 1)
        self.weights: list[torch.Tensor] | None = [] if record else None

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        m = self.model
        context, weights = m.attention(self.query[0], self.memory_b, self.mask_b, self.keys_b)
        if self.weights is not None:
            self.weights.append(weights)
        out = self.cell(torch.cat([m.target_embedding(ids.long()), context], -1))  # [B, H]
        self.query = out.unsqueeze(0)
        return m.head(out)                                                        # [B, V]

    @property
    def state(self) -> Seq2SeqState:
        return (self.cell.state, self.memory, self.mask, self.keys, self.query)
