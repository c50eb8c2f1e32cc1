"""Draw the book's logo and favicon: the PReLU curve, made with matplotlib.

Usage:
    python tools/make_logo.py [OUTPUT_DIR]   # default: book/_static

Writes ``logo.png`` (the curve beside the book's name) and ``favicon.png``
(the curve alone, bold enough to read at 16 px). The output is deterministic:
the font is matplotlib's bundled DejaVu Sans, not whatever the system has,
and the PNG carries no software version or date, so running the script again
leaves the committed files byte for byte unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The paper's initial slope for the negative side (He et al., 2015).
ALPHA = 0.25
BACKGROUND = "#0f2537"
AXES = "#5b7083"
NEGATIVE_SIDE = "#ffb74d"
POSITIVE_SIDE = "#ff6f00"
TEXT = "#ffffff"
# Metadata that would otherwise record the matplotlib version.
PNG_METADATA = {"Software": None}


def _bundled_font(style: str) -> FontProperties:
    """Returns matplotlib's own DejaVu Sans, so every machine draws the same glyphs.

    Args:
        style: "Bold", or "" for the regular face.
    """
    name = f"DejaVuSans-{style}.ttf" if style else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    return FontProperties(fname=path)


def _draw_curve(ax: plt.Axes, linewidth: float) -> None:
    """Draws f(x) = max(0, x) + alpha * min(0, x) with its two slopes in two colours."""
    negative = np.array([-1.0, 0.0])
    positive = np.array([0.0, 1.0])
    ax.axhline(0.0, color=AXES, linewidth=linewidth / 3, zorder=1)
    ax.axvline(0.0, color=AXES, linewidth=linewidth / 3, zorder=1)
    ax.plot(
        negative,
        ALPHA * negative,
        color=NEGATIVE_SIDE,
        linewidth=linewidth,
        solid_capstyle="round",
        zorder=2,
    )
    ax.plot(
        positive,
        positive,
        color=POSITIVE_SIDE,
        linewidth=linewidth,
        solid_capstyle="round",
        zorder=3,
    )
    ax.set_xlim(-1.15, 1.15)
    ax.set_ylim(-0.55, 1.15)
    ax.set_axis_off()


def _rounded_background(fig: plt.Figure, rounding: float) -> None:
    """Fills the figure with a dark rounded box so the mark reads on light and dark themes.

    Args:
        fig: the figure to fill.
        rounding: the corners' radius, as a fraction of the figure's width.
    """
    width, height = fig.get_size_inches()
    fig.patches.append(
        FancyBboxPatch(
            (0.0, 0.0),
            1.0,
            1.0,
            boxstyle=f"round,pad=0,rounding_size={rounding}",
            mutation_aspect=width / height,
            transform=fig.transFigure,
            facecolor=BACKGROUND,
            edgecolor="none",
            zorder=-1,
        )
    )


def _canvas(
    figsize: tuple[float, float],
    rounding: float,
    curve_box: tuple[float, float, float, float],
    linewidth: float,
) -> plt.Figure:
    """A transparent figure with the rounded background and the curve in ``curve_box``."""
    fig = plt.figure(figsize=figsize, dpi=100)
    fig.patch.set_alpha(0.0)
    _rounded_background(fig, rounding=rounding)
    ax = fig.add_axes(curve_box)
    ax.patch.set_alpha(0.0)
    _draw_curve(ax, linewidth=linewidth)
    return fig


def draw_logo(path: Path) -> None:
    """Writes a 600x200 px logo: the PReLU curve beside the book's name.

    Wide rather than square, so it sits in the sidebar without pushing the
    table of contents down.
    """
    fig = _canvas(figsize=(6, 2), rounding=0.08, curve_box=(0.03, 0.1, 0.27, 0.8), linewidth=7)
    for x, y, text, size, weight in (
        (0.33, 0.62, "PReLU", 46, "Bold"),
        (0.335, 0.27, "in TensorFlow", 25, ""),
    ):
        fig.text(
            x,
            y,
            text,
            ha="left",
            va="center",
            color=TEXT,
            fontsize=size,
            fontproperties=_bundled_font(weight),
        )
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def draw_favicon(path: Path) -> None:
    """Writes a 64x64 px favicon: the curve alone, with strokes thick enough for a tab."""
    fig = _canvas(
        figsize=(0.64, 0.64), rounding=0.12, curve_box=(0.08, 0.1, 0.84, 0.84), linewidth=4
    )
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", type=Path, default=ROOT / "book" / "_static")
    args = parser.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    draw_logo(args.output_dir / "logo.png")
    draw_favicon(args.output_dir / "favicon.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
