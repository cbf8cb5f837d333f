"""Named components, by kind, as the loaded plugins registered them."""
from __future__ import annotations

import difflib

from .components import KINDS, PLURAL, Component
from .errors import PluginError, UnknownComponentError


class Registry:
    def __init__(self):
        self._by_kind: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self.load_failures: list = []  # filled by the plugin manager, for messages

    def add(self, component: Component) -> None:
        if component.kind not in self._by_kind:
            raise PluginError(f"plugin {component.plugin!r} registered unknown kind {component.kind!r}")
        table = self._by_kind[component.kind]
        if component.name in table:
            first = table[component.name]
            raise PluginError(
                f"duplicate {component.kind} name {component.name!r}: registered by plugin "
                f"{first.plugin!r} ({first.origin}) and by plugin {component.plugin!r} "
                f"({component.origin}). Uninstall one, or limit loading with SEQGEN_PLUGINS.")
        table[component.name] = component

    def names(self, kind: str) -> list[str]:
        return sorted(self._by_kind[kind])

    def all(self, kind: str | None = None) -> list[Component]:
        kinds = [kind] if kind else list(KINDS)
        return [self._by_kind[k][n] for k in kinds for n in sorted(self._by_kind[k])]

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._by_kind[kind][name]
        except KeyError:
            raise UnknownComponentError(self.unknown_message(kind, name)) from None

    def unknown_message(self, kind: str, name: str) -> str:
        names = self.names(kind)
        msg = f"Can't find {name!r} among {PLURAL[kind]}. Available: {', '.join(names) or '(none)'}."
        close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
        if close:
            msg += f" Did you mean {close[0]!r}?"
        if self.load_failures:
            failed = ", ".join(f.name for f in self.load_failures)
            msg += f" (Plugins that failed to load: {failed}; see `seqgen plugins`.)"
        return msg
