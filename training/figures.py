"""What every training figure shares: the synthetic-data mark.

A PNG travels without the report that explains it, so a figure made from synthetic data says so on
itself: :func:`mark_synthetic` writes a visible line across the top of the figure
(:func:`synthetic_mark_text`, e.g. "synthetic data — not DEAP/PMEmo"), in the figure's own text,
so it is in every copy, crop of the title area aside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MARK_COLOUR", "mark_synthetic", "synthetic_mark_text"]

MARK_COLOUR = "#b00020"


def synthetic_mark_text(real: str | None = None) -> str:
    """The mark: ``"SYNTHETIC DATA — not DEAP/PMEmo results"`` (or naming ``real`` only)."""
    return f"SYNTHETIC DATA — not {real or 'DEAP/PMEmo'} results"


def mark_synthetic(fig: Figure, dataset: dict[str, Any] | None) -> bool:
    """Put the synthetic-data mark on ``fig`` when ``dataset`` (a report's ``dataset`` entry) says
    ``synthetic``; returns whether it did. Call it after ``tight_layout``: it reserves room at
    the top of the figure for the line."""
    if not dataset or not dataset.get("synthetic"):
        return False
    fig.subplots_adjust(top=min(fig.subplotpars.top, 0.82))
    fig.text(
        0.5,
        0.985,
        synthetic_mark_text(
            dataset.get("format") if dataset.get("format") in ("DEAP", "PMEmo") else None
        ),
        ha="center",
        va="top",
        fontsize=10,
        fontweight="bold",
        color=MARK_COLOUR,
    )
    return True
