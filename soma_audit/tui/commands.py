"""The command palette's audit commands (ctrl+p): every action, and 'go to' any check.

Actions are read from the bindings of the screen and the app, so a new binding shows up
in the palette (and in the help) without being registered twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

Command = tuple[str, str, Callable[[], Any]]


class AuditCommands(Provider):
    """Commands of the audit screen the palette was opened from."""

    def _commands(self) -> Iterator[Command]:
        screen: Any = self.screen
        for owner, prefix in ((screen, ""), (self.app, "app.")):
            for binding in owner.BINDINGS:
                if binding.description:
                    key = binding.key_display or binding.key
                    yield (f"{binding.description} ({key})", binding.tooltip,
                           partial(screen.run_action, prefix + binding.action))
        for check in getattr(screen.session, "checks", []):
            yield (f"Go to {check.id}", check.title, partial(screen.select_check, check.id))

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            if not title.startswith("Go to "):
                yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            score = matcher.match(f"{title} {help_text}")
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, text=title, help=help_text)
