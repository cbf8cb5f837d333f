"""Schema fragments shared by the file-based datasets (text, lines, pairs)."""

PATH_OPTIONS = {
    "path": {"type": "string", "minLength": 1,
             "description": "One UTF-8 file or a glob (e.g. 'data/*.txt'), relative to the "
                            "working directory. Give this or 'paths'."},
    "paths": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
              "description": "Several files or globs, read in order and joined."},
}

LEVEL_OPTIONS = {
    "level": {"enum": ["char", "word"], "default": "char",
              "description": "Tokens are characters or words."},
    "pattern": {"type": ["string", "null"], "default": None,
                "description": "Word level: a regex whose matches are the words "
                               "(e.g. '[a-z]+'); null splits on whitespace."},
    "min_freq": {"type": "integer", "minimum": 1, "default": 1,
                 "description": "Word level: words seen fewer times become <unk>."},
    "lowercase": {"type": "boolean", "default": False,
                  "description": "Lowercase the text before tokenizing."},
}


def valid_fraction_option(default: float) -> dict:
    return {"type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": default,
            "description": "Fraction held out for validation, from the end of the data; "
                           "0 means no validation split."}
