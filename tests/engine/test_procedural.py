"""The procedural sketch backend: contract (shape, rate, determinism, errors, cancel) and
recognisability checks that measure the audio (spectra, onsets, energy over time)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import CancelledError
from engine.generators import GenerationRequest, Generator, create_generator
from engine.generators.procedural import (
    FAMILIES,
    ProceduralGenerator,
    classify_family,
    describe_traits,
    render_sketch,
)
from engine.generators.procedural.text import keyword_family
from engine.generators.procedural import generator as generator_module
from engine.progress import CancelToken

# One description per family, each classified as that family (checked below).
FAMILY_EXAMPLES = {
    "thunder": "thunder rumbles",
    "rain": "heavy rain",
    "wind": "wind blowing through trees",
    "water": "a babbling brook",
    "fire": "a campfire burning",
    "engine": "a car passes by",
    "footsteps": "footsteps on gravel",
    "door": "a door slams",
    "impact": "a heavy thud",
    "gunshot": "a single gunshot",
    "explosion": "a huge explosion",
    "crowd": "people chatting in a cafe",
    "bird": "birds chirping",
    "dog": "a dog barks",
    "cat": "a cat meows",
    "animal": "a cow moos",
    "bell": "a church bell",
    "alarm": "an alarm clock",
    "typing": "typing on a keyboard",
    "pad": "dark ambient music pad",
    "neutral": "something indescribable",
    "siren": "a police siren wails",
    "horn": "a car horn honks",
    "scream": "a woman screams",
    "cough": "a man coughs",
    "whistle": "a referee blows a whistle",
    "note": "a piano note",
    "heartbeat": "a heartbeat",
    "keys": "keys jingle",
    "beep": "a microwave beeps",
    "click": "a clock ticking",
}
BEDS = {"rain", "wind", "water", "fire", "crowd", "pad"}


def render(description: str, length_s: float = 4.0, sample_rate: int = 16000, seed: int = 0):
    return render_sketch(description, length_s=length_s, sample_rate=sample_rate, seed=seed)


def mono(audio: np.ndarray) -> np.ndarray:
    return audio.astype(np.float64).mean(axis=0)


def spectrum(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    power = np.abs(np.fft.rfft(mono(audio))) ** 2
    return np.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate), power


def centroid_hz(audio: np.ndarray, sample_rate: int) -> float:
    freqs, power = spectrum(audio, sample_rate)
    return float(np.sum(freqs * power) / np.sum(power))


def frame_rms(audio: np.ndarray, sample_rate: int, hop_s: float = 0.01) -> np.ndarray:
    x = mono(audio)
    hop = int(hop_s * sample_rate)
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    return np.sqrt(np.mean(frames**2, axis=1))


# ---------------------------------------------------------------------------------------------
# contract


def test_examples_cover_every_family() -> None:
    assert set(FAMILY_EXAMPLES) == set(FAMILIES)
    for family, description in FAMILY_EXAMPLES.items():
        assert classify_family(description) == family, description


def test_is_the_registered_default_backend_and_a_generator() -> None:
    generator = create_generator("procedural")
    assert isinstance(generator, ProceduralGenerator)
    assert isinstance(generator, Generator)
    identity = dict(generator.identity())
    assert identity["backend"] == "procedural"
    assert isinstance(identity["version"], int)


@pytest.mark.parametrize("family", sorted(FAMILY_EXAMPLES))
def test_every_family_is_audible_finite_and_within_full_scale(family: str) -> None:
    description = FAMILY_EXAMPLES[family]
    for length_s in (0.25, 3.7):
        audio = render(description, length_s=length_s, sample_rate=16000, seed=1)
        assert audio.dtype == np.float32
        assert audio.shape == (2 if family in BEDS else 1, round(length_s * 16000))
        assert np.all(np.isfinite(audio))
        assert np.max(np.abs(audio)) <= 1.0
        rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
        assert rms > 3e-3, (family, length_s, rms)  # well above a 24-bit noise floor


@pytest.mark.parametrize("sample_rate", [16000, 44100, 48000])
@pytest.mark.parametrize("length_s", [0.25, 3.7, 10.0])
def test_exact_frame_count(sample_rate: int, length_s: float) -> None:
    generator = ProceduralGenerator()
    descriptions = ["heavy rain", "a door slams", "a car passes by"]  # stereo, one-shot, resampled
    requests = [GenerationRequest(d, length_s, 3, sample_rate) for d in descriptions]
    for result in generator.generate(requests):
        assert result.ok, result.error
        assert result.audio.shape[-1] == round(length_s * sample_rate)


def test_odd_lengths_round_to_the_nearest_frame() -> None:
    for length_s, rate in ((1.00001, 44100), (0.33333, 48000), (2.5e-4, 8000)):
        audio = render("a dog barks", length_s=length_s, sample_rate=rate)
        assert audio.shape[-1] == round(length_s * rate) >= 1


def test_same_request_gives_identical_samples() -> None:
    generator = ProceduralGenerator()
    request = GenerationRequest("birds chirping over a stream", 2.0, 7, 22050)
    first, second = generator.generate([request, request])
    again = ProceduralGenerator().generate([request])[0]
    assert np.array_equal(first.audio, second.audio)
    assert np.array_equal(first.audio, again.audio)


@pytest.mark.parametrize("description", ["heavy rain", "a dog barks", "typing on a keyboard"])
def test_different_seeds_and_descriptions_differ(description: str) -> None:
    base = render(description, seed=1)
    assert not np.allclose(base, render(description, seed=2))
    assert not np.allclose(base, render(description + " nearby", seed=1))


def test_beds_are_decorrelated_stereo_and_point_sources_mono() -> None:
    for family in sorted(BEDS):
        left, right = render(FAMILY_EXAMPLES[family], seed=4).astype(np.float64)
        correlation = np.corrcoef(left, right)[0, 1]
        assert 0.2 < correlation < 0.995, (family, correlation)
    for family in ("door", "engine", "bell", "dog"):
        assert render(FAMILY_EXAMPLES[family]).shape[0] == 1


# ---------------------------------------------------------------------------------------------
# classification


@pytest.mark.parametrize(
    "description, family",
    [
        ("Light rain on a tin roof", "rain"),
        ("rain falling on a car roof", "rain"),  # tie: the first-named sound wins
        ("A thunderstorm with heavy rain", "rain"),  # the lexicon: a storm is a rain bed
        ("Howling wind", "wind"),
        ("wind", "wind"),
        ("gentle breeze", "wind"),
        ("Ocean waves crashing on the shore", "water"),
        ("water dripping from a faucet", "water"),
        ("a roaring fireplace", "fire"),
        ("A motorbike revs its engine", "engine"),
        ("a truck idling", "engine"),
        ("A plane flies overhead", "engine"),
        ("A man walks down a corridor", "footsteps"),
        ("running on concrete", "footsteps"),
        ("A car door slams shut", "door"),  # door + slam outweighs car
        ("An old door creaks open", "door"),
        ("knocking on the door", "door"),  # the lexicon: knocking is a door sound
        ("glass shatters on the floor", "impact"),
        ("Gunfire in the distance", "gunshot"),
        ("firing a pistol", "gunshot"),  # "firing" is not the fire family
        ("fire a gun twice", "gunshot"),  # the phrase outweighs "fire"
        ("a car crash", "impact"),
        ("a tap dripping slowly", "water"),
        ("crackling campfire", "fire"),
        ("fireworks explode", "explosion"),
        ("Applause from an audience", "crowd"),
        ("people laughing at a party", "crowd"),
        ("a crow caws", "bird"),
        ("A dog barking in the rain", "dog"),
        ("a kitten purring", "cat"),
        ("wolves in the night", "dog"),  # the lexicon: wolves howl like dogs
        ("frogs croaking by a pond", "animal"),
        ("the doorbell rings", "bell"),
        ("wind chimes tinkle", "bell"),  # the phrase outweighs "wind"
        ("fire alarm going off", "alarm"),
        ("police car siren wailing", "siren"),
        ("a car horn honks twice", "horn"),
        ("a woman screams", "scream"),
        ("a baby crying", "scream"),
        ("a man coughs", "cough"),
        ("someone sneezes", "cough"),
        ("a referee blows a whistle", "whistle"),
        ("a piano plays a melody", "note"),
        ("a heartbeat pounding", "heartbeat"),
        ("keys jingle", "keys"),
        ("a microwave beeps", "beep"),
        ("a camera shutter", "click"),
        ("a phone ringing", "alarm"),
        ("clock ticking", "click"),
        ("mouse clicks", "click"),
        ("a tense synth drone", "pad"),
        ("a spaceship teleporter", "pad"),  # the lexicon: a spaceship is a pad
        ("a zorblax frobnicates", "neutral"),
        ("", "neutral"),
    ],
)
def test_classify_family(description: str, family: str) -> None:
    assert classify_family(description) == family


def test_fallback_keywords_match_whole_words_only() -> None:
    assert keyword_family("a brain scan") == "neutral"  # not "rain"
    assert keyword_family("a category") == "neutral"  # not "cat"
    assert keyword_family("carpets") == "neutral"  # not "car"
    assert keyword_family("the dogs barked") == "dog"  # inflections do match
    assert classify_family("a brain scan") == "neutral"  # the lexicon agrees
    assert classify_family("a category error") != "cat"


def test_loudness_words_set_intensity_and_distance() -> None:
    assert describe_traits("heavy rain").intensity > describe_traits("rain").intensity
    assert describe_traits("light rain").intensity < describe_traits("rain").intensity
    assert describe_traits("thunder in the distance").distant
    assert not describe_traits("thunder overhead").distant


# ---------------------------------------------------------------------------------------------
# recognisability: measured, each could fail if the recipe were wrong


def test_thunder_is_far_darker_than_rain() -> None:
    rate = 32000
    thunder = centroid_hz(render("thunder", length_s=4.0, sample_rate=rate), rate)
    rain = centroid_hz(render("rain", length_s=4.0, sample_rate=rate), rate)
    assert thunder < 400.0
    assert rain > 2000.0
    assert rain > 6 * thunder


def test_light_rain_is_sparse_drops_and_heavy_rain_a_louder_wash() -> None:
    from scipy.stats import kurtosis

    light = mono(render("light rain", sample_rate=32000))
    heavy = mono(render("heavy rain", sample_rate=32000))
    # Separate drops make a spiky (heavy-tailed) signal; a downpour is closer to Gaussian.
    assert kurtosis(light) > 1.3 * kurtosis(heavy)
    assert np.sqrt(np.mean(heavy**2)) > 1.5 * np.sqrt(np.mean(light**2))


def test_bell_has_a_strong_narrow_spectral_peak() -> None:
    rate = 16000
    freqs, power = spectrum(render("a church bell", length_s=4.0, sample_rate=rate), rate)
    peak = int(np.argmax(power))
    window = np.abs(freqs - freqs[peak]) <= 5.0
    assert power[peak] > 1e4 * np.median(power)
    assert power[window].sum() > 0.15 * power.sum()  # a fifth of the energy within +-5 Hz
    _, rain = spectrum(render("rain", length_s=4.0, sample_rate=rate), rate)
    rain_peak = int(np.argmax(rain))
    assert rain[max(rain_peak - 20, 0): rain_peak + 21].sum() < 0.02 * rain.sum()


def test_footsteps_repeat_near_walking_pace() -> None:
    rate = 16000
    envelope = frame_rms(render("footsteps in a hallway", length_s=8.0, sample_rate=rate), rate)
    envelope = envelope - envelope.mean()
    autocorr = np.correlate(envelope, envelope, mode="full")[len(envelope) - 1:]
    lags_s = np.arange(len(autocorr)) * 0.01
    search = (lags_s >= 0.3) & (lags_s <= 1.0)
    period_s = lags_s[search][np.argmax(autocorr[search])]
    assert abs(1.0 / period_s - 2.0) < 0.25  # ~2 steps per second
    running = frame_rms(render("running footsteps", length_s=8.0, sample_rate=rate), rate)
    running = running - running.mean()
    run_ac = np.correlate(running, running, mode="full")[len(running) - 1:]
    fast = (lags_s >= 0.2) & (lags_s <= 0.45)
    assert run_ac[fast].max() > 0.5 * run_ac[0]  # running repeats faster than 2.2 Hz


def test_door_slam_is_front_loaded_and_decays() -> None:
    rate = 16000
    energy = mono(render("a door slams", length_s=4.0, sample_rate=rate)) ** 2
    quarter = len(energy) // 4
    assert energy[:quarter].sum() > 0.99 * energy.sum()
    assert energy[: int(0.1 * rate)].sum() > 0.4 * energy.sum()
    assert energy[: int(0.5 * rate)].sum() > 0.95 * energy.sum()


def test_one_shot_decays_fit_short_events() -> None:
    rate = 16000
    audio = mono(render("a gunshot", length_s=0.3, sample_rate=rate))
    tail = audio[-int(0.03 * rate):]
    assert np.max(np.abs(tail)) < 0.1 * np.max(np.abs(audio))


def test_beds_fill_their_length() -> None:
    rate = 16000
    for description in ("heavy rain", "wind blowing through trees", "people chatting in a cafe",
                        "a babbling brook"):
        envelope = frame_rms(render(description, length_s=6.0, sample_rate=rate), rate, 0.5)
        inner = envelope[1:-1]
        assert inner.min() > 0.15 * inner.max(), description


def test_car_pass_by_peaks_mid_event_and_drops_in_pitch() -> None:
    rate = 16000
    audio = render("a car passes by", length_s=6.0, sample_rate=rate)
    envelope = frame_rms(audio, rate, 0.25)
    loudest_s = (np.argmax(envelope) + 0.5) * 0.25
    assert 2.0 < loudest_s < 4.0
    x = mono(audio)

    def firing_hz(segment: np.ndarray) -> float:  # strongest line in the engine's firing band
        padded = 8 * len(segment)
        power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), padded))
        freqs = np.fft.rfftfreq(padded, 1.0 / rate)
        band = (freqs > 15) & (freqs < 150)
        return float(freqs[band][np.argmax(power[band])])

    early, late = firing_hz(x[rate: 2 * rate]), firing_hz(x[4 * rate: 5 * rate])
    assert 25.0 < late < early < 45.0
    assert early > 1.06 * late  # Doppler: ~7% up while approaching, ~7% down receding


def test_birds_are_high_tonal_chirps() -> None:
    from scipy.signal import stft

    rate = 22050

    def peak_share(audio: np.ndarray) -> float:
        """Median share of a loud frame's power within +-3 bins of its peak: high for tones."""
        _, _, frames = stft(mono(audio), rate, nperseg=256)
        power = np.abs(frames.T) ** 2
        loud = power.sum(axis=1) > 0.1 * power.sum(axis=1).max()
        shares = []
        for row in power[loud]:
            peak = int(np.argmax(row))
            shares.append(row[max(peak - 3, 0): peak + 4].sum() / row.sum())
        return float(np.median(shares))

    birds = render("a songbird chirps", length_s=4.0, sample_rate=rate)
    assert 2000.0 < centroid_hz(birds, rate) < 7000.0
    assert peak_share(birds) > 0.6, peak_share(birds)
    assert peak_share(render("heavy rain", sample_rate=rate)) < 0.3


