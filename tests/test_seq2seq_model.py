"""The encoder-decoder model (seqgen/seq2seq.py): teacher-forced and step-by-step decoding
agree, the bridge maps states, masking makes padding invisible, and the trainer drives it
as it drives a language model."""
import pytest
import torch

import seqgen
from seqgen.batch import Batch
from seqgen.evaluate import token_nll
from seqgen.train import forward_batch


def model_spec(attention="bahdanau", enc=None, dec=None, **attention_options):
    return {"type": "seq2seq", "attention": {"type": attention, **attention_options},
            "encoder": {"embedding": {"type": "learned", "size": 6},
                        "cell": {"type": "gru", "hidden_size": 8, **(enc or {})}},
            "decoder": {"embedding": {"type": "learned", "size": 5},
                        "cell": {"type": "gru", "hidden_size": 8, **(dec or {})}}}


def build(session, spec, vocab=11, source_vocab=13):
    resolved = session.resolve({"dataset": {"type": "reversal"}, "sampler": {"type": "bucket"},
                                "model": spec})
    return session.build_model(resolved, vocab, source_vocab).eval()


VARIANTS = [
    ("none", {}, {}),
    ("bahdanau", {}, {}),
    ("luong", {}, {}),
    ("bahdanau", {"bidirectional": True, "num_layers": 2}, {"num_layers": 2}),
    ("luong", {"type": "lstm", "hidden_size": 6}, {"type": "lstm", "num_layers": 2}),
    ("bahdanau", {"type": "gru-scratch"}, {"type": "lstm-scratch"}),
]


