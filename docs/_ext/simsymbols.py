"""The ``simulator-symbols`` directive: the simulator's symbols, from its data.

``docs/simulator.rst`` writes::

    .. simulator-symbols::

and the build renders a table of every symbol in
:data:`ctrader_twisted.simulator.data.SYMBOLS`, as the simulator serves it,
so the page cannot go stale when a symbol is added. :func:`symbolTable` is
the table as reStructuredText lines (``tests/test_docs.py`` checks it
against what the simulator answers).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

HEADER = ["id", "name", "description", "category", "digits", "pip position",
          "units per lot", "lots: min, step, max", "bid / ask at start"]


def _lots(volume: int, lotSize: int) -> str:
    lots = Decimal(volume) / Decimal(lotSize)
    return f"{lots.normalize():f}"


def _price(wire: int, digits: int) -> str:
    return f"{Decimal(wire) / Decimal(100000):.{digits}f}"


def symbolRows() -> list[list[str]]:
    """One row of text cells per symbol the simulator serves, by symbol id."""
    from ctrader_twisted.simulator.data import ASSET_CLASSES, SYMBOL_CATEGORIES, SYMBOLS

    classes = {classId: name for classId, name, _ in ASSET_CLASSES}
    categories = {categoryId: f"{classes[classId]} / {name}" if classes[classId] != name else name
                  for categoryId, classId, name, _ in SYMBOL_CATEGORIES}
    rows = []
    for symbolId in sorted(SYMBOLS):
        light, spec = SYMBOLS[symbolId]["light"], SYMBOLS[symbolId]["spec"]
        digits, lotSize = spec["digits"], spec["lotSize"]
        units = Decimal(lotSize) / 100  # volumes are in cents of a unit
        price, spread = SYMBOLS[symbolId]["price"], SYMBOLS[symbolId]["spread"]
        rows.append([
            str(symbolId),
            light["symbolName"],
            light["description"],
            categories[light["symbolCategoryId"]],
            str(digits),
            str(spec["pipPosition"]),
            f"{units.normalize():,f}",
            ", ".join(_lots(spec[key], lotSize) for key in ("minVolume", "stepVolume", "maxVolume")),
            f"{_price(price, digits)} / {_price(price + spread, digits)}",
        ])
    return rows


def symbolTable() -> list[str]:
    """The symbols as a reStructuredText ``list-table``."""
    lines = [".. list-table:: The simulator's symbols",
             "   :header-rows: 1",
             "   :class: simulator-symbols",
             ""]
    for row in [HEADER, *symbolRows()]:
        cells = [f"``{cell}``" if index == 1 and row is not HEADER else cell for index, cell in enumerate(row)]
        lines.append(f"   * - {cells[0]}")
        lines.extend(f"     - {cell}" for cell in cells[1:])
    return lines


def setup(app: Any) -> dict[str, Any]:
    """Register the directive (Sphinx is imported here only: the table
    functions above work without it, for the tests)."""
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx.util.docutils import SphinxDirective

    class SimulatorSymbols(SphinxDirective):
        """Renders :func:`symbolTable`."""

        has_content = False

        def run(self) -> list[nodes.Node]:
            from ctrader_twisted.simulator import data

            self.env.note_dependency(__file__)
            self.env.note_dependency(data.__file__)
            container = nodes.container()
            self.state.nested_parse(StringList(symbolTable(), source="<simulator-symbols>"), self.content_offset, container)
            return list(container.children)

    app.add_directive("simulator-symbols", SimulatorSymbols)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
