"""The rule planner on sources with a life of their own: machines that start, run and stop, and
sounds that come in after an action ("... and an alarm starts") and go on from there."""

from __future__ import annotations

import pytest

from engine.lexicon import load_lexicon, parse_lexicon
from engine.errors import InvalidInputError
from engine.plan import Event, Plan
from engine.planners.rules import RulePlanner
from engine.planners.rules_layout import BED_LEAD_S
from engine.planners.rules_time import is_onset, is_start, is_stop

PLANNER = RulePlanner(base_lufs=-23.0)
SCENE_S = 12.0


def plan(prompt: str, duration_s: float = SCENE_S) -> Plan:
    return PLANNER.plan(prompt, duration_s=duration_s).plan


def in_order(p: Plan) -> list[Event]:
    return sorted(p.events, key=lambda e: (e.start_s, e.end_s))


# ---- class 1: a machine's start-up, its run, its stop --------------------------------------------

# Each of these names a source the lexicon files as a bed (a generator, a fridge, a fan, a
# projector) or a machine that runs, and gives it a start, a run and a stop in some wording.
MACHINE_LIVES = [
    ("the generator kicks in and hums, then stops", "generator"),
    ("the fridge compressor starts, runs for a while and cuts out", "fridge"),
    ("the projector whirs on, then clicks off", "projector"),
    ("the air conditioner switches on, hums for a while, then switches off", "air conditioner"),
    ("a lawn mower starts up, runs, then cuts out", "lawn mower"),
    ("the washing machine starts, then stops", "washing machine"),
    ("the ceiling fan turns on and whirs, then turns off", "fan"),
    ("the fan is switched on, runs, then is switched off", "fan"),
    ("a truck engine starts, idles, then shuts off", "engine"),
]


@pytest.mark.parametrize(("prompt", "source"), MACHINE_LIVES)
def test_machine_start_run_stop_is_three_events_back_to_back(prompt: str, source: str) -> None:
    p = plan(prompt)
    assert len(p.events) == 3, [(e.description, e.start_s, e.end_s) for e in p.events]
    start, run, stop = in_order(p)
    assert all(source in e.description.lower() for e in (start, run, stop))
    # A short start-up sound at the top, not a bed over the whole scene.
    assert start.start_s == 0.0 and start.length_s <= 2.0
    # The run picks up where the start-up ends and lasts until the stop ...
    assert run.start_s == pytest.approx(start.end_s)
    assert run.length_s >= 5.0
    # ... and the stop is a short event of its own at the end of the run.
    assert stop.start_s == pytest.approx(run.end_s)
    assert stop.length_s <= 1.5
    assert stop.end_s <= SCENE_S


def test_explicit_run_length_is_kept_for_a_bed_machine() -> None:
    """The shape "X starts, runs for N s, then stops" is the same for a bed-kind machine as it
    always was for a chainsaw."""
    for source in ("chainsaw", "generator"):
        start, run, stop = in_order(plan(f"a {source} starts, runs for 5 seconds, then stops"))
        assert (start.start_s, start.end_s) == (0.0, 1.5)
        assert (run.start_s, run.end_s) == (1.5, 6.5)
        assert stop.start_s == 6.5 and stop.length_s == 1.0


def test_a_machine_that_only_runs_then_dies_gets_a_run_and_a_stop() -> None:
    run, stop = in_order(plan("an engine idles and then dies"))
    assert run.start_s == 0.0 and "idles" in run.description
    assert stop.start_s == pytest.approx(run.end_s) and stop.length_s <= 1.5
    assert "dies" in stop.description


def test_other_sounds_between_start_and_stop_play_over_the_run() -> None:
    p = plan("the vacuum cleaner starts, then the doorbell rings, then the vacuum stops")
    start, run, bell, stop = in_order(p)
    assert "doorbell" in bell.description.lower()
    assert run.start_s == pytest.approx(start.end_s) and run.end_s == pytest.approx(stop.start_s)
    assert run.start_s < bell.start_s and bell.end_s <= stop.start_s + 0.6
    # Nothing of the vacuum is planned twice over the same stretch.
    vacuum = [e for e in p.events if "vacuum" in e.description.lower()]
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(vacuum, vacuum[1:]))


def test_what_a_machine_does_before_it_starts_ends_at_the_start_up() -> None:
    sputter, start, hum, stop = in_order(plan("the generator sputters, kicks in and hums, then dies"))
    assert "sputters" in sputter.description and sputter.end_s == pytest.approx(start.start_s)
    assert hum.start_s == pytest.approx(start.end_s) and stop.start_s == pytest.approx(hum.end_s)


def test_a_bed_that_is_not_a_machine_has_no_start_up_sound() -> None:
    """Rain does not "start up": "rain starts, then stops" is one stretch of rain."""
    p = plan("rain starts, then a door slams, then the rain stops")
    rain = [e for e in p.events if "rain" in e.description.lower()]
    assert len(rain) == 1 and rain[0].start_s == 0.0 and rain[0].length_s > 5.0


def test_music_stopping_still_makes_no_stop_sound() -> None:
    p = plan("music plays, then the music stops, then a door slams", 10.0)
    assert [e for e in p.events if "music" in e.description.lower()][0].end_s <= \
        [e for e in p.events if "door" in e.description.lower()][0].start_s
    assert not any("stops" in e.description.lower() for e in p.events)


@pytest.mark.parametrize(
    ("text", "start", "stop"),
    [("the engine dies", False, True), ("the fire dies down", False, False),
     ("the projector whirs on", True, False), ("the projector clicks off", False, True),
     ("the pump shuts off", False, True), ("the fan powers up", True, False),
     ("the motor winds down", False, True)],
)
def test_machine_start_and_stop_words(text: str, start: bool, stop: bool) -> None:
    assert (is_start(text), is_stop(text)) == (start, stop)