@pytest.mark.parametrize("attention,enc,dec", VARIANTS)
def test_teacher_forced_decoding_equals_the_stepper(session, attention, enc, dec):
    model = build(session, model_spec(attention, enc, dec))
    g = torch.Generator().manual_seed(0)
    source, ids = torch.randint(0, 13, (7, 3), generator=g), torch.randint(0, 11, (5, 3), generator=g)
    with torch.no_grad():
        logits, _ = model(ids, model.encode(source))                   # [T, B, V]
        step = model.stepper(model.encode(source))
        stepped = torch.stack([step(ids[t]) for t in range(len(ids))])
    assert logits.shape == (5, 3, 11)
    torch.testing.assert_close(stepped, logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("attention,enc,dec", VARIANTS)
def test_a_padded_source_decodes_as_the_same_source_alone(session, attention, enc, dec):
    model = build(session, model_spec(attention, enc, dec))
    g = torch.Generator().manual_seed(1)
    short, long = torch.randint(1, 13, (3,), generator=g), torch.randint(1, 13, (6,), generator=g)
    source = torch.nn.utils.rnn.pad_sequence([long, short])             # [6, 2], 0-padded
    noisy = source.clone()
    noisy[3:, 1] = 12                          # other values in the padding change nothing
    ids = torch.randint(0, 11, (4, 2), generator=g)
    with torch.no_grad():
        batched, _ = model(ids, model.encode(source, torch.tensor([6, 3])))
        again, _ = model(ids, model.encode(noisy, torch.tensor([6, 3])))
        alone, _ = model(ids[:, 1:], model.encode(short.unsqueeze(1)))
    torch.testing.assert_close(batched[:, 1:], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, batched)


def test_the_bridge_is_the_identity_when_shapes_match(session):
    model = build(session, model_spec("none", {"num_layers": 2}, {"num_layers": 2}))
    assert model.bridge.project is None and not list(model.bridge.parameters())
    source = torch.randint(0, 13, (4, 2))
    with torch.no_grad():
        _, final = model.encoder(model.source_embedding(source))
        state = model.encode(source)
    torch.testing.assert_close(state[0], final)                        # [2, 2, 8]
    torch.testing.assert_close(state[4], final[-1:])                   # query: top layer


def test_the_bridge_joins_directions_and_picks_the_top_layers(session):
    model = build(session, model_spec("none", {"bidirectional": True, "num_layers": 3,
                                               "hidden_size": 4},
                                  {"type": "lstm", "num_layers": 2, "hidden_size": 6}))
    source = torch.randint(0, 13, (5, 2))
    with torch.no_grad():
        _, final = model.encoder(model.source_embedding(source))       # [3*2, 2, 4]
        h, c = model.encode(source)[0]
        joined = final.view(3, 2, 2, 4).permute(0, 2, 1, 3).reshape(3, 2, 8)[1:]   # top 2
        expected = torch.tanh(model.bridge.project[0](joined))
    assert h.shape == c.shape == (2, 2, 6)
    torch.testing.assert_close(h, expected)
    assert torch.equal(c, torch.zeros_like(c))     # a GRU encoder has no c: the LSTM's own


def test_padding_in_the_target_is_masked_in_the_loss(session):
    model = build(session, model_spec())
    g = torch.Generator().manual_seed(2)
    source = torch.randint(1, 13, (5, 2), generator=g)
    inputs, targets = torch.randint(1, 11, (4, 2), generator=g), torch.randint(1, 11, (4, 2), generator=g)
    lengths = torch.tensor([4, 2])
    batch = Batch(inputs, targets, lengths, source, torch.tensor([5, 5]))
    with torch.no_grad():
        nll = token_nll(model(inputs, model.encode(source), lengths)[0], batch)
        changed = targets.clone()
        changed[2:, 1] = 3                       # padded targets: any value, same loss
        nll2 = token_nll(model(inputs, model.encode(source), lengths)[0],
                         Batch(inputs, changed, lengths, source, torch.tensor([5, 5])))
    assert torch.equal(nll[2:, 1], torch.zeros(2)) and float(nll.sum()) == float(nll2.sum())
    assert batch.num_tokens == 6


@pytest.mark.parametrize("attention", ["none", "bahdanau"])
def test_teacher_forcing_drives_the_decoder_as_in_language_models(session, attention):
    """Ratio 1 is one whole-target call; a ratio just under 1 runs the step loop, which
    feeds the reference at every step here: the logits must be the same."""
    model = build(session, model_spec(attention))
    g = torch.Generator().manual_seed(3)
    batch = Batch(torch.randint(1, 11, (6, 3), generator=g), torch.randint(1, 11, (6, 3), generator=g),
                  None, torch.randint(1, 13, (4, 3), generator=g), None)
    greedy = session.strategy("greedy")
    with torch.no_grad():
        whole, _ = forward_batch(model, batch, None, greedy, 1.0, torch.Generator())
        stepped, _ = forward_batch(model, batch, None, greedy, 1 - 1e-12, torch.Generator())
        free, _ = forward_batch(model, batch, None, greedy, 0.0, torch.Generator())
    torch.testing.assert_close(stepped, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(free[0], whole[0])      # both read <bos> first
    own = whole[0].argmax(-1)                          # free running feeds its own tokens:
    if not torch.equal(own, batch.inputs[1]):          # differs where they differ
        assert not torch.allclose(free[1], whole[1])


def test_attention_weights_are_the_steps_weights(session):
    model = build(session, model_spec("bahdanau"))
    source = torch.randint(1, 13, (6, 1))
    ids = torch.randint(1, 11, (4, 1))
    with torch.no_grad():
        weights = model.attention_weights(model.encode(source), ids)  # [T, 1, S]
    assert weights.shape == (4, 1, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 1))
    assert not torch.allclose(weights[0], weights[-1])      # it moves over the source


def test_hook_register_attentions(session):
    """A third-party attention joins the schema and trains in a seq2seq model."""
    class Uniform(seqgen.Attention):
        def forward(self, query, memory, mask, keys=None):
            weights = mask.float() / mask.sum(-1, keepdim=True)
            return seqgen.weighted_sum(weights, memory), weights

    class Plugin:
        __name__ = "uniform-attention"

        @seqgen.hookimpl
        def register_attentions(self, register):
            register("uniform", lambda query_size, memory_size: Uniform(query_size, memory_size),
                     {"type": "object", "properties": {}}, "Every real position alike.")

    s = seqgen.Session([Plugin()], entry_points=False)
    assert "uniform" in s.schema()["properties"]["model"]["then"]["properties"]["attention"][
        "properties"]["type"]["enum"]
    spec = {"dataset": {"type": "reversal", "size": 40}, "model": model_spec("uniform"),
            "sampler": {"type": "bucket", "batch_size": 8}, "train": {"epochs": 1},
            "generate": {"max_new_tokens": 5, "strategies": [{"type": "greedy"}]}}
    result = s.run(spec, save=False)
    assert isinstance(result.model.model.attention, Uniform)
    assert [c["plugin"] for c in s.components_of(result.spec)
            if c["kind"] == "attention"] == ["uniform-attention"]
    with pytest.raises(seqgen.SpecError, match=r"\$\.model\.attention\.type: .*'uniform'"):
        session.resolve({**spec})                      # a session without the plugin
