"""The procedural families follow the sound lexicon, and each new family is recognisable as what
it describes: measured on the audio (pitch tracks, harmonics, bursts, rhythm, spectral
balance), each check one that a wrong recipe would fail."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import stft

from engine.generators.procedural import classify_family, render_sketch
from engine.generators.procedural.recipes import RECIPES, recipe_for
from engine.generators.procedural.recipes.beds import sketch_neutral
from engine.generators.procedural.text import read_description
from engine.lexicon import FAMILIES as LEXICON_FAMILIES
from engine.lexicon import load_lexicon

RATE = 32000


def render(description: str, length_s: float, *, seed: int = 0, rate: int = RATE) -> np.ndarray:
    return render_sketch(description, length_s=length_s, sample_rate=rate, seed=seed)[0].astype(
        np.float64)


def envelope(audio: np.ndarray, hop_s: float = 0.005) -> np.ndarray:
    hop = int(hop_s * RATE)
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    return np.sqrt(np.mean(frames**2, axis=1))


def bursts(audio: np.ndarray, *, merge_gap_s: float = 0.15, threshold: float = 0.1) -> int:
    """Separate sounding stretches (frames above threshold x max), gaps shorter than
    ``merge_gap_s`` bridged: one hit with inner detail (a shutter's two clicks) counts once."""
    loud = envelope(audio) > threshold * envelope(audio).max()
    count, quiet_frames, sounding = 0, 10**9, False
    for frame_loud in loud:
        if frame_loud:
            if not sounding and quiet_frames * 0.005 >= merge_gap_s:
                count += 1
            sounding, quiet_frames = True, 0
        else:
            sounding = False
            quiet_frames += 1
    return count


def onsets(audio: np.ndarray) -> int:
    """Attacks: the level at least doubles within 50 ms and is loud (>10% of the maximum);
    counts struck sounds even when each rings into the next."""
    level = envelope(audio)
    loud = level > 0.1 * level.max()
    rising = np.zeros_like(loud)
    rising[10:] = level[10:] > 2.0 * level[:-10]
    attacks = np.flatnonzero(loud & rising)
    return int(np.count_nonzero(np.diff(attacks) > 20) + (attacks.size > 0))


def peak_track_hz(audio: np.ndarray, *, low_hz: float = 100.0, high_hz: float = 8000.0
                  ) -> np.ndarray:
    """Strongest frequency of each loud STFT frame within [low_hz, high_hz]."""
    freqs, _, frames = stft(audio, RATE, nperseg=2048, noverlap=1536)
    power = np.abs(frames) ** 2
    band = (freqs >= low_hz) & (freqs <= high_hz)
    totals = power.sum(axis=0)
    loud = totals > 0.05 * totals.max()
    return freqs[band][np.argmax(power[band][:, loud], axis=0)]


def spectrum(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.fft.rfftfreq(len(audio), 1.0 / RATE), np.abs(np.fft.rfft(audio)) ** 2


def centroid_hz(audio: np.ndarray) -> float:
    freqs, power = spectrum(audio)
    return float(np.sum(freqs * power) / np.sum(power))


def flatness(audio: np.ndarray) -> float:
    """Spectral flatness over 100 Hz-8 kHz: near 0 for tones, higher for noise."""
    freqs, power = spectrum(audio)
    band = power[(freqs > 100) & (freqs < 8000)] + 1e-20
    return float(np.exp(np.mean(np.log(band))) / np.mean(band))


# ---------------------------------------------------------------------------------------------
# the lexicon decides the family


def test_every_lexicon_family_has_a_recipe() -> None:
    used = {entry.family for entry in load_lexicon().entries}
    assert used <= set(RECIPES), sorted(used - set(RECIPES))
    assert set(LEXICON_FAMILIES) <= set(RECIPES), sorted(set(LEXICON_FAMILIES) - set(RECIPES))


def test_an_unknown_family_renders_the_neutral_swell() -> None:
    assert recipe_for("zeppelin") is sketch_neutral
    assert recipe_for("siren") is RECIPES["siren"]


def test_family_comes_from_the_lexicon_entry_that_matches() -> None:
    lexicon = load_lexicon()
    for description in ("knocking on the door", "a clock ticking", "a woman screams",
                        "keys jingle", "a referee blows a whistle", "a piano note"):
        entry = lexicon.match(description)
        assert entry is not None, description
        assert classify_family(description) == entry.family
    # Only what the lexicon does not know falls back to the keyword table.
    assert lexicon.match("a zorblax frobnicates") is None
    assert classify_family("a zorblax frobnicates") == "neutral"


def test_single_hit_comes_from_the_lexicon_kind_and_the_event_length() -> None:
    bark = load_lexicon().match("a dog barks")
    assert bark is not None and bark.kind == "hits"
    assert read_description("a dog barks", length_s=bark.single_hit_s).traits.single_hit
    assert not read_description("a dog barks", length_s=4.0).traits.single_hit
    assert read_description("a dog barks once", length_s=4.0).traits.single_hit
    assert not read_description("heavy rain", length_s=0.5).traits.single_hit


# ---------------------------------------------------------------------------------------------
# a repeated-hit event renders exactly its one hit


def _hit_entries() -> list[str]:
    return [entry.name for entry in load_lexicon().entries if entry.kind == "hits"
            and entry.family not in ("water", "bird", "neutral", "pad")]


@pytest.mark.parametrize("name", _hit_entries())
def test_one_event_of_a_counted_run_is_exactly_one_hit(name: str) -> None:
    entry = load_lexicon().get(name)
    audio = render(entry.name, entry.single_hit_s, seed=3)
    assert bursts(audio) == 1, (entry.name, entry.family, entry.single_hit_s)


@pytest.mark.parametrize("name", _hit_entries())
def test_a_hit_said_once_is_one_hit_however_long_the_event(name: str) -> None:
    assert bursts(render(name + " once", 3.0, seed=3)) == 1, name


@pytest.mark.parametrize("description, length_s", [
    ("a dog barks", 0.5), ("water dripping", 0.3), ("a bird calls", 0.6), ("a cough", 0.5),
    ("a microwave beeps", 0.25), ("someone knocks on the door", 0.25),
    ("the church bell tolls", 2.5),
])
def test_counted_hits_render_one_and_runs_render_several(description: str,
                                                         length_s: float) -> None:
    assert bursts(render(description, length_s, seed=5)) == 1, description
    run = render(description, 12.0 if "bell" in description else max(6 * length_s, 4.0), seed=5)
    assert onsets(run) >= 2, description


# ---------------------------------------------------------------------------------------------
# recognisable families


def test_siren_wail_sweeps_up_and_down_through_the_classic_band() -> None:
    track = peak_track_hz(render("a police siren wails", 9.0), low_hz=400, high_hz=2000)
    assert 550 < track.min() < 800 and 1150 < track.max() < 1450
    steps = np.diff(track)
    rising = steps[steps != 0] > 0
    assert 0.25 < rising.mean() < 0.75  # goes both ways, repeatedly
    turns = np.count_nonzero(np.diff(np.sign(np.diff(track[::4]))) != 0)
    assert turns >= 2


def test_two_tone_siren_alternates_between_two_pitches() -> None:
    track = peak_track_hz(render("an ambulance siren", 6.0), low_hz=400, high_hz=1500)
    low = np.abs(track - 720) < 40
    high = np.abs(track - 960) < 40
    assert (low | high).mean() > 0.8 and low.mean() > 0.3 and high.mean() > 0.3


def test_car_horn_is_one_short_reedy_honk_of_two_tones() -> None:
    audio = render("a car horn honks", 1.0)
    assert bursts(audio) == 1
    sounding_s = np.count_nonzero(envelope(audio) > 0.1 * envelope(audio).max()) * 0.005
    assert 0.1 < sounding_s < 0.8
    freqs, power = spectrum(audio)
    low = (freqs > 300) & (freqs < 600)
    peaks = freqs[low][np.argsort(power[low])[-40:]]
    assert peaks.min() < 440 < peaks.max()  # two fundamentals a third apart (400-430, 500-540)
    harmonics = power[(freqs > 1000) & (freqs < 4000)].sum() / power.sum()
    assert harmonics > 0.05  # reedy, not a sine


def test_scream_is_high_pitched_harmonic_and_long() -> None:
    audio = render("a woman screams", 2.0)
    middle = audio[int(0.5 * RATE): int(1.0 * RATE)]
    correlation = np.correlate(middle, middle, "full")[len(middle) - 1:]
    lags = np.arange(len(correlation))
    search = (lags > RATE / 1600) & (lags < RATE / 600)
    lag = lags[search][np.argmax(correlation[search])]
    assert 600 < RATE / lag < 1600  # a scream's pitch, far above speech
    assert correlation[lag] > 0.4 * correlation[0]  # voiced, not noise
    sounding_s = np.count_nonzero(envelope(audio) > 0.1 * envelope(audio).max()) * 0.005
    assert sounding_s > 1.0
    assert flatness(audio) < flatness(render("a man coughs", 2.0))


def test_cough_is_short_noisy_bursts() -> None:
    single = render("a cough", 0.5)
    assert bursts(single) == 1
    fit = render("a man coughing", 3.0, seed=2)
    assert bursts(fit, merge_gap_s=0.05) >= 2
    assert 400 < centroid_hz(fit) < 3000
    assert flatness(fit) > 5 * flatness(render("a woman screams", 2.0))


def test_referee_whistle_is_a_trilled_tone_near_three_kilohertz() -> None:
    audio = render("a referee blows a whistle", 1.5)
    track = peak_track_hz(audio, low_hz=1000, high_hz=6000)
    assert 2700 < np.median(track) < 3700
    loud = audio[int(0.1 * RATE): int(0.7 * RATE)]
    level = envelope(loud, 0.001)  # the pea's trill: loudness wobbles 25-35 times a second
    wobble = np.abs(np.fft.rfft(level - level.mean()))
    rates_hz = np.fft.rfftfreq(len(level), 0.001)
    assert 20 < rates_hz[np.argmax(wobble * (rates_hz > 5))] < 40


def test_piano_note_has_the_named_pitch_harmonics_and_decays() -> None:
    audio = render("a piano plays middle C", 3.0)
    freqs, power = spectrum(audio)
    near = (freqs > 200) & (freqs < 330)
    assert abs(freqs[near][np.argmax(power[near])] - 261.6) < 3.0
    for harmonic in (2, 3):
        window = np.abs(freqs - 261.6 * harmonic) < 8
        between = np.abs(freqs - 261.6 * (harmonic - 0.5)) < 8
        assert power[window].max() > 100 * power[between].max()
    first, last = audio[: RATE // 2], audio[-RATE // 2:]
    assert np.sqrt(np.mean(last**2)) < 0.3 * np.sqrt(np.mean(first**2))


def test_melody_has_several_pitches_and_a_single_note_one() -> None:
    melody = peak_track_hz(render("a piano plays a melody", 4.0, seed=1), high_hz=1200)
    assert len(np.unique(np.round(melody / 10))) >= 3
    for description in ("a piano note", "a piano plays a note"):
        single = peak_track_hz(render(description, 2.0, seed=1), high_hz=1200)
        assert np.ptp(single) < 20.0, description  # within one analysis bin


def test_heartbeat_is_low_lub_dub_at_a_resting_pulse() -> None:
    audio = render("a heartbeat", 8.0)
    assert centroid_hz(audio) < 250.0
    level = envelope(audio, 0.01)
    level = level - level.mean()
    correlation = np.correlate(level, level, "full")[len(level) - 1:]
    lags_s = np.arange(len(correlation)) * 0.01
    search = (lags_s > 0.6) & (lags_s < 1.2)
    period_s = lags_s[search][np.argmax(correlation[search])]
    assert 0.75 < period_s < 0.95  # 63-80 beats a minute
    beats = int(8.0 / period_s)
    assert 1.6 * beats <= bursts(audio, merge_gap_s=0.08) <= 2.4 * beats  # two sounds a beat
    fast = render("heart pounds fast", 8.0)
    assert bursts(fast, merge_gap_s=0.08) > bursts(audio, merge_gap_s=0.08)


def test_keys_jingle_bright_metal_in_short_shakes() -> None:
    audio = render("keys jingle", 1.5, rate=48000)
    freqs, power = np.fft.rfftfreq(len(audio), 1 / 48000), np.abs(np.fft.rfft(audio)) ** 2
    assert np.sum(freqs * power) / np.sum(power) > 3000.0
    assert np.max(np.abs(audio)) > 4 * np.sqrt(np.mean(audio**2))  # jangly, not a steady hiss
    chains = render("chains rattle", 1.5, rate=48000)
    chain_power = np.abs(np.fft.rfft(chains)) ** 2
    assert np.sum(freqs * chain_power) / np.sum(chain_power) < np.sum(freqs * power) / np.sum(
        power)


def test_beep_is_one_pure_pip_and_beeping_repeats_each_second() -> None:
    single = render("a microwave beeps", 0.25)
    assert bursts(single) == 1
    assert flatness(single) < 0.01
    track = peak_track_hz(single, low_hz=500, high_hz=3000)
    assert np.ptp(track) < 50.0  # one steady pitch
    monitor = render("heart monitor beeping", 4.5)
    assert 4 <= bursts(monitor) <= 5


def test_clicks_are_brief_and_clocks_tick_once_a_second() -> None:
    click = render("a light switch clicks", 0.3)
    energy = click**2
    peak = int(np.argmax(energy))
    window = energy[max(peak - int(0.01 * RATE), 0): peak + int(0.03 * RATE)]
    assert window.sum() > 0.95 * energy.sum()  # all within ~40 ms
    clock = render("a clock ticking", 4.0)
    assert bursts(clock, merge_gap_s=0.2) == 4


def test_new_families_are_deterministic_and_seed_dependent() -> None:
    for description in ("a police siren wails", "a woman screams", "keys jingle",
                        "a piano plays a melody", "a man coughs"):
        first = render(description, 1.0, seed=7)
        assert np.array_equal(first, render(description, 1.0, seed=7))
        assert not np.array_equal(first, render(description, 1.0, seed=8))


def test_small_struck_things_are_bright_and_short_and_coins_bounce() -> None:
    clink = render("glasses clink", 1.5)
    assert centroid_hz(clink) > 2000.0
    head, tail = clink[: RATE // 4], clink[-RATE // 2:]
    assert np.sqrt(np.mean(tail**2)) < 0.05 * np.sqrt(np.mean(head**2))
    coin = render("a coin drops", 2.0)
    level = envelope(coin)
    attacks = np.flatnonzero((level[10:] > 2.0 * level[:-10]) & (level[10:] > 0.05 * level.max()))
    starts = attacks[np.concatenate([[True], np.diff(attacks) > 8])] * 0.005
    assert len(starts) >= 3
    gaps = np.diff(starts)
    assert np.all(np.diff(gaps) < 0.02)  # each bounce comes sooner
    assert onsets(render("dishes clatter", 3.0)) >= 3


def test_ringing_ears_is_one_steady_high_tone() -> None:
    track = peak_track_hz(render("ringing ears", 2.0), low_hz=1000, high_hz=12000)
    assert np.median(track) > 4000.0 and np.ptp(track) < 50.0


def test_fire_alarm_sounds_the_three_beep_evacuation_pattern() -> None:
    audio = render("a smoke alarm goes off", 8.0)
    loud = envelope(audio, 0.05) > 0.3 * envelope(audio, 0.05).max()
    starts_s = (np.flatnonzero(loud[1:] & ~loud[:-1]) + 1) * 0.05
    if loud[0]:
        starts_s = np.concatenate([[0.0], starts_s])
    assert len(starts_s) >= 4
    gaps = np.round(np.diff(starts_s), 1)
    assert set(gaps[:3]) <= {1.0, 2.0}  # beeps a second apart, a longer rest after three
    assert 2.0 in gaps
    assert 2800 < np.median(peak_track_hz(audio, low_hz=1000, high_hz=5000)) < 3500
