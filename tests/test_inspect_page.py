"""inspect.html in headless Chromium (tests/browser.py): opened from the file alone, no
server, no network. The text is coloured by surprise; hovering shows the model's top
guesses; picking a unit recolours the text by that unit's activation, checked span by
span against the data. The screenshot is kept at .test-artifacts/inspect.png."""
from __future__ import annotations

import copy
import json
import math
import re

import pytest
from browser import chromium, screenshot

from seqgen.inspection import Inspection, LayerTrace, write_inspection

pytestmark = pytest.mark.slow
BOUND = 20.0
TEXT = "the cat sees a dog.\nthe dog sees a cat."


@pytest.fixture
def browser(monkeypatch):
    yield from chromium(monkeypatch, BOUND, window="1000,900")


def mix(t: float) -> str:
    """The page's colour for t in [-1, 1] (page.html's mix), as Chrome reports it."""
    t = max(-1.0, min(1.0, t)) * 0.85
    fade = math.floor(255 * (1 - abs(t)) + 0.5)          # JavaScript's Math.round
    return f"rgb(255, {fade}, {fade})" if t >= 0 else f"rgb({fade}, {fade}, 255)"


def colours(browser) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelectorAll('#text .tok')]"
        ".map(s => getComputedStyle(s).backgroundColor)")


def test_page_colours_hovers_and_picks_units(browser, session, tiny_spec, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    spec = copy.deepcopy(tiny_spec)
    spec["model"]["cell"] = {"type": "lstm", "hidden_size": 8, "num_layers": 2}
    spec["train"]["max_steps"] = 30
    inspection = session.run(spec, save=False).model.inspect(TEXT)
    page = write_inspection(inspection, tmp_path / "out", units=4)["html"]
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=|https?://|@import|fetch\(""", html)  # nothing to load

    browser.get(page.as_uri())
    spans = browser.find_elements(By.CSS_SELECTOR, "#text .tok")
    assert [s.get_attribute("textContent") for s in spans] == list(TEXT)

    # surprise: white (the first token: nothing predicts it) to red at the largest
    surprise = inspection.surprise()
    top = max(s for s in surprise if s is not None)
    expected = ["rgba(0, 0, 0, 0)"] + [mix(s / top) for s in surprise[1:]]
    assert colours(browser) == expected

    # hover a token: what the model expected there, its probability, and what comes next
    j = 5
    ActionChains(browser).move_to_element(spans[j]).perform()
    tip = browser.find_element(By.ID, "tip")
    assert tip.is_displayed()
    text = tip.get_attribute("textContent")
    assert f"p = {inspection.next_prob[j - 1]:.4f}" in text
    for token, p in inspection.top[j - 1]:
        assert f"{p:.4f}" in text
    assert text.index("expected here:") < text.index("expected next:")

    # pick layer 1, series c, unit 3: every span shows that unit's value
    Select(browser.find_element(By.ID, "layer")).select_by_visible_text("layer 1")
    Select(browser.find_element(By.ID, "series")).select_by_value("c")
    Select(browser.find_element(By.ID, "unit")).select_by_value("3")
    assert Select(browser.find_element(By.ID, "mode")).first_selected_option.get_attribute(
        "value") == "unit"
    values = [float(f"{v:.5g}") for v in inspection.layers[1].series["c"][:, 3].tolist()]
    half = max(1.0, *(abs(v) for v in inspection.layers[1].series["c"].flatten().tolist()))
    unit_colours = colours(browser)
    assert unit_colours == [mix(v / half) for v in values]
    assert unit_colours != expected

    # a gate (in [0, 1]) is centred at 0.5
    Select(browser.find_element(By.ID, "series")).select_by_value("f")
    Select(browser.find_element(By.ID, "unit")).select_by_value("0")
    gate = [float(f"{v:.5g}") for v in inspection.layers[1].series["f"][:, 0].tolist()]
    assert colours(browser) == [mix((v - 0.5) / 0.5) for v in gate]

    # the unit list puts the most varying unit first
    options = Select(browser.find_element(By.ID, "unit")).options
    variance = inspection.layers[1].series["f"].var(0, unbiased=False)
    assert int(options[0].get_attribute("value")) == int(variance.argmax())
    screenshot(browser, "inspect.png")


def test_hostile_text_is_shown_never_run(browser, tmp_path):
    """Markup is text, and tokens named like JavaScript's own properties ("constructor",
    "__proto__") are tokens like any other; an impossible token reads as infinite."""
    import torch
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    tokens = ["</script><script>window.pwned=1</script>", "<img src=x onerror=window.pwned=2>",
              "a&amp;b", "constructor", "__proto__", "toString", "ok"]
    T = len(tokens)
    layer = LayerTrace("layer 0", 0, 0, {"h": torch.linspace(-1, 1, T).view(T, 1)}, "cell")
    top = [[(tokens[(j + 1) % T], 0.5), ("__proto__", 0.25), ("valueOf", 0.125)]
           for j in range(T)]
    next_prob = [0.5, 0.0, 0.25, 0.5, 0.5, 0.5, None]       # token 2 was "impossible"
    inspection = Inspection(tokens, list(range(T)), next_prob, top, [layer], "word", " ", "cell")
    page = write_inspection(inspection, tmp_path / "out", units=1)["html"]
    browser.get(page.as_uri())
    browser.execute_script("window.errors = []; window.addEventListener('error', "
                           "e => window.errors.push(e.message));")
    spans = browser.find_elements(By.CSS_SELECTOR, "#text .tok")
    assert [s.get_attribute("textContent") for s in spans] == tokens
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return document.getElementById('text').textContent") == (
        " ".join(tokens))
    summary = browser.find_element(By.ID, "summary").text
    assert "mean surprise \u221e nats" in summary
    tip = browser.find_element(By.ID, "tip")
    for j, span in enumerate(spans):
        ActionChains(browser).move_to_element(span).perform()
        text = tip.get_attribute("textContent")
        assert text.startswith(f"#{j} {json.dumps(tokens[j])}"), text
        assert '"__proto__" 0.2500' in text and '"valueOf"  0.1250' in text
        if j == 2:
            assert "p = 0.0000, surprise \u221e nats" in text
    assert browser.execute_script("return window.errors") == []
