"""The `seqgen serve RUN_DIR` click command (registered by seqgen.cli).

starlette and uvicorn are imported only when the command runs, so the CLI works without
the serve extra; without it the command exits 2 saying what to install.
"""
from __future__ import annotations

import importlib
import sys

import click

from .limits import Limits

SWITCH_INTERVAL = 0.0005
MISSING = "seqgen serve needs the serve extra: pip install 'seqgen[serve]'"


@click.command("serve")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-tokens", type=click.IntRange(1), default=Limits.max_tokens,
              show_default=True, help="Largest max_tokens a request may ask for.")
@click.option("--max-n", type=click.IntRange(1), default=Limits.max_n, show_default=True,
              help="Largest n (choices per prompt).")
@click.option("--max-prompt-chars", type=click.IntRange(1), default=Limits.max_prompt_chars,
              show_default=True, help="Longest prompt (and /v1/score text).")
@click.option("--max-body-bytes", type=click.IntRange(1), default=Limits.max_body_bytes,
              show_default=True, help="Largest request body (413 beyond).")
@click.option("--max-active-rows", type=click.IntRange(1), default=Limits.max_active_rows,
              show_default=True, help="Choices generated together; more wait their turn.")
@click.option("--max-waiting", type=click.IntRange(1), default=Limits.max_waiting,
              show_default=True, help="Requests waiting for rows before new ones get 429.")
@click.option("--stream-interval", type=click.FloatRange(0), default=0.02, show_default=True,
              help="Least seconds between two chunks of one stream.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="torch threads (default: torch's choice).")
def serve(run_dir, host, port, threads, stream_interval, **limits):
    """Serve RUN_DIR (a run directory or checkpoint) over HTTP: OpenAI-compatible
    /v1/completions with continuous batching, /v1/score, /v1/models, /health and a
    playground page at /."""
    try:
        importlib.import_module("starlette")
        import uvicorn
    except ImportError:
        click.echo(MISSING, err=True)
        sys.exit(2)
    import torch

    from seqgen import SeqgenError
    from .app import create_app

    if threads:
        torch.set_num_threads(threads)
    # The engine thread releases the GIL in every torch op; a short switch interval lets
    # it take the GIL back quickly from the event loop (5 ms by default: a convoy).
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        app = create_app(run_dir, stream_interval=stream_interval, **limits)
    except SeqgenError as e:
        raise click.ClickException(str(e)) from e
    uvicorn.run(app, host=host, port=port, log_level="info")


if __name__ == "__main__":      # python -m seqgen.serve.command RUN_DIR
    serve()
