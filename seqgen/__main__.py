"""`python -m seqgen` runs the CLI."""
from .cli import main

main()
