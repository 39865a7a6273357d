"""Search: the lexicon's reading of a description plus BM25 over the file text."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InvalidInputError
from engine.library.scan import add_folder
from engine.library.search import fts_expression, search, understand
from engine.library.store import LibraryIndex
from tests.engine.library import builders as b


def _names(hits) -> list[str]:
    return [h.file.path.name for h in hits]


def test_a_door_slam_finds_wooden_door_slams_first(built: LibraryIndex) -> None:
    hits = search(built, "heavy wooden door slam")
    names = _names(hits)
    assert names[0] == "DOORWood_Slam Heavy_ABC_Foley.wav"  # FX name has "heavy" too
    assert set(names[1:3]) == {"DOORWood_Slam Light_ABC_Foley.flac", "DOORWood_Slam Big_XYZ_Studio.aiff"}
    # Same UCS category, other subcategory: below the wooden doors, above unrelated files.
    assert names.index("DOORMetl_Clang Gate_ABC_Foley.ogg") == 3
    assert hits[0].category == 1.0 and hits[3].category == 0.6
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))


def test_the_category_finds_files_whose_words_do_not_match(built: LibraryIndex) -> None:
    # "slams the door" has no word of "Clang Gate"; the lexicon's DOOR category still brings
    # every door in, and nothing else.
    names = _names(search(built, "someone slams the door"))
    assert names[:3] and all(n.startswith("DOOR") for n in names)


def test_descriptions_and_tags_are_searched(built: LibraryIndex) -> None:
    assert _names(search(built, "dawn chorus woodpecker"))[0] == "AMBForst_Birds Morning_ABC_Field.wav"
    assert _names(search(built, "kettle boiling"))[0] == "kettle whistle take 3.mp3"
    assert _names(search(built, "rain on pavement"))[0] == "RAINConc_Rain On Pavement_ABC_Field.flac"


def test_beds_prefer_loopable_files(built: LibraryIndex, tmp_path: Path) -> None:
    root = tmp_path / "more"
    b.write(root / "RAINConc_Rain Fades Out_ABC_Field.wav", b.fade_out(b.bed(length_s=5.0)))
    add_folder(built, root)
    hits = search(built, "rain")
    assert hits[0].file.path.name == "RAINConc_Rain On Pavement_ABC_Field.flac"
    assert hits[0].shape > hits[1].shape


def test_nothing_matching_is_an_empty_list(built: LibraryIndex) -> None:
    assert search(built, "a cow moos in a barn") == []


def test_user_text_is_never_fts_syntax(built: LibraryIndex) -> None:
    for text in ('door" OR "*', "NEAR(door slam)", "door AND NOT -slam", "^door", "'; DROP TABLE files; --"):
        search(built, text)  # no sqlite3.OperationalError
    assert fts_expression(understand('a "door')) .count('"door"') == 1


def test_limits_and_empty_text_are_named(built: LibraryIndex) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        search(built, "door", limit=0)
    with pytest.raises(InvalidInputError, match="description"):
        search(built, "  ")


def test_understand_reads_kind_and_category_from_the_lexicon() -> None:
    query = understand("a heavy door slams shut")
    assert query.entry is not None and query.kind == "one_shot" and query.entry.ucs == "DOORWood"
    assert understand("steady rain on the roof").kind == "bed"


def test_ranking_is_deterministic(built: LibraryIndex) -> None:
    first = [(h.file.id, h.score) for h in search(built, "door")]
    assert first == [(h.file.id, h.score) for h in search(built, "door")]
