"""Schema fragments shared by the corpus datasets (text, lines, pairs).

`LEVEL_OPTIONS` and `valid_fraction_option` are the public ones of `seqgen.options`,
re-exported under the names these modules use, so third-party datasets and the built-ins
describe `level`, ... alike. `SOURCE_OPTIONS` is where a corpus comes from: `path`,
`paths` (seqgen.options' fragments) or `text`, the corpus itself; `one_of` makes a schema
take exactly one of them, with messages that say which to give.
"""
from seqgen import options

LEVEL_OPTIONS = options.LEVEL_OPTIONS
valid_fraction_option = options.valid_fraction_option

TEXT = {
    "type": "string", "minLength": 1,
    "description": "The corpus itself, as one string (e.g. built by a program), instead of "
                   "a file; it is read as a file's contents would be. Give this, 'path' or "
                   "'paths'.",
}
PATH = {**options.PATH, "description": "One UTF-8 file or a glob (e.g. 'data/*.txt'), "
        "relative to the working directory. Give this, 'paths' or 'text'."}
#: Where the corpus comes from: exactly one of these (see `one_of`).
SOURCE_OPTIONS = {"path": PATH, "paths": options.PATHS, "text": TEXT}


def one_of(choices: dict[str, str]) -> dict:
    """Schema keywords saying that exactly one option of `choices` ({name: what it is,
    in words}) must be given; merge them into an options schema.

    Two given: the earlier-listed one is refused (its value is the shorter to show),
    "$.dataset.path: 'a.txt' is not allowed: $.dataset.text is given too; ...".
    None given: a "required" error for the first, from a branch whose description says
    what to give ("$.dataset: the corpus is missing: give $.dataset.path (a file or
    glob), ..." where seqgen.spec reports it so, else "'path' is a required property");
    it is "required" so that registration, which checks the schema against the defaults
    alone, accepts the schema.
    """
    names = list(choices)
    which, missing = _listed(choices, "'{}'"), _listed(choices, "$.dataset.{}")
    dependent: dict[str, dict] = {}
    for j, later in enumerate(names):
        for earlier in names[:j]:
            dependent.setdefault(later, {"properties": {}})["properties"][earlier] = {
                "not": {},
                "description": f"$.dataset.{later} is given too; give exactly one of {which}",
            }
    return {
        "dependentSchemas": dependent,
        "allOf": [{
            "if": {"not": {"anyOf": [{"required": [n]} for n in names]}},
            "then": {"required": names[:1],
                     "description": f"the corpus is missing: give {missing}"},
        }],
    }


def _listed(choices: dict[str, str], name: str) -> str:
    *first, last = (f"{name.format(n)} ({what})" for n, what in choices.items())
    return f"{', '.join(first)} or {last}"


SOURCES = {"path": "a file or glob", "paths": "a list of them", "text": "the text itself"}

__all__ = ["LEVEL_OPTIONS", "PATH", "SOURCE_OPTIONS", "SOURCES", "TEXT", "one_of",
           "valid_fraction_option"]