def test_barks_and_alarm_beeps_are_separate_bursts() -> None:
    rate = 16000

    def bursts(audio: np.ndarray) -> tuple[int, float]:
        loud = frame_rms(audio, rate) > 0.25 * frame_rms(audio, rate).max()
        starts = int(np.count_nonzero(loud[1:] & ~loud[:-1]) + loud[0])
        return starts, float(loud.mean())

    barks, barking_share = bursts(render("a dog barks", length_s=6.0, sample_rate=rate))
    assert 3 <= barks <= 20 and barking_share < 0.5
    beeps, beeping_share = bursts(render("an alarm clock", length_s=4.0, sample_rate=rate))
    assert 12 <= beeps <= 17  # four beeps per second-ish, silent gaps between
    assert 0.15 < beeping_share < 0.4


def test_pad_swells_in_slowly() -> None:
    rate = 16000
    envelope = frame_rms(render("warm music pad", length_s=8.0, sample_rate=rate), rate, 0.25)
    assert envelope[0] < 0.2 * envelope.max()
    assert envelope[len(envelope) // 2] > 0.6 * envelope.max()


# ---------------------------------------------------------------------------------------------
# errors, progress, cancel


@pytest.mark.parametrize(
    "length_s, sample_rate, field",
    [
        (0.0, 48000, "length_s"),
        (-1.0, 48000, "length_s"),
        (float("nan"), 48000, "length_s"),
        (float("inf"), 48000, "length_s"),
        (1e-6, 48000, "length_s"),  # rounds to zero frames
        (1.0, 4000, "sample_rate"),
        (1.0, 0, "sample_rate"),
    ],
)
def test_bad_requests_give_error_results_naming_the_field(length_s, sample_rate, field) -> None:
    good = GenerationRequest("rain", 0.5, 0, 16000)
    bad = GenerationRequest("rain", length_s, 0, sample_rate)
    results = ProceduralGenerator().generate([good, bad, good])
    assert results[0].ok and results[2].ok
    assert not results[1].ok and results[1].audio is None
    assert results[1].error.startswith(field + "=")


def test_progress_is_reported_per_request() -> None:
    calls: list[tuple[str, float]] = []
    requests = [GenerationRequest("rain", 0.2, i, 16000) for i in range(4)]
    ProceduralGenerator().generate(requests, progress=lambda s, f: calls.append((s, f)))
    assert {stage for stage, _ in calls} == {"generate"}
    fractions = [fraction for _, fraction in calls]
    assert fractions == sorted(fractions)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) >= 4


