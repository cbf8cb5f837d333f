"""`seqgen serve`: an OpenAI-compatible HTTP server over a trained model, with
continuous batching (the optional extra `seqgen[serve]`: starlette + uvicorn).

    app = seqgen.serve.create_app("runs/demo", max_active_rows=128)
    uvicorn.run(app, port=8000)

Modules: app (routes), requests (checking bodies), engine (the batching loop), rows (one
choice's text and log-probs), choose (per-row draws), direct (beam search and scoring
outside the batch), shapes and sse (OpenAI JSON, server-sent events), limits, errors,
command (the click command). Nothing else in seqgen imports this package.
"""
from __future__ import annotations


def create_app(model_or_run_dir, **options):
    """The Starlette app serving a LoadedModel or a run directory / checkpoint; options:
    session=, and the request limits (see seqgen.serve.limits.Limits)."""
    from .app import create_app as make
    return make(model_or_run_dir, **options)


__all__ = ["create_app"]
