"""seqgen.attention_plot: an attention heatmap written as a PNG, atomically; shapes
checked against the tokens."""
import os
import warnings

import numpy as np
import pytest
import torch

from seqgen.attention_plot import visible, write_attention_heatmap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SOURCE = ["i'm", "home", ".", "<eos>"]
TARGET = ["je", "suis", "chez", "moi", ".", "<eos>"]


def weights(rows: int, cols: int) -> torch.Tensor:
    return torch.softmax(torch.randn(rows, cols, generator=torch.Generator().manual_seed(0)), -1)


def read_png(path):
    import matplotlib.image
    return matplotlib.image.imread(path)


def test_writes_a_png_heatmap(tmp_path):
    out = tmp_path / "attention.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # e.g. a glyph missing from the font
        result = write_attention_heatmap(out, weights(len(TARGET), len(SOURCE)), SOURCE,
                                         TARGET, title="i'm home . => je suis chez moi .")
    assert result == out
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    image = read_png(out)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= 200 and image.shape[1] >= 300   # inches x dpi 100
    assert image.std() > 0                                   # something was drawn


def test_accepts_nested_lists_a_grad_tensor_and_a_string_path(tmp_path):
    out = tmp_path / "sub" / "lists.png"
    write_attention_heatmap(str(out), [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]],
                            ["a", "b"], ["x", "y", "z"])
    assert out.read_bytes()[:8] == PNG_SIGNATURE
    grad = weights(3, 2).requires_grad_()
    write_attention_heatmap(tmp_path / "grad.png", grad.to(torch.bfloat16), ["a", "b"],
                            ["x", "y", "z"])
    assert read_png(tmp_path / "grad.png").shape[2] in (3, 4)


def test_a_bigger_matrix_makes_a_bigger_image(tmp_path):
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    write_attention_heatmap(small, np.eye(3), list("abc"), list("xyz"))
    write_attention_heatmap(large, np.ones((30, 40)) / 40, [f"s{i}" for i in range(40)],
                            [f"t{i}" for i in range(30)])
    assert read_png(large).shape[0] > read_png(small).shape[0]
    assert read_png(large).shape[1] > read_png(small).shape[1]


@pytest.mark.parametrize("shape, source, target, message", [
    ((6, 4), SOURCE[:3], TARGET, r"shape \[6, 4\] but there are 6 target tokens and 3 source"),
    ((6, 4), SOURCE, TARGET[:5], r"5 target tokens and 4 source tokens; expected \[5, 4\]"),
    ((4, 6), SOURCE, TARGET, r"transposed\? weights are \[target_len, source_len\]"),
])
def test_a_shape_mismatch_is_a_value_error(tmp_path, shape, source, target, message):
    out = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=message):
        write_attention_heatmap(out, torch.rand(*shape), source, target)
    assert not out.exists()


def test_weights_must_be_a_2d_matrix_of_numbers(tmp_path):
    with pytest.raises(ValueError, match=r"must be 2-D .*got shape \[1, 2, 2\]"):
        write_attention_heatmap(tmp_path / "a.png", torch.rand(1, 2, 2), ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="2-D array of numbers"):
        write_attention_heatmap(tmp_path / "b.png", [[1, 2], [3]], ["a", "b"], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        write_attention_heatmap(tmp_path / "c.png", np.zeros((0, 0)), [], [])
    with pytest.raises(TypeError, match="list of tokens, not one string"):
        write_attention_heatmap(tmp_path / "d.png", np.eye(2), "ab", ["x", "y"])
    assert list(tmp_path.iterdir()) == []


def test_no_temporary_files_are_left(tmp_path):
    out = tmp_path / "attention.png"
    write_attention_heatmap(out, weights(len(TARGET), len(SOURCE)), SOURCE, TARGET)
    write_attention_heatmap(out, weights(len(TARGET), len(SOURCE)), SOURCE, TARGET)  # over it
    assert os.listdir(tmp_path) == ["attention.png"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    out = tmp_path / "attention.png"
    write_attention_heatmap(out, np.eye(2), ["a", "b"], ["x", "y"])
    before = out.read_bytes()

    def broken(self, *args, **kwargs):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_attention_heatmap(out, np.ones((2, 2)), ["a", "b"], ["x", "y"])
    assert out.read_bytes() == before
    assert os.listdir(tmp_path) == ["attention.png"]


def test_blank_tokens_are_shown_visibly(tmp_path):
    assert visible(" ") == "\u2423"
    assert visible("") == "\u2205"
    assert visible("\n") == "\u21b5"
    assert visible("  ") == "\u2423\u2423"
    assert visible("a b") == "a b" and visible("$x$") == "$x$"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_attention_heatmap(tmp_path / "chars.png", np.eye(4) * 0.7 + 0.1,
                                ["a", " ", "", "\n"], ["$", "$x$", " ", "\t"])
    assert (tmp_path / "chars.png").read_bytes()[:8] == PNG_SIGNATURE


def test_matplotlib_global_state_is_untouched(tmp_path):
    import matplotlib
    backend = matplotlib.get_backend()
    write_attention_heatmap(tmp_path / "a.png", np.eye(2), ["a", "b"], ["x", "y"])
    assert matplotlib.get_backend() == backend
    import sys
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
