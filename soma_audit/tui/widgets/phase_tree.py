"""The left pane: phases → areas, each with how far it is (a bar and done/counted)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from soma_audit.core.model import AREAS, PHASES, Check, Result
from soma_audit.results.report import percent
from soma_audit.tui.view import Scope, Tally, phases_and_areas, tally
from soma_audit.tui.widgets._style import bar, score_style

#: Below this label width the bars are dropped and only the fractions remain.
_BAR_MIN_WIDTH = 24


class PhaseTree(Tree[Scope]):
    """Choose what the check table shows: all checks, a phase, or an area of a phase.

    While a scan runs, an area whose results are still arriving shows how many of its
    checks were evaluated (a dim bar); once complete it shows how many are done (skipped
    checks do not count, as in the report's score).

    Highlighting a node is enough to select it (the table follows the cursor); the
    screen listens to ``Tree.NodeHighlighted``.
    """

    DEFAULT_CSS = """
    PhaseTree { scrollbar-size-vertical: 1; }
    """

    def __init__(self, checks: list[Check], *, id: str | None = None) -> None:
        super().__init__("checks", data=Scope(), id=id)
        self.show_root = False
        self.guide_depth = 3
        self._checks = checks
        self._results: Mapping[str, Result] = {}
        self._pending: AbstractSet[str] = frozenset()
        self.nodes_by_scope: dict[Scope, TreeNode[Scope]] = {}
        self._add_nodes()

    def _add_nodes(self) -> None:
        everything = self.root.add_leaf("All checks", data=Scope())
        self.nodes_by_scope[Scope()] = everything
        for phase, areas in phases_and_areas(self._checks).items():
            node = self.root.add(f"{phase} {PHASES.get(phase, '')}", data=Scope(phase),
                                 expand=True)
            self.nodes_by_scope[Scope(phase)] = node
            for area in areas:
                scope = Scope(phase, area)
                self.nodes_by_scope[scope] = node.add_leaf(AREAS.get(area, area), data=scope)

    def show(self, results: Mapping[str, Result], pending: AbstractSet[str]) -> None:
        """Relabel every node from the results known so far."""
        self._results = results
        self._pending = pending
        self._relabel()

    def on_resize(self) -> None:
        self._relabel()

    def select_scope(self, scope: Scope) -> None:
        """Move the cursor to ``scope`` (expanding its phase) without selecting a check."""
        node = self.nodes_by_scope.get(scope)
        if node is None:
            return
        if node.parent is not None:
            node.parent.expand()
        self.move_cursor(node, animate=False)

    @property
    def scope(self) -> Scope:
        node = self.cursor_node
        return node.data if node is not None and node.data is not None else Scope()

    def _relabel(self) -> None:
        width = max(self.scrollable_content_region.width, 20)
        for scope, node in self.nodes_by_scope.items():
            counts = tally([c for c in self._checks if scope.contains(c)], self._results,
                           self._pending)
            node.set_label(self._node_label(scope, counts, width - 1 - self._indent(scope)))

    def _indent(self, scope: Scope) -> int:
        """Cells left of a label: the guides of an area, the fold icon of a phase."""
        if scope.area is not None:
            return self.guide_depth
        return 2 if scope.phase is not None else 0

    def _node_label(self, scope: Scope, counts: Tally, width: int) -> Text:
        if scope.area is None:
            name = scope.title if scope.phase is None else f"{scope.phase} {PHASES[scope.phase]}"
            value = "…" if counts.evaluated < counts.total else percent(counts.ratio)
            style = "dim" if value == "…" else f"bold {score_style(counts.ratio)}"
            return self._columns(name, Text(value, style=style), width)
        name = AREAS.get(scope.area, scope.area)
        if counts.evaluated < counts.total:
            fraction = f"{counts.evaluated}/{counts.total}".rjust(5)
            meter = Text.assemble((bar(counts.evaluated / counts.total), "cyan"), " ",
                                  (fraction, "dim"))
        elif counts.counted == 0:
            meter = Text.assemble(("░░░░░", "dim"), " ", (" skip", "dim"))
        else:
            style = score_style(counts.ratio)
            meter = Text.assemble((bar(counts.done / counts.counted), style), " ",
                                  (f"{counts.done}/{counts.counted}".rjust(5), style))
        if width < _BAR_MIN_WIDTH:
            meter = meter[6:]
        return self._columns(name, meter, width)

    @staticmethod
    def _columns(name: str, right: Text, width: int) -> Text:
        """``name`` left and ``right`` right-aligned within ``width`` cells."""
        room = max(width - right.cell_len - 1, 4)
        label = Text(name if len(name) <= room else name[: room - 1] + "…")
        label.pad_right(room - label.cell_len + 1)
        return label + right