def test_cancel_between_requests_raises(monkeypatch) -> None:
    token = CancelToken()
    done: list[float] = []

    def progress(stage: str, fraction: float) -> None:
        done.append(fraction)
        if fraction >= 0.5:
            token.cancel("user pressed stop")

    requests = [GenerationRequest("wind", 0.2, i, 16000) for i in range(4)]
    generator = ProceduralGenerator()
    started: list[int] = []
    one = generator._one
    monkeypatch.setattr(generator, "_one",
                        lambda request: started.append(request.seed) or one(request))
    with pytest.raises(CancelledError, match="user pressed stop"):
        generator.generate(requests, progress=progress, cancel=token)
    assert done[-1] == 0.5
    # The fourth request was never started (the third may have been, or been dropped
    # from the queue before it began).
    assert {0, 1} <= set(started) <= {0, 1, 2}

    cancelled = CancelToken()
    cancelled.cancel()
    with pytest.raises(CancelledError):
        ProceduralGenerator().generate(requests, cancel=cancelled)


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_threads_give_the_same_results_in_the_same_order(monkeypatch, workers) -> None:
    requests = [GenerationRequest("heavy rain", 61.0, 1, 16000),  # a long, segmented bed
                GenerationRequest("a door slams", 0.7, 2, 48000),
                GenerationRequest("rain", -1.0, 3, 16000),  # an error result keeps its place
                GenerationRequest("a dog barks", 1.5, 4, 22050),
                GenerationRequest("wind", 2.0, 5, 44100)]
    monkeypatch.setattr(generator_module, "GENERATE_WORKERS", 1)
    alone = ProceduralGenerator().generate(requests)
    monkeypatch.setattr(generator_module, "GENERATE_WORKERS", workers)
    together = ProceduralGenerator().generate(requests)
    assert [r.error for r in together] == [r.error for r in alone]
    assert not together[2].ok
    for a, b in zip(alone, together):
        if a.ok:
            assert a.audio.dtype == b.audio.dtype and a.audio.tobytes() == b.audio.tobytes()