def test_lexicon_machine_flag_is_validated_and_marks_switched_sources() -> None:
    lexicon = load_lexicon()
    assert lexicon.get("machinery").machine and lexicon.get("fan").machine
    assert lexicon.get("projector").kind == "bed" and lexicon.get("projector").machine
    assert not lexicon.get("rain").machine and not lexicon.get("alarm").machine
    raw = {"name": "pump", "keywords": ["pump"], "kind": "bed", "length_s": [5, 600],
           "loudness_db": -10, "family": "engine"}
    assert parse_lexicon({"sound": [raw]}).get("pump").machine is False
    with pytest.raises(InvalidInputError, match="machine"):
        parse_lexicon({"sound": [{**raw, "machine": "yes"}]})


# ---- class 2: "X happens and Y starts" ----------------------------------------------------------

STARTS_AFTER = [
    ("debris falls and a car alarm starts", "debris", "alarm"),
    ("the glass shatters and an alarm starts ringing", "glass", "alarm"),
    ("the door closes and rain begins", "door", "rain"),
    ("a window breaks and a burglar alarm goes off", "window", "alarm"),
    ("a door slams and a baby starts crying", "door", "baby"),
    ("the lights go out and a generator kicks in", "lights", "generator"),
]


def _first_and_started(prompt: str, first: str, then: str) -> tuple[Event, Event]:
    """The one event whose description holds ``first`` and the one holding ``then``."""
    p = plan(prompt)
    named = [[e for e in p.events if key in e.description.lower()] for key in (first, then)]
    assert [len(events) for events in named] == [1, 1], [e.description for e in p.events]
    return named[0][0], named[1][0]


@pytest.mark.parametrize(("prompt", "first", "then"), STARTS_AFTER)
def test_a_source_that_starts_comes_in_when_the_action_lands(prompt: str, first: str,
                                                             then: str) -> None:
    action_event, started_event = _first_and_started(prompt, first, then)
    assert action_event.start_s == 0.0
    # It comes in as the action ends (not with it at 0, nor half a scene later) ...
    assert started_event.start_s == pytest.approx(action_event.end_s, abs=0.05)
    # ... and goes on to the end of the scene.
    assert started_event.end_s == SCENE_S


def test_a_started_source_runs_until_something_stops_it() -> None:
    p = plan("debris falls and a car alarm starts, then the alarm stops")
    debris, alarm, stop = in_order(p)
    assert alarm.start_s == pytest.approx(debris.end_s)
    assert alarm.end_s == pytest.approx(stop.start_s) and alarm.length_s > 5.0


GOES_ON_AND_STARTS = [
    ("a man speaks and a dog starts barking", "speaks", "dog"),
    ("a piano plays and a phone starts ringing", "piano", "phone"),
    ("an engine idles and a car alarm starts", "engine", "alarm"),
    ("a woman whispers and a clock starts ticking", "whispers", "clock"),
]


@pytest.mark.parametrize(("prompt", "first", "then"), GOES_ON_AND_STARTS)
def test_a_source_that_starts_during_an_open_ended_one_comes_in_a_beat_after_it(
        prompt: str, first: str, then: str) -> None:
    ongoing_event, started_event = _first_and_started(prompt, first, then)
    # Speech, an idling engine, a piano: sounds that go on by nature. What starts comes in a
    # beat after them, as after a bed, and both sound together ...
    assert ongoing_event.start_s == 0.0
    assert started_event.start_s == pytest.approx(BED_LEAD_S)
    assert started_event.start_s < ongoing_event.end_s - 1.0
    # ... the first keeps its own length, and the new one runs on to the end.
    assert ongoing_event.end_s > BED_LEAD_S + 3.0
    assert started_event.end_s == SCENE_S


@pytest.mark.parametrize("prompt", ["a man speaks and then a dog starts barking",
                                    "a man speaks for three seconds and a dog starts barking"])
def test_then_or_a_stated_length_still_puts_the_start_after_it(prompt: str) -> None:
    speech, dog = in_order(plan(prompt))
    assert "dog" in dog.description.lower()
    assert dog.start_s == pytest.approx(speech.end_s) and dog.start_s > BED_LEAD_S
    assert dog.end_s == SCENE_S


def test_hits_that_start_keep_going_and_a_count_still_counts() -> None:
    speech, dog = in_order(plan("a man speaks and a dog starts barking"))
    assert dog.end_s == SCENE_S and dog.start_s < speech.end_s
    assert len(plan("a dog starts barking twice").events) == 2


@pytest.mark.parametrize("prompt", ["rain and thunder", "rain starts and thunder rolls",
                                    "wind howls and leaves rustle"])
def test_plain_and_still_layers(prompt: str) -> None:
    p = plan(prompt)
    assert len(p.events) == 2 and all(e.start_s == 0.0 for e in p.events)


def test_the_same_subject_starting_something_keeps_its_subject() -> None:
    p = plan("a man walks in and starts talking")
    walk, talk = in_order(p)
    assert talk.description.lower().startswith("a man starts talking")
    assert talk.start_s >= walk.start_s


@pytest.mark.parametrize(("text", "onset"), [("an alarm starts ringing", True),
                                             ("rain begins to fall", True),
                                             ("a siren goes off", True), ("rain falls", False),
                                             ("the alarm stops", False)])
def test_onset_words(text: str, onset: bool) -> None:
    assert is_onset(text) is onset
