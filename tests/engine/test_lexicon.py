"""The sound lexicon: the shipped file validates, lookups are deterministic, bad entries are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InvalidInputError
from engine.lexicon import FAMILIES, KINDS, load_lexicon, read_lexicon, stem


def test_shipped_lexicon_is_valid_and_large() -> None:
    lexicon = load_lexicon()
    assert len(lexicon) >= 150
    assert load_lexicon() is lexicon  # cached
    for entry in lexicon.entries:
        assert entry.kind in KINDS
        assert entry.family in FAMILIES
        assert 0 < entry.length_min_s <= entry.length_max_s
        assert entry.tail_s <= entry.length_max_s


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("A door slamming", "door slam"),
        ("the door slams shut", "door slam"),
        ("a dog barks three times", "dog bark"),
        ("camera shutter clicks five times", "camera shutter"),
        ("heavy rain on the street", "rain"),
        ("a kettle boils", "kettle boiling"),
        ("keys jingle", "keys jingle"),
        ("a woman screams", "scream"),
        ("a chainsaw starts", "chainsaw"),
        ("a car horn honks", "car horn"),
        ("a crackling fire", "fire"),
        ("an explosion", "explosion"),
    ],
)
def test_match_finds_the_source(text: str, name: str) -> None:
    entry = load_lexicon().match(text)
    assert entry is not None and entry.name == name


def test_match_is_none_for_unknown_text() -> None:
    assert load_lexicon().match("zzz qqq") is None


def test_longer_keyword_wins() -> None:
    # "car horn" (two words) beats "car" (one word) wherever both occur.
    assert load_lexicon().match("a car horn in the distance").name == "car horn"
    assert load_lexicon().match("a car idles").name == "car engine"


def test_kinds_and_lengths_fit_designer_expectations() -> None:
    lexicon = load_lexicon()
    slam = lexicon.get("door slam")
    assert slam.kind == "one_shot" and slam.length_min_s >= 0.3 and slam.length_max_s <= 2.0
    boom = lexicon.get("explosion")
    assert boom.tail_s >= 2.0 and boom.loudness_db > slam.loudness_db
    assert lexicon.get("rain").kind == "bed"
    assert lexicon.get("dog bark").kind == "hits" and lexicon.get("dog bark").single_hit_s < 1.0


def test_by_family_and_ucs() -> None:
    lexicon = load_lexicon()
    doors = lexicon.by_family("door")
    assert doors and all(e.family == "door" for e in doors)
    assert {e.name for e in lexicon.by_ucs("DOORWood")} >= {"door slam"}
    assert lexicon.by_ucs("NOPEnope") == ()


def test_stem_joins_inflections() -> None:
    assert stem("slamming") == stem("slams") == stem("slam")
    assert stem("closes") == stem("close") == stem("closing")
    assert stem("flies") == "fly"
    assert stem("glasses") == stem("glass")


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sounds.toml"
    path.write_text(body, encoding="utf-8")
    return path


GOOD = ('{ name = "thud", kind = "one_shot", length_s = [0.3, 1], loudness_db = 0, '
        'family = "impact", keywords = ["thud"] }')


def test_read_lexicon_accepts_a_minimal_file(tmp_path: Path) -> None:
    lexicon = read_lexicon(_write(tmp_path, f"sound = [{GOOD}]"))
    assert lexicon.match("a thud").name == "thud"


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (('"one_shot"', '"loop"'), "kind='loop'"),
        (("[0.3, 1]", "[2, 1]"), "length_s=[2, 1]"),
        (('"impact"', '"zither"'), "family='zither'"),
        (("loudness_db = 0", "loudness_db = 99"), "loudness_db=99"),
        (('keywords = ["thud"]', 'keywords = "thud"'), "keywords must be a list"),
        (('name = "thud", ', ''), "missing field(s) ['name']"),
    ],
)
def test_bad_entry_is_named(tmp_path: Path, replace: tuple[str, str], message: str) -> None:
    body = GOOD.replace(*replace)
    with pytest.raises(InvalidInputError) as caught:
        read_lexicon(_write(tmp_path, f"sound = [{GOOD}, {body}]"))
    assert "sound[1]" in str(caught.value) and message in str(caught.value)


def test_duplicate_names_and_bad_toml_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="duplicate name"):
        read_lexicon(_write(tmp_path, f"sound = [{GOOD}, {GOOD}]"))
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        read_lexicon(_write(tmp_path, "sound = [{"))
    with pytest.raises(InvalidInputError, match="non-empty 'sound' list"):
        read_lexicon(_write(tmp_path, "other = 1"))


@pytest.mark.parametrize("variant", ["plain", "loudness"])
def test_llm_prompt_carries_the_lexicon_priors_and_the_counts_rule(variant: str) -> None:
    from engine.plan import PlanLimits
    from engine.planners.llm_prompt import load_system_prompt

    text = load_system_prompt(variant, limits=PlanLimits())
    slam = load_lexicon().get("door slam")
    assert f"door slam {slam.length_min_s:g}-{slam.length_max_s:g}" in text
    assert f"dog bark {load_lexicon().get('dog bark').single_hit_s:g}" in text
    assert "three times" in text and "separate events" in text
    assert "$" not in text


@pytest.mark.parametrize(
    ("text", "name"),
    [("a roaring fireplace", "fire"),  # an -ing modifier does not name the source
     ("a tap dripping slowly", "water dripping"),  # "tap" is not "tape"
     ("gentle wind", "wind"),  # "wind" is not "winding"
     ("wind howls through the trees", "wind")],  # the source is named first
)
def test_match_prefers_exact_nouns_named_first(text: str, name: str) -> None:
    assert load_lexicon().match(text).name == name
