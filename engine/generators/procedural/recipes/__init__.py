"""The per-family sketch recipes, one table from family name to recipe.

A recipe is ``recipe(rng, n_frames, sample_rate, traits) -> float64 (channels, n_frames)``; it
promises only the shape and finite samples, and the generator sets the level afterwards.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.generators.procedural.recipes.beds import (
    sketch_crowd,
    sketch_fire,
    sketch_neutral,
    sketch_pad,
    sketch_rain,
    sketch_water,
    sketch_wind,
)
from engine.generators.procedural.recipes.body import (
    sketch_cough,
    sketch_heartbeat,
    sketch_scream,
    sketch_whistle,
)
from engine.generators.procedural.recipes.hits import (
    sketch_door,
    sketch_explosion,
    sketch_footsteps,
    sketch_gunshot,
    sketch_impact,
    sketch_thunder,
    sketch_typing,
)
from engine.generators.procedural.recipes.mechanical import sketch_click, sketch_keys
from engine.generators.procedural.recipes.music import sketch_note
from engine.generators.procedural.recipes.signals import (
    sketch_alarm,
    sketch_beep,
    sketch_horn,
    sketch_siren,
)
from engine.generators.procedural.recipes.tones import sketch_bell
from engine.generators.procedural.recipes.vehicles import sketch_engine
from engine.generators.procedural.recipes.voices import (
    sketch_animal,
    sketch_bird,
    sketch_cat,
    sketch_dog,
)
from engine.generators.procedural.text import Traits

Recipe = Callable[[np.random.Generator, int, int, Traits], np.ndarray]

RECIPES: dict[str, Recipe] = {
    "rain": sketch_rain, "wind": sketch_wind, "water": sketch_water, "fire": sketch_fire,
    "thunder": sketch_thunder, "engine": sketch_engine, "footsteps": sketch_footsteps,
    "door": sketch_door, "impact": sketch_impact, "gunshot": sketch_gunshot,
    "explosion": sketch_explosion, "crowd": sketch_crowd, "bird": sketch_bird, "dog": sketch_dog,
    "cat": sketch_cat, "animal": sketch_animal, "bell": sketch_bell, "alarm": sketch_alarm,
    "typing": sketch_typing, "pad": sketch_pad, "neutral": sketch_neutral,
    "siren": sketch_siren, "horn": sketch_horn, "beep": sketch_beep, "scream": sketch_scream,
    "cough": sketch_cough, "whistle": sketch_whistle, "note": sketch_note,
    "heartbeat": sketch_heartbeat, "keys": sketch_keys, "click": sketch_click,
}


def recipe_for(family: str) -> Recipe:
    """The family's recipe; a family this backend does not know gets the neutral swell."""
    return RECIPES.get(family, sketch_neutral)
