"""Named components by kind, and named presets, as the loaded plugins registered them."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .components import KINDS, PLURAL, Component
from .errors import PluginError, UnknownComponentError


@dataclass(frozen=True)
class Preset:
    """A named spec in the registry: `seqgen run NAME`, or `"extends": NAME` in a spec.

    needs: dotted fields the user must supply -> what they are, e.g.
           {"dataset.path": "a text corpus such as The Time Machine"}.
    """
    name: str
    spec: dict
    description: str = ""
    needs: dict = field(default_factory=dict)
    plugin: str = ""
    distribution: str = ""
    version: str = ""


class Registry:
    def __init__(self):
        self._by_kind: dict[str, dict[str, Component]] = {k: {} for k in KINDS}
        self._presets: dict[str, Preset] = {}
        self.load_failures: list = []  # filled by the plugin loader, for messages

    # -- components -------------------------------------------------------------------------
    def add(self, component: Component) -> None:
        """Add a component; a taken name is refused unless it `replaces` that name."""
        if component.kind not in self._by_kind:
            raise PluginError(f"plugin {component.plugin!r} registered unknown kind {component.kind!r}")
        table = self._by_kind[component.kind]
        if component.name in table and component.replaces is None:
            first = table[component.name]
            raise PluginError(
                f"duplicate {component.kind} name {component.name!r}: registered by plugin "
                f"{first.plugin!r} ({first.origin}) and by plugin {component.plugin!r} "
                f"({component.origin}); the first keeps it. To override it on purpose, "
                f"register with replaces={component.name!r}.")
        table[component.name] = component

    def has(self, kind: str, name: str) -> bool:
        return name in self._by_kind[kind]

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
        return _unknown(name, PLURAL[kind], self.names(kind), self.load_failures)

    # -- presets ------------------------------------------------------------------------------
    def add_preset(self, preset: Preset) -> None:
        if preset.name in self._presets:
            first = self._presets[preset.name]
            raise PluginError(f"duplicate preset name {preset.name!r}: registered by plugin "
                              f"{first.plugin!r} and by plugin {preset.plugin!r}; the first "
                              f"keeps it")
        self._presets[preset.name] = preset

    def remove_preset(self, name: str) -> None:
        self._presets.pop(name, None)

    def has_preset(self, name: str) -> bool:
        return name in self._presets

    def presets(self) -> list[Preset]:
        return [self._presets[n] for n in sorted(self._presets)]

    def preset(self, name: str) -> Preset:
        try:
            return self._presets[name]
        except KeyError:
            raise UnknownComponentError(self.unknown_message_preset(name)) from None

    def unknown_message_preset(self, name: str) -> str:
        return _unknown(name, "presets", sorted(self._presets), self.load_failures)

    def preset_choices(self, name: str) -> str:
        return "Presets: " + choices(name, sorted(self._presets))[len("Available: "):]


def _unknown(name, plural: str, names: list[str], failures: list) -> str:
    msg = f"Can't find {name!r} among {plural}. {choices(name, names)}"
    if failures:
        failed = ", ".join(sorted({f.name for f in failures}))
        msg += f" (Plugins with load failures: {failed}; see `seqgen plugins`.)"
    return msg


def choices(name, names: list[str]) -> str:
    """"Available: a, b. Did you mean 'a'?": what the user can type instead of `name`."""
    msg = f"Available: {', '.join(names) or '(none)'}."
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    return msg + (f" Did you mean {close[0]!r}?" if close else "")
