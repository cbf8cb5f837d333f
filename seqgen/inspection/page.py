"""inspect.html: the inspection as one self-contained page (page.html with the data in).

The page needs no server and no network: open the file. Its text is coloured by the
model's surprise at each token, hovering a token shows the model's top guesses there, and
a unit picker colours the text by one unit's activation instead.
"""
from __future__ import annotations

from importlib import resources

from ..events import json_line

PLACEHOLDER = "__INSPECTION__"


def render_page(data: dict) -> str:
    """The page for `data` (Inspection.to_dict()). The JSON sits in a <script> element,
    so every "<" in it is written as the JSON escape \\u003c: a token "</script>" (or
    "<!--") in the text can never end the element or run as code."""
    template = resources.files("seqgen.inspection").joinpath("page.html").read_text("utf-8")
    embedded = json_line(data).replace("<", "\\u003c")
    return template.replace(PLACEHOLDER, embedded, 1)
