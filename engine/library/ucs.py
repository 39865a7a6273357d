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

# Category code -> words of the category name (UCS v8 spreadsheet, main categories).
CATEGORY_WORDS: dict[str, str] = {
    "AIR": "air", "AIRC": "aircraft plane", "ALRM": "alarm", "AMB": "ambience ambient",
    "ANML": "animal", "ARCHV": "archived", "BEEP": "beep", "BELL": "bell", "BIRD": "bird",
    "BLLT": "bullet", "BOAT": "boat", "BREATH": "breath", "CERM": "ceramic", "CHAIN": "chain",
    "CHEM": "chemical", "CLOCK": "clock", "CLOTH": "cloth", "COMM": "communication",
    "COMP": "computer", "CREA": "creature", "CROWD": "crowd", "DEST": "destruction",
    "DIRT": "dirt sand", "DOOR": "door", "DRWR": "drawer", "DSGN": "designed", "ELEC": "electric",
    "EQUIP": "equipment", "EXPL": "explosion", "FARM": "farm", "FART": "fart", "FEET": "footsteps",
    "FGHT": "fight", "FIRE": "fire", "FIREWK": "fireworks", "FOLY": "foley", "FOOD": "food drink",
    "GAME": "game", "GEOT": "geothermal", "GLAS": "glass", "GORE": "gore", "GUN": "gun",
    "HORN": "horn", "HMN": "human", "ICE": "ice", "LASR": "laser", "LETH": "leather",
    "LIQ": "liquid mud", "MACH": "machine", "MAGC": "magic", "MECH": "mechanical",
    "METL": "metal", "MOTR": "motor", "MOVE": "movement", "MUSC": "musical",
    "NTRL": "natural disaster",
    "OBJ": "object", "PAPR": "paper", "PLAS": "plastic", "RAIN": "rain", "ROCK": "rock",
    "ROPE": "rope", "RUBR": "rubber", "SCI": "scifi", "SNOW": "snow", "SPRT": "sport",
    "SWSH": "swoosh whoosh", "SWTH": "switch", "TOOL": "tool", "TOON": "cartoon", "TOY": "toy",
    "TRAN": "train", "UI": "user interface", "VEH": "vehicle car", "VOX": "voice",
    "WATR": "water", "WEAP": "weapon", "WHSTL": "whistle", "WNDW": "window", "WTHR": "weather",
    "WING": "wing", "WOOD": "wood",
}

# Longest code first, so "FIREWK" wins over "FIRE" and "AIRC" over "AIR".
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
