"""Universal Category System (UCS) file names: ``CatID_FXName_CreatorID_SourceID[_UserData]``.

A CatID is an upper-case category code followed by a capitalised subcategory, e.g. ``DOORWood``
(DOORS / WOOD) or ``AMBForst`` (AMBIENCE / FOREST). The full UCS list has several hundred
CatIDs; we do not ship it. What we need from a name is (a) whether it is UCS at all, (b) the
category code, so a request for "DOORWood" can still prefer other ``DOOR*`` files, and (c) words
for full-text search. ``CATEGORY_WORDS`` maps the category codes of the public UCS spreadsheet
(v8) to their names so "door" or "weather" find files named only by code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Category code -> words of the category name: the main categories of UCS v8.2.1 (codes as in
# the UCS spreadsheet, read through github.com/iluvcapra/ucs-community json/en.json; the words
# are ours). Archived-only codes (ADR, MIX, PFX, ...) are left out: they name no kind of sound.
CATEGORY_WORDS: dict[str, str] = {
    "AERO": "aircraft plane", "AIR": "air", "ALRM": "alarm", "AMB": "ambience ambient",
    "ANML": "animal", "BEEP": "beep", "BELL": "bell", "BIRD": "bird", "BLLT": "bullet",
    "BOAT": "boat", "CERM": "ceramic", "CHAIN": "chain", "CHEM": "chemical", "CLOCK": "clock",
    "CLOTH": "cloth", "CMPT": "computer", "COM": "communication", "CREA": "creature",
    "CRWD": "crowd", "DESTR": "destruction", "DIRT": "dirt sand", "DOOR": "door",
    "DRWR": "drawer", "DSGN": "designed", "ELEC": "electric", "EQUIP": "equipment",
    "EXPL": "explosion", "FART": "fart", "FEET": "footsteps", "FGHT": "fight", "FIRE": "fire",
    "FOLY": "foley", "FOOD": "food drink", "FRWK": "fireworks", "GAME": "game",
    "GEO": "geothermal", "GLAS": "glass", "GORE": "gore", "GUN": "gun", "HAIL": "hail weather",
    "HMN": "human", "HORN": "horn", "ICE": "ice", "LASR": "laser", "LETHR": "leather",
    "LIQ": "liquid mud", "MACH": "machine", "MAG": "magic", "MECH": "mechanical",
    "METL": "metal", "MOTR": "motor", "MOVE": "movement", "MUSC": "musical",
    "NATD": "natural disaster", "OBJ": "object", "PAPR": "paper", "PLAS": "plastic",
    "RAIN": "rain", "ROBT": "robot", "ROCK": "rock", "ROPE": "rope", "RUBR": "rubber",
    "SCI": "scifi", "SNOW": "snow", "SPRT": "sport", "STORM": "storm weather",
    "SWSH": "swoosh whoosh", "THUN": "thunder weather", "TOOL": "tool", "TOON": "cartoon",
    "TOY": "toy", "TRN": "train", "UI": "user interface", "VEGE": "vegetation",
    "VEH": "vehicle car", "VOX": "voice", "WATR": "water", "WEAP": "weapon",
    "WHSH": "whoosh swoosh", "WHST": "whistle", "WIND": "wind", "WING": "wing",
    "WNDW": "window", "WOOD": "wood", "WTHR": "weather",
}

# Longest code first: a house category that extends an official code keeps the longer one.
_CODES = sorted(CATEGORY_WORDS, key=len, reverse=True)
_CAT_ID = re.compile(r"^([A-Z]{2,8})([A-Z][a-z0-9]*(?:[A-Z0-9][a-z0-9]*)*|)$")
_SPLIT_WORDS = re.compile(r"(?<=[a-z])(?=[A-Z])|[^A-Za-z0-9]+")


@dataclass(frozen=True)
class UcsName:
    cat_id: str
    category: str  # the upper-case code, e.g. "DOOR"
    subcategory: str  # e.g. "Wood" ("" when the CatID is the bare code)
    fx_name: str
    creator_id: str
    source_id: str
    user_data: str


def split_cat_id(cat_id: str) -> tuple[str, str] | None:
    """("DOOR", "Wood") for "DOORWood"; None when ``cat_id`` does not look like a CatID."""
    if not _CAT_ID.match(cat_id):
        return None
    for code in _CODES:
        if cat_id.startswith(code):
            rest = cat_id[len(code):]
            if not rest or rest[0].isupper():
                return code, rest
    # An unknown code (a newer UCS version, a house category): split at the last capital run.
    match = re.match(r"^([A-Z]+?)([A-Z][a-z0-9].*)?$", cat_id)
    if match is None:
        return None
    return match.group(1), match.group(2) or ""


def parse_ucs_name(stem: str) -> UcsName | None:
    """The UCS parts of a file name without its extension, or None if it is not UCS.

    A UCS name has at least CatID, FXName and CreatorID separated by underscores; SourceID and
    user data are optional in the wild. "Door slam.wav" and "take_3.wav" are not UCS."""
    parts = stem.split("_")
    if len(parts) < 3:
        return None
    split = split_cat_id(parts[0])
    if split is None or not parts[1].strip():
        return None
    category, subcategory = split
    return UcsName(
        cat_id=parts[0],
        category=category,
        subcategory=subcategory,
        fx_name=parts[1].strip(),
        creator_id=parts[2].strip(),
        source_id=parts[3].strip() if len(parts) > 3 else "",
        user_data="_".join(parts[4:]).strip(),
    )


def cat_id_words(cat_id: str) -> str:
    """Searchable words for a CatID: "DOORWood" -> "door wood"."""
    split = split_cat_id(cat_id)
    if split is None:
        return ""
    category, subcategory = split
    words = [CATEGORY_WORDS.get(category, category.lower())]
    words += [w.lower() for w in _SPLIT_WORDS.split(subcategory) if w]
    return " ".join(words)


def ucs_file_name(*, cat_id: str, fx_name: str, creator_id: str, source_id: str) -> str:
    """A UCS file stem; underscores inside parts become spaces (they separate parts)."""
    parts = [cat_id, fx_name, creator_id, source_id]
    return "_".join(p.replace("_", " ").strip() for p in parts)