def test_past_the_results_budget_requests_render_one_at_a_time(monkeypatch) -> None:
    import threading

    requests = [GenerationRequest("rain", 0.3, i, 16000) for i in range(6)]
    generator = ProceduralGenerator()
    lock, active, seen = threading.Lock(), [0], []
    one = generator._one

    def tracked(request):
        with lock:
            seen.append(active[0])  # how many others were rendering when this one started
            active[0] += 1
        try:
            return one(request)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(generator, "_one", tracked)
    monkeypatch.setattr(generator_module, "PARALLEL_RESULTS_BYTES", 0)
    results = generator.generate(requests)
    assert all(result.ok for result in results)
    assert seen[2:] == [0, 0, 0, 0]  # once any result is held, nothing runs beside a request


@pytest.mark.parametrize("workers", [1, 2])
def test_freed_memory_goes_back_once_results_pass_the_budget_and_at_the_end(
        monkeypatch, workers) -> None:
    trims: list[int] = []
    monkeypatch.setattr(generator_module, "return_freed_memory", lambda: trims.append(1))
    monkeypatch.setattr(generator_module, "GENERATE_WORKERS", workers)
    long_events = [GenerationRequest("a door slams", 61.0, i, 16000) for i in range(3)]
    short = [GenerationRequest("a door slams", 0.5, 9, 16000)]

    ProceduralGenerator().generate(short)
    assert trims == []  # nothing long: nothing held back to hand over

    ProceduralGenerator().generate(long_events)
    assert len(trims) == 1  # under the budget: kept for the next event, handed back at the end

    trims.clear()
    monkeypatch.setattr(generator_module, "RETAIN_FREED_BELOW_BYTES", 0)
    ProceduralGenerator().generate(long_events + short)
    assert len(trims) == 3 + 1  # after each long event past the budget, and at the end

    trims.clear()
    results = ProceduralGenerator().generate(
        [GenerationRequest("a door slams", "long", 0, 16000)] + long_events[:1])
    assert not results[0].ok and results[1].ok and len(trims) == 2


