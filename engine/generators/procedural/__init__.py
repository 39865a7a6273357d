"""The embedded default backend: procedural *sketch* drafts of common Foley, no model, no GPU.

Rooms: ``text`` reads a description (family, loudness traits); ``primitives`` holds the DSP
building blocks; ``recipes`` renders one family each; ``generator`` checks requests, picks the
working rate, sets the level and is the ``Generator`` the registry builds.
"""

from engine.generators.procedural.generator import (
    BED_FAMILIES,
    DSP_VERSION,
    ProceduralGenerator,
    render_sketch,
)
from engine.generators.procedural.long_events import LONG_EVENT_S
from engine.generators.procedural.text import (
    FAMILIES,
    FAMILY_KEYWORDS,
    Traits,
    classify_family,
    describe_traits,
)

__all__ = [
    "BED_FAMILIES", "LONG_EVENT_S", "DSP_VERSION", "FAMILIES", "FAMILY_KEYWORDS",
    "ProceduralGenerator", "Traits", "classify_family", "describe_traits", "render_sketch",
]
