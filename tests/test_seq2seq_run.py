"""Seq2seq runs end to end: training with validation metrics, decoding with every
strategy, checkpoints, LoadedModel.translate and `seqgen generate --source`."""
import json

import pytest
from click.testing import CliRunner

import seqgen
from seqgen.cli import cli

PAIRS = [["go .", "va !"], ["i lost .", "j'ai perdu ."], ["he's calm .", "il est calme ."],
         ["i'm home .", "je suis chez moi ."], ["hi .", "salut ."], ["run !", "cours !"],
         ["who ?", "qui ?"], ["wow !", "ça alors !"], ["go now .", "va maintenant !"],
         ["i lost it .", "je l'ai perdu ."], ["he is home .", "il est chez lui ."],
         ["i'm calm .", "je suis calme ."]]


def spec(**train):
    return {"name": "s2s", "seed": 0,
            "dataset": {"type": "translation", "pairs": PAIRS, "min_freq": 1,
                        "valid_fraction": 0.25},
            "model": {"type": "seq2seq", "attention": {"type": "bahdanau"},
                      "encoder": {"embedding": {"type": "learned", "size": 8},
                                  "cell": {"type": "gru", "hidden_size": 16}},
                      "decoder": {"embedding": {"type": "learned", "size": 8},
                                  "cell": {"type": "gru", "hidden_size": 16}}},
            "sampler": {"type": "bucket", "batch_size": 4},
            "train": {"epochs": 2, "optimizer": {"type": "adam", "lr": 0.01}, **train},
            "generate": {"prompts": ["go .", "i lost ."], "max_new_tokens": 6,
                         "strategies": [{"type": "greedy"}, {"type": "beam", "width": 2}]}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "s2s"
    result = seqgen.Session(entry_points=False, env={}).run(spec(), out=out)
    return result


def test_a_run_reports_translation_metrics_and_saves_both_vocabularies(trained):
    evals = [h for h in trained.train.history if h["event"] == "eval"]
    assert len(evals) == 2
    for key in ("valid_loss", "valid_token_accuracy", "valid_exact_match", "valid_bleu",
                "valid_bleu_d2l"):
        assert all(isinstance(h[key], float) for h in evals), key
    assert all(0 <= h["valid_exact_match"] <= 1 and 0 <= h["valid_bleu"] <= 100 for h in evals)
    saved = json.loads((trained.run_dir / "source_vocab.json").read_text())
    assert "go" in saved["tokens"] and "va" not in saved["tokens"]
    assert "va" in json.loads((trained.run_dir / "vocab.json").read_text())["tokens"]
    assert [s.prompt for s in trained.samples] == ["go .", "i lost ."] * 2


def test_translate_from_a_checkpoint_matches_the_run(trained):
    loaded = seqgen.Session(entry_points=False).load(trained.run_dir)
    assert loaded.generator.source_vocab == trained.model.generator.source_vocab
    again = loaded.translate(["go .", "i lost ."], "greedy", max_new_tokens=6)
    assert [t.text for t in again] == [s.text for s in trained.samples[:2]]
    assert isinstance(again[0], seqgen.Translation) and again[0].prompt == "go ."


def test_batched_decoding_equals_one_source_at_a_time(trained):
    model = trained.model
    sources = ["go .", "i'm home .", "he's calm .", "who ?"]
    for strategy in ("greedy", {"type": "beam", "width": 3}, {"type": "top-k", "k": 3},
                     {"type": "top-p", "p": 0.9}, {"type": "temperature", "temperature": 0.7}):
        batched = model.translate(sources, strategy, max_new_tokens=6, seed=5)
        alone = [model.translate([s], strategy, max_new_tokens=6, seed=5)[0] for s in sources]
        if strategy in ("greedy",) or isinstance(strategy, dict) and strategy["type"] == "beam":
            assert [t.text for t in batched] == [t.text for t in alone], strategy
            assert [t.score for t in batched] == pytest.approx([t.score for t in alone], abs=1e-4)
        assert len(batched) == 4


def test_beam_search_gives_n_best_in_score_order_and_width_one_is_greedy(trained):
    model = trained.model
    greedy = model.translate(["he's calm ."], "greedy", max_new_tokens=6)[0]
    narrow = model.translate(["he's calm ."], {"type": "beam", "width": 1}, max_new_tokens=6)[0]
    assert narrow.text == greedy.text
    best = model.translate(["he's calm ."], {"type": "beam", "width": 3}, n_best=3,
                           max_new_tokens=6)
    assert len(best) == 3 and len({t.text for t in best}) == 3
    assert [t.score for t in best] == sorted((t.score for t in best), reverse=True)


def test_attention_weights_cover_the_source_and_draw_a_heatmap(trained, tmp_path):
    [t] = trained.model.translate(["i lost ."], "greedy", max_new_tokens=6, attention=True)
    assert t.source_tokens == ["i", "lost", "."]
    assert t.target_tokens[-1] == "<eos>" and len(t.attention) == len(t.target_tokens)
    assert all(len(row) == 3 and sum(row) == pytest.approx(1, abs=1e-5) for row in t.attention)
    path = seqgen.write_attention_heatmap(tmp_path / "a.png", t.attention, t.source_tokens,
                                          t.target_tokens)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sources_outside_the_vocabulary_are_refused_by_name(trained):
    with pytest.raises(seqgen.GenerationError, match=r"source 2 \('zebra \.'\)"):
        trained.model.translate(["go .", "zebra ."])
    with pytest.raises(seqgen.GenerationError, match="source 1 .* no tokens"):
        trained.model.translate([""])
    with pytest.raises(seqgen.GenerationError, match="encoder-decoder model: use translate"):
        trained.model.score("go .")


def test_cli_translates_sources_and_files(trained, tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["generate", str(trained.run_dir), "--source", "go .",
                              "--source", "i lost .", "--max-new-tokens", "6"])
    assert out.exit_code == 0, out.output
    texts = [t.text for t in trained.model.translate(["go .", "i lost ."], max_new_tokens=6)]
    assert out.output.splitlines() == [f"go . -> {texts[0]}", f"i lost . -> {texts[1]}"]
    (tmp_path / "src.txt").write_text("go .\ni lost .\n")
    out = runner.invoke(cli, ["generate", str(trained.run_dir), "--source-file",
                              str(tmp_path / "src.txt"), "--strategy", "beam", "--set",
                              "width=3", "-n_best", "2", "--max-new-tokens", "6",
                              "--attention-plot", str(tmp_path / "att.png")])
    assert out.exit_code == 0, out.output
    lines = [l for l in out.output.splitlines() if not l.startswith("attention: ")]
    assert len(lines) == 4                         # two translations per source
    assert (tmp_path / "att-1.png").is_file() and (tmp_path / "att-4.png").is_file()


def test_cli_names_the_bad_line_of_a_source_file(trained, tmp_path):
    (tmp_path / "src.txt").write_text("go .\nzebra crossing .\n\n")
    out = CliRunner().invoke(cli, ["generate", str(trained.run_dir), "--source-file",
                                   str(tmp_path / "src.txt")])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert f"{tmp_path / 'src.txt'}:2:" in out.output and f"{tmp_path / 'src.txt'}:3:" in out.output
    out = CliRunner().invoke(cli, ["generate", str(trained.run_dir), "--prompt", "go ."])
    assert out.exit_code == 2 and "--source" in out.output


def test_a_language_model_refuses_sources(session, tiny_spec):
    result = session.run(tiny_spec, out="lm")
    out = CliRunner().invoke(cli, ["generate", "lm", "--source", "the"])
    assert out.exit_code != 0 and "encoder-decoder" in out.output
    with pytest.raises(seqgen.GenerationError, match="use generate"):
        result.model.translate(["the"])


def test_the_model_and_the_data_must_agree_on_the_task(session, tiny_spec):
    with pytest.raises(seqgen.SpecError, match=r"\$\.model\.type: an encoder-decoder"):
        session.resolve({**tiny_spec, "model": spec()["model"]})
    with pytest.raises(seqgen.SpecError, match=r"\$\.model: dataset 'translation' is a 'seq2seq'"):
        session.resolve({**spec(), "model": tiny_spec["model"]})
    bad = spec()
    bad["model"]["decoder"]["cell"]["bidirectional"] = True
    with pytest.raises(seqgen.SpecError, match=r"decoder\.cell\.bidirectional"):
        session.resolve(bad)
    bad = spec()
    bad["model"]["attention"] = {"type": "luong", "score": "dot"}
    bad["model"]["encoder"]["cell"]["hidden_size"] = 12
    with pytest.raises(seqgen.SpecError, match=r"\$\.model\.attention: .*use score \"general\""):
        session.run(bad, save=False)


def test_scheduled_teacher_forcing_decays_the_ratio_each_epoch(session):
    s = spec(strategy={"type": "teacher-forcing", "ratio": 0.5, "decay": 0.5})
    s["generate"]["strategies"] = []
    steps = []
    result = session.run(s, save=False,
                         emit=lambda e: steps.append(e.data) if e.kind == "step" else None)
    assert [d["teacher_ratio"] for d in steps] == [0.5] * 3 + [0.25] * 3   # 9 pairs / 4
    assert all(d["loss"] > 0 for d in steps) and result.train.step == 6


def test_data_stats_count_targets_and_describe_the_sources(session):
    stats = session.data_stats(spec())
    assert stats["task"] == "seq2seq" and stats["tokens"]["total"] == sum(
        len(t.split()) + 1 for _, t in PAIRS)              # every target word and its <eos>
    assert stats["lengths"]["sequences"] == len(PAIRS)
    assert stats["sources"]["lengths"]["max"] == 4 and not stats["sources"]["shared_vocabulary"]


def test_the_d2l_preset_runs_on_a_corpus_given_as_an_override(session, tmp_path):
    corpus = tmp_path / "fra.txt"           # fra.txt's shape: English, French, attribution
    corpus.write_text("".join(f"{en.capitalize()}\t{fr.capitalize()}\tCC-BY 2.0 (France)\n"
                              for en, fr in PAIRS * 2), encoding="utf-8")
    with pytest.raises(seqgen.SpecError, match="dataset.path"):
        session.run("d2l-seq2seq", ["train.epochs=1"], save=False)
    result = session.run("d2l-seq2seq", [f"dataset.path={corpus}", "train.epochs=2"],
                         save=False)
    spec = result.spec
    assert (spec["model"]["encoder"]["cell"], spec["model"]["attention"]) == (
        {**spec["model"]["encoder"]["cell"], "type": "gru", "hidden_size": 32,
         "num_layers": 2, "dropout": 0.1}, {"type": "none"})
    assert (spec["sampler"]["batch_size"], spec["train"]["optimizer"]["lr"]) == (64, 0.005)
    assert [s.prompt for s in result.samples] == ["go .", "i lost .", "he's calm .", "i'm home ."]
    assert result.train.step == 2                    # 24 pairs: one batch of 64 per epoch


@pytest.mark.slow
def test_the_reversal_quickstart_learns_to_reverse(session):
    result = session.run("reversal", save=False)
    last = [h for h in result.train.history if h["event"] == "eval"][-1]
    assert last["valid_exact_match"] > 0.95 and last["valid_bleu"] > 95
    assert [s.text for s in result.samples] == [s.prompt[::-1] for s in result.samples]


def test_without_sacrebleu_a_run_says_so_and_reports_the_rest(session, monkeypatch):
    import seqgen.bleu
    import seqgen.translation_eval
    for module in (seqgen.bleu, seqgen.translation_eval):
        monkeypatch.setattr(module, "bleu_available", lambda: False)
    events = []
    s = spec()
    s["train"]["epochs"] = 1
    result = session.run(s, save=False, emit=events.append)
    assert any("pip install 'seqgen[bleu]'" in e.data["message"] for e in events
               if e.kind == "warning")
    [evaluation] = [h for h in result.train.history if h["event"] == "eval"]
    assert "valid_bleu" not in evaluation and "valid_exact_match" in evaluation


def test_a_checkpoint_carries_no_seq2seq_state_and_luong_dot_saves(session):
    """The bucket sampler resets the state every batch: nothing is carried or saved, so a
    state holding the source encoding (and Luong's keys, the memory itself) never is."""
    s = spec()
    s["model"]["attention"] = {"type": "luong", "score": "dot"}
    s["train"]["epochs"] = 1
    result = session.run(s, out="dot")
    tensors = seqgen.checkpoint.load(result.run_dir / "last.safetensors").tensors
    assert not [k for k in tensors if k.startswith("carry")]
    assert "model.attention.W.weight" not in tensors


def test_stop_strings_and_the_generated_tokens_shape_the_attention_rows(trained):
    model = trained.model
    [cut] = model.translate(["he's calm ."], max_new_tokens=2, attention=True)
    assert len(cut.attention) == len(cut.target_tokens) == 2 and "<eos>" not in cut.target_tokens
    [full] = model.translate(["he's calm ."], max_new_tokens=6, attention=True)
    first = full.text.split(" ")[0]
    [stopped] = model.translate(["he's calm ."], max_new_tokens=6, stop=[first])
    assert stopped.text == "" and full.text != ""
    out = CliRunner().invoke(cli, ["generate", str(trained.run_dir), "--source", "he's calm .",
                                   "--max-new-tokens", "6", "--stop", first])
    assert out.exit_code == 0 and out.output == "he's calm . -> \n"


def test_serve_refuses_an_encoder_decoder_model_by_name(trained):
    pytest.importorskip("starlette")
    from seqgen.serve.app import create_app
    with pytest.raises(seqgen.GenerationError, match="encoder-decoder model: translate with"):
        create_app(trained.run_dir, session=seqgen.Session(entry_points=False))


def test_compare_reports_seq2seq_variants(session, tmp_path):
    s = spec()
    s["train"]["epochs"] = 1
    s["generate"]["prompts"] = [""]            # the default: the run's own sources
    s["sweep"] = {"grid": {"model.attention.type": ["none", "luong"]}}
    result = session.compare(s, out=tmp_path / "cmp")
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert len(result.rows) == 2 and report.count(" -> ") >= 2     # a translation per run


def test_unknown_source_words_are_named_against_the_source_vocabulary(trained):
    with pytest.raises(seqgen.GenerationError,
                       match=r"source 1 \('va !'\): 1 token\(s\) not in the source vocabulary: "
                             r"'va' at 0"):
        trained.model.translate(["va !"])        # a target word, not a source one


def test_max_examples_zero_decodes_nothing_at_evaluation(session):
    s = spec()
    s["train"]["epochs"] = 1
    s["train"]["eval_decoding"] = {"max_examples": 0}
    [evaluation] = [h for h in session.run(s, save=False).train.history if h["event"] == "eval"]
    assert "valid_token_accuracy" in evaluation
    assert not {"valid_exact_match", "valid_bleu", "valid_bleu_d2l"} & set(evaluation)


def test_cli_json_gives_every_translation_with_its_scores(trained):
    out = CliRunner().invoke(cli, ["generate", str(trained.run_dir), "--source", "go .",
                                   "--strategy", "beam", "--set", "width=2", "--n-best", "2",
                                   "--max-new-tokens", "6", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["prompt"] for r in rows] == ["go .", "go ."]
    assert rows[0]["score"] >= rows[1]["score"] and rows[0]["attention"] is None