@pytest.mark.parametrize(("channels", "work_rate", "sample_rate"),
                         [(1, 16000, 48000), (2, 24000, 48000), (1, 24000, 44100),
                          (2, 32000, 22050)])
def test_resampling_float32_gives_the_samples_float64_gave(channels, work_rate,
                                                           sample_rate) -> None:
    """The generator resamples its float64 recipe output as float32 (half the memory),
    relying on soxr's HQ setting filtering in single precision either way."""
    import soxr

    rng = np.random.default_rng(7)
    audio = np.cumsum(rng.standard_normal((channels, 40000)), axis=-1) * 1e-3
    audio[:, 1000:3000] *= 1e-6  # quiet stretches too
    wide = soxr.resample(audio.T, work_rate, sample_rate).T.astype(np.float32)
    narrow = soxr.resample(audio.astype(np.float32).T, work_rate, sample_rate).T
    assert narrow.dtype == np.float32
    assert np.ascontiguousarray(narrow).tobytes() == np.ascontiguousarray(wide).tobytes()


def test_in_place_primitives_give_the_samples_of_the_plain_formulas(monkeypatch) -> None:
    """The faster primitives keep the samples of the straightforward code they replaced."""
    import math

    from scipy import signal as scipy_signal

    from engine.generators.procedural import primitives as P

    rng = np.random.default_rng(3)
    audio = rng.standard_normal((2, 20000))
    for in_place_loop in (P._sosfilt_loop, None):  # scipy's loop, or its public sosfilt
        monkeypatch.setattr(P, "_sosfilt_loop", in_place_loop)
        for filtered, reference in (
            (lambda x, **k: P.bandpass(x, 300, 2000, 16000, **k),
             scipy_signal.sosfilt(scipy_signal.butter(2, [300, 2000], "bandpass", fs=16000,
                                                      output="sos"), audio, axis=-1)),
            (lambda x, **k: P.one_pole(x, 1.0, 0.99, **k),
             scipy_signal.lfilter([1.0], [1.0, -0.99], audio, axis=-1)),
        ):
            assert filtered(audio).tobytes() == reference.tobytes()
            mine = audio.copy()
            assert filtered(mine, in_place=True).tobytes() == reference.tobytes()
            narrow = audio.astype(np.float32)  # not float64: filtered into a new array
            kept = narrow.copy()
            filtered(narrow, in_place=True)
            assert narrow.tobytes() == kept.tobytes()

    # smooth_noise: np.interp of the coarse curve at every frame
    n_frames, rate_hz, sample_rate = 30011, 0.7, 16000
    smooth = P.smooth_noise(np.random.default_rng(5), n_frames, sample_rate, rate_hz, 2)
    points = np.random.default_rng(5).standard_normal((2, int(n_frames * rate_hz / sample_rate)
                                                       + 3))
    hop = max(1, min(256, int(sample_rate / (rate_hz * 16.0))))
    coarse_at = np.arange(0, n_frames + hop, hop)
    position = coarse_at * (rate_hz / sample_rate)
    index = position.astype(np.int64)
    weight = 0.5 - 0.5 * np.cos(math.pi * (position - index))
    coarse = points[:, index] * (1.0 - weight) + points[:, index + 1] * weight
    expected = np.stack([np.interp(np.arange(n_frames), coarse_at, row) for row in coarse])
    assert np.ascontiguousarray(smooth).tobytes() == expected.tobytes()

    # hit_env: the envelope over the whole time axis
    for onset_s, attack_s, decay_s in ((0.03, 0.005, 0.3), (-0.2, 0.1, 0.02), (1.7, 0.0, 0.01),
                                       (5.0, 0.1, 0.1)):
        time_s = np.arange(32000) / 16000 - onset_s
        rise = np.clip(time_s / max(attack_s, 1e-4), 0.0, 1.0)
        fall = np.exp(-np.clip(time_s - attack_s, 0.0, None) / max(decay_s, 1e-4))
        expected = np.where(time_s < 0.0, 0.0, rise * fall)
        got = P.hit_env(32000, 16000, onset_s=onset_s, attack_s=attack_s, decay_s=decay_s)
        assert got.tobytes() == expected.tobytes()

    # buzz: the closed form as written
    phase = np.cumsum(rng.random(5000) * 0.02)
    for ratio in (0.5, 0.86):
        c = np.cos(P.TWO_PI * phase)
        expected = (ratio * c - ratio * ratio) / (1.0 - 2.0 * ratio * c + ratio * ratio)
        assert P.buzz(phase, ratio).tobytes() == (expected * (1.0 - ratio) / ratio).tobytes()
