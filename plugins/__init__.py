"""seqgen's built-in plugins (import name `seqgen_plugins`).

Each subpackage is one plugin module, registered by the core exactly as a third-party
entry point is. Plugins import only what `seqgen.__all__` exports.
"""
