"""Figures for the book's prose: myst-nb's ``glue`` where the book is built, else nothing.

A chapter computes a figure in a code cell and calls :func:`glue`; its Markdown
then shows the stored value with ``{glue:text}`name```, so the prose can
never drift from the output. myst-nb comes with Jupyter Book; elsewhere (on
Colab, say) the call does nothing, and the reader sees the figure in the
cell's own printed output.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue"]


def glue(name: str, value: Any) -> None:
    """Stores ``value`` under ``name`` for the chapter's Markdown, without displaying it.

    Args:
        name: The key the Markdown names in ``{glue:text}`name```.
        value: The figure: a string, shown as it is, or a number that the
            Markdown may format (``{glue:text}`name:.1f```).

    Raises:
        TypeError: If ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"glue: name must be a non-empty string, got {name!r}.")
    try:
        # myst-nb comes with Jupyter Book, not with this package: looked for at each call.
        from myst_nb import glue as myst_glue
    except ImportError:  # not building the book: the printed output shows the figure
        return
    # A string goes in as itself, so its text/plain form is its quoted repr: {glue:text} reads
    # that with ast.literal_eval, which drops the quotes and gives back the string. Unquoted,
    # "25,000" would come back as the tuple (25, 0) and "0.50" as 0.5.
    myst_glue(name, value, display=False)
