"""Which bundled model fits the imagery: its bands and its resolution.

``geoslide map`` without ``--model`` asks :func:`choose_bundled` with the bands the items offer
and their pixel size, and says which model it took and why. The ``demo`` model was trained on the
synthetic demo world only, so it is chosen for synthetic demo items alone.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from geoslide.errors import ModelError
from geoslide.models.card import BUNDLED, ModelCard, bundled_names, read_card
from geoslide.raster.derived import is_derived

DEMO = "demo"
RESOLUTION_SLACK = 1.25
"""A model still fits imagery this many times finer or coarser than its training range."""


@dataclass(frozen=True)
class Choice:
    """A bundled model and why it was chosen."""

    path: Path
    card: ModelCard
    reason: str


def choose_bundled(bands: Collection[str], resolution: float | None, synthetic: bool = False,
                   positional: bool = False, root: Path = BUNDLED) -> Choice:
    """The bundled model for imagery offering ``bands`` at ``resolution`` metres.

    Among the models whose bands the imagery has (derived bands such as ``ndvi`` are computed), the
    one whose training resolutions fit best; ties go to the model using more bands. ``synthetic``
    imagery (the demo's) gets the ``demo`` model, other imagery the others. With ``positional``
    (bands a user listed, ``--bands b1 b2 b3``), bands that match no model's names match the models
    taking that many bands.
    """
    offered = {b.lower() for b in bands}
    installed = bundled_names(root)
    names = [n for n in installed if (n == DEMO) == synthetic] or ([DEMO] if DEMO in installed else [])
    cards = {name: read_card(root / name) for name in names}
    fitting = [(_misfit(c, resolution), -len(c.bands), n, c) for n, c in cards.items() if _offers(offered, c)]
    if not fitting and positional:
        fitting = [(_misfit(c, resolution), 0, n, c) for n, c in cards.items() if len(c.bands) == len(offered)]
    if not fitting:
        raise ModelError(f"no bundled model fits imagery with bands {sorted(offered)}: {_menu(cards)}; "
                         "choose bands with --bands or pass --model MODEL_DIR")
    misfit, _, name, card = min(fitting)
    reason = f"bundled model {name!r} ({', '.join(card.bands)}; {_range_text(card)})"
    if misfit > math.log(RESOLUTION_SLACK):
        reason += f": the imagery's {resolution:g} m is outside its range, consider --resolution model"
    return Choice(root / name, card, reason)


def _offers(offered: set[str], card: ModelCard) -> bool:
    return all(b.lower() in offered or is_derived(b) for b in card.bands)


def training_range(card: ModelCard) -> tuple[float, float] | None:
    """The card's range of training resolutions (one value twice for a single resolution)."""
    if card.resolution_range:
        return card.resolution_range
    return (card.resolution, card.resolution) if card.resolution else None


def _misfit(card: ModelCard, resolution: float | None) -> float:
    """How far (log ratio) ``resolution`` lies outside the card's training range; 0 inside or unknown."""
    span = training_range(card)
    if resolution is None or span is None:
        return 0.0
    lo, hi = span
    return max(0.0, math.log(lo / resolution), math.log(resolution / hi))


def _range_text(card: ModelCard) -> str:
    span = training_range(card)
    if span is None:
        return "resolution unknown"
    return f"{span[0]:g} m" if span[0] == span[1] else f"{span[0]:.2g}-{span[1]:.2g} m"


def _menu(cards: dict[str, ModelCard]) -> str:
    return "; ".join(f"{n} needs {', '.join(c.bands)}" for n, c in cards.items()) or "none is installed"
