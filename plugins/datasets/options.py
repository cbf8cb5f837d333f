"""Schema fragments shared by the file-based datasets (text, lines, pairs).

They are the public ones of `seqgen.options`, re-exported under the names these modules
use, so third-party datasets and the built-ins describe `path`, `level`, ... alike.
"""
from seqgen import options

LEVEL_OPTIONS, PATH_OPTIONS = options.LEVEL_OPTIONS, options.PATH_OPTIONS
valid_fraction_option = options.valid_fraction_option

__all__ = ["LEVEL_OPTIONS", "PATH_OPTIONS", "valid_fraction_option"]
