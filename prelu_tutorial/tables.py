"""Tables for the book: rows shown as an HTML table with padded cells.

Every chapter shows its tables through :func:`table`, so that they look the
same on every page and stay one output box each. The object it returns is
rendered by Jupyter (and by the built book) as HTML; its plain-text form,
which nbval compares, is the same table in aligned columns.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Table", "table"]

_PAD = "padding: 2px 10px"
# The size of the book's printed outputs (book/_static/code-width.css), so that a table of
# seven columns or of long op names still fits the text column.
_FONT = "font-size: 0.8rem"


def _text(value: Any, number_format: str) -> str:
    """A cell's text: floats in ``number_format``, everything else as ``str``.

    A scalar tensor or 0-d array counts as the number it holds, so that a
    chapter can put ``tf.reduce_max(...)`` in a cell without ``float()``.
    """
    if hasattr(value, "numpy"):  # a TensorFlow tensor
        value = value.numpy()
    if getattr(value, "ndim", None) == 0:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return format(float(value), number_format)
    return str(value)


class Table:
    """A table that Jupyter renders as HTML and prints as aligned text.

    Args:
        columns: The column headers.
        rows: The rows, each a sequence of cells as long as ``columns``.
        caption: An optional caption above the table.
        digits: Decimals for float cells.
        number_format: A format spec for float cells, e.g. ``".4g"`` for
            four significant digits; it replaces ``digits``.

    Raises:
        ValueError: If a row does not have one cell per column.
    """

    def __init__(
        self,
        columns: Sequence[Any],
        rows: Sequence[Sequence[Any]],
        caption: str | None = None,
        digits: int = 3,
        number_format: str | None = None,
    ) -> None:
        number_format = f".{digits}f" if number_format is None else number_format
        self.columns = [str(column) for column in columns]
        self.rows = [[_text(cell, number_format) for cell in row] for row in rows]
        for index, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"table: row {index} has {len(row)} cells for {len(self.columns)} "
                    f"columns: {row!r}."
                )
        self.caption = caption

    def _repr_html_(self) -> str:
        def row(cells: Sequence[str], tag: str) -> str:
            return "<tr>" + "".join(
                f'<{tag} style="{_PAD}">{html.escape(cell)}</{tag}>' for cell in cells
            ) + "</tr>"

        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        body = "".join(row(cells, "td") for cells in self.rows)
        head = row(self.columns, "th")
        return (
            f'<table class="table" style="{_FONT}">{caption}<thead>{head}</thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def __repr__(self) -> str:
        widths = [
            max(len(cell) for cell in column)
            for column in zip(self.columns, *self.rows, strict=True)
        ]
        lines = [self.caption] if self.caption else []
        for cells in (self.columns, *self.rows):
            padded = (cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            lines.append("  ".join(padded).rstrip())
        return "\n".join(lines)


def table(
    rows: Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]],
    columns: Sequence[Any] | None = None,
    caption: str | None = None,
    digits: int = 3,
    number_format: str | None = None,
) -> Table:
    """Rows as a :class:`Table`; the last expression of a cell shows it.

    Args:
        rows: Sequences of cells, or mappings with the same keys (the keys
            are then the columns, unless ``columns`` is given).
        columns: The column headers; required for rows that are sequences.
        caption: An optional caption above the table.
        digits: Decimals for float cells.
        number_format: A format spec for float cells, e.g. ``".4g"`` for
            four significant digits (``inf``, ``nan`` and ``-7.5e+37`` stay
            short); it replaces ``digits``.

    Returns:
        The table.

    Raises:
        ValueError: If there are no columns, or a row has the wrong length.
    """
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        keys = list(columns) if columns is not None else list(rows[0])
        rows = [[row[key] for key in keys] for row in rows]
        columns = keys
    if not columns:
        raise ValueError("table: columns must name at least one column.")
    return Table(columns, rows, caption=caption, digits=digits, number_format=number_format)
