"""Small mechanical recipes (mono): clicks of every kind (switches, mice, shutters, locks,
clocks, scissors, sparks) and jingling metal (keys, coins, chains).

Built from short click kernels and tiny metallic pings placed at times that carry the
mechanism's rhythm. Call shape ``sketch_<family>(rng, n_frames, sample_rate, traits)``,
float64 (1, n_frames); the generator sets the level.
"""

from __future__ import annotations

import numpy as np

from engine.generators.procedural.primitives import (
    Rng,
    add_at,
    convolve_train,
    highpass,
    impulses_at,
    noise_burst,
    noise_grains,
    onset_for,
    ping,
    poisson_train,
    stack_kernels,
    white_noise,
)
from engine.generators.procedural.text import Traits


def _click_kernel(rng: Rng, sample_rate: int, *, body_hz: float, sharp: float = 1.0,
                  decay_s: float = 0.003) -> np.ndarray:
    return stack_kernels((noise_burst(rng, sample_rate, 0.0012, low_hz=2000), sharp),
                         (ping(sample_rate, body_hz, decay_s), 1.0))


def _place(n_frames: int, sample_rate: int, kernel: np.ndarray, times_s: list[float],
           gains: list[float] | None = None) -> np.ndarray:
    gains = gains if gains is not None else [1.0] * len(times_s)
    return convolve_train(impulses_at(n_frames, sample_rate, times_s, gains), kernel)


def _ticks(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Clock or metronome: alternating tick and tock, one per second (two for a metronome)."""
    total_s = n_frames / sample_rate
    period_s = 0.5 if traits.has("metronome") else 1.0
    times = np.arange(onset_for(total_s), total_s, period_s)
    if traits.single_hit:
        times = times[:1]
    click = noise_burst(rng, sample_rate, 0.0015, low_hz=2000)
    tick = stack_kernels((click, 0.6), (ping(sample_rate, 3500, 0.003), 1.0))
    tock = stack_kernels((click, 0.6), (ping(sample_rate, 2600, 0.004), 1.0))
    return (_place(n_frames, sample_rate, tick, list(times[0::2]))
            + 0.8 * _place(n_frames, sample_rate, tock, list(times[1::2])))


def sketch_click(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    one_hit = traits.single_hit
    if traits.has("clock", "tick", "metronome", "stopwatch", "timer"):
        return _ticks(rng, n_frames, sample_rate, traits)
    if traits.has("camera", "shutter", "photo", "snapshot", "picture"):
        # Mirror up, shutter, mirror down: two clicks 60-120 ms apart, a bright body.
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(1500, 2200), decay_s=0.006)
        gap_s = rng.uniform(0.06, 0.12)
        starts = [onset_s] if one_hit else list(np.arange(onset_s, total_s - 0.2,
                                                         rng.uniform(0.6, 1.2)))
        times = [t for start in starts for t in (start, start + gap_s)]
        return _place(n_frames, sample_rate, kernel, times, [1.0, 0.8] * len(starts))
    if traits.has("lock", "key turn", "turns the key", "deadbolt", "latch", "unlock"):
        small = _click_kernel(rng, sample_rate, body_hz=rng.uniform(2500, 3500), decay_s=0.002)
        bolt = stack_kernels((noise_burst(rng, sample_rate, 0.006, low_hz=800), 0.7),
                             (ping(sample_rate, rng.uniform(600, 900), 0.02), 1.0))
        out = _place(n_frames, sample_rate, small, [onset_s, onset_s + 0.07, onset_s + 0.13],
                     [0.4, 0.5, 0.45])
        return out + _place(n_frames, sample_rate, bolt, [onset_s + 0.25])
    if traits.has("cock", "reload", "racks", "rack", "safety"):
        clack = stack_kernels((noise_burst(rng, sample_rate, 0.004, low_hz=1200), 1.0),
                              (ping(sample_rate, rng.uniform(2000, 3200), 0.012), 0.7),
                              (ping(sample_rate, rng.uniform(400, 600), 0.02), 0.5))
        return _place(n_frames, sample_rate, clack, [onset_s, onset_s + rng.uniform(0.15, 0.25)])
    if traits.has("scissors", "snip", "shears", "cuts paper"):
        snip_count = 1 if one_hit else max(int((total_s - onset_s) / 0.35), 1)
        out = np.zeros((1, n_frames))
        for index in range(snip_count):
            start = int((onset_s + 0.35 * index) * sample_rate)
            scrape = highpass(white_noise(rng, int(0.06 * sample_rate)), 3000, sample_rate)[0]
            scrape *= np.linspace(0.3, 1.0, scrape.size)
            add_at(out[0], 0.4 * scrape, start)
            add_at(out[0], _click_kernel(rng, sample_rate, body_hz=4000), start + scrape.size)
        return out
    if traits.has("bottle", "cork", "can opens", "opens a can", "soda", "fizz", "cap"):
        pop = stack_kernels((ping(sample_rate, rng.uniform(350, 500), 0.015, glide=0.3), 1.0),
                            (noise_burst(rng, sample_rate, 0.006, low_hz=500), 0.8))
        out = _place(n_frames, sample_rate, pop, [onset_s])
        if traits.has("can", "soda", "fizz"):
            fizz_train = poisson_train(rng, n_frames, sample_rate, 400.0, spread=0.8)
            fizz_train[:, : int((onset_s + 0.02) * sample_rate)] = 0.0
            fizz = highpass(noise_grains(rng, fizz_train, 0.0008, sample_rate), 3000, sample_rate)
            fade = np.exp(-np.arange(n_frames) / (0.8 * sample_rate))
            out = out + 0.3 * fizz / (np.max(np.abs(fizz)) + 1e-12) * fade
        return out
    if traits.has("spark", "electric", "short circuit", "taser", "fuse"):
        rate_hz = 50.0 if traits.has("taser") else 0.0
        train = poisson_train(rng, n_frames, sample_rate, 250.0, spread=1.2)
        if rate_hz:
            train[:, :: int(sample_rate / rate_hz)] += 2.0
        length_s = min(total_s - onset_s, 0.6 if not traits.has("taser") else total_s)
        train[:, : int(onset_s * sample_rate)] = 0.0
        train[:, int((onset_s + length_s) * sample_rate):] = 0.0
        return highpass(noise_grains(rng, train, 0.0015, sample_rate), 1500, sample_rate)
    if traits.has("dice", "die roll"):
        # Dice tumbling on a table: wooden clacks coming faster and softer as they settle.
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(900, 1400), decay_s=0.008)
        times, gains, gap_s, time_s, gain = [], [], 0.12, onset_s, 1.0
        while time_s < total_s - 0.03 and gain > 0.08:
            times.append(time_s)
            gains.append(gain)
            time_s += gap_s * rng.uniform(0.7, 1.3)
            gap_s *= 0.85
            gain *= 0.85
        return _place(n_frames, sample_rate, kernel, times, gains)
    if traits.has("gas stove", "igniter", "ignition click", "burner"):
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(2500, 3500))
        return _place(n_frames, sample_rate, kernel, [onset_s + 0.25 * i for i in range(4)])
    if traits.has("safe", "combination", "dial"):
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(3000, 4000), sharp=0.5)
        times = list(np.arange(onset_s, total_s - 0.05, 0.045))
        return _place(n_frames, sample_rate, kernel, times, list(rng.uniform(0.3, 1.0, len(times))))
    if traits.has("hard drive", "disk", "tape recorder", "cassette"):
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(600, 1000), decay_s=0.01)
        times = list(onset_s + np.cumsum(rng.exponential(0.12, 40)))
        return _place(n_frames, sample_rate, kernel, [t for t in times if t < total_s])
    if traits.has("bicycle", "bike", "pedal", "freewheel", "ratchet", "gear", "winding",
                  "wind up", "crank"):
        period_s = 1.0 / rng.uniform(14, 22)  # a freewheel's pawls
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(3000, 4500))
        times = list(np.arange(onset_s, total_s, period_s))
        return _place(n_frames, sample_rate, kernel, times, list(rng.uniform(0.6, 1.0, len(times))))
    if traits.has("hang up", "hangs up", "receiver"):
        clunk = stack_kernels((noise_burst(rng, sample_rate, 0.02, high_hz=800), 1.0),
                              (ping(sample_rate, rng.uniform(150, 250), 0.03), 0.8),
                              (noise_burst(rng, sample_rate, 0.002, low_hz=2000), 0.5))
        return _place(n_frames, sample_rate, clunk, [onset_s])
    if traits.has("mouse"):
        kernel = _click_kernel(rng, sample_rate, body_hz=rng.uniform(2500, 3500))
        press_gap_s = rng.uniform(0.06, 0.09)  # a mouse button clicks down and again up
        starts = [onset_s] if one_hit else [onset_s + 0.6 * i for i in range(
            1 + int(rng.integers(0, 3)))]
        times = [t for start in starts for t in (start, start + press_gap_s)]
        return _place(n_frames, sample_rate, kernel, times, [1.0, 0.6] * len(starts))
    if traits.has("ui", "menu", "interface", "select", "confirm", "cancel", "back button",
                  "hover"):
        blip = stack_kernels((noise_burst(rng, sample_rate, 0.0008, low_hz=3000), 0.6),
                             (ping(sample_rate, rng.uniform(1400, 2000), 0.012), 1.0))
        return _place(n_frames, sample_rate, blip, [onset_s])
    # Switches, buttons, generic clicks: a sharp click with a small plastic body.
    kernel = stack_kernels((noise_burst(rng, sample_rate, 0.0012, low_hz=2000), 1.0),
                           (ping(sample_rate, rng.uniform(1200, 2200), 0.004), 0.7),
                           (ping(sample_rate, rng.uniform(250, 400), 0.008), 0.3))
    if one_hit or traits.has("switch", "toggle", "button", "clicks off", "clicks on", "snaps"):
        return _place(n_frames, sample_rate, kernel, [onset_s])
    times: list[float] = []
    time_s = onset_s
    while time_s < total_s - 0.02:
        times.append(time_s)
        time_s += rng.exponential(0.6) + 0.15
    return _place(n_frames, sample_rate, kernel, times)


def _shake(rng: Rng, sample_rate: int, length_s: float, *, low_hz: float, high_hz: float,
           pieces: int, ring_s: float) -> np.ndarray:
    """One shake of loose metal: many tiny pings (two inharmonic partials each) in a burst."""
    out = np.zeros(int((length_s + 6 * ring_s) * sample_rate) + 1)
    for _ in range(pieces):
        freq_hz = float(np.exp(rng.uniform(np.log(low_hz), np.log(high_hz))))
        decay_s = ring_s * rng.uniform(0.5, 1.5)
        piece = ping(sample_rate, freq_hz, decay_s)
        if 2.76 * freq_hz < 0.45 * sample_rate:  # a second, inharmonic mode where it fits
            piece = stack_kernels((piece, 1.0), (ping(sample_rate, 2.76 * freq_hz, 0.5 * decay_s),
                                                 0.5))
        add_at(out, piece * rng.uniform(0.3, 1.0), int(rng.beta(2, 3) * length_s * sample_rate))
    return out


def sketch_keys(rng: Rng, n_frames: int, sample_rate: int, traits: Traits) -> np.ndarray:
    """Keys jingling (shakes of bright little pings), coins (fewer, longer rings), or chains
    (lower, denser clanks that keep rattling)."""
    total_s = n_frames / sample_rate
    onset_s = onset_for(total_s)
    if traits.has("chain", "shackle", "armor", "armour", "chainmail"):
        low_hz, high_hz, pieces, ring_s, shake_s = 900.0, 4000.0, 30, 0.015, 0.3
    elif traits.has("coin", "change", "penny", "pennies"):
        low_hz, high_hz, pieces, ring_s, shake_s = 4000.0, 9000.0, 8, 0.12, 0.25
    else:
        low_hz, high_hz, pieces, ring_s, shake_s = 2500.0, 9000.0, 28, 0.03, 0.22
    high_hz = min(high_hz, 0.4 * sample_rate)
    low_hz = min(low_hz, 0.6 * high_hz)
    shakes = 1 if traits.single_hit else max(min(int((total_s - onset_s) / 0.35), 4), 1)
    if traits.has("rattl", "chain"):
        shakes = max(int((total_s - onset_s) / 0.3), 1)
    out = np.zeros(n_frames)
    time_s = onset_s
    for _ in range(shakes):
        shake = _shake(rng, sample_rate, shake_s, low_hz=low_hz, high_hz=high_hz, pieces=pieces,
                       ring_s=ring_s)
        add_at(out, shake * rng.uniform(0.7, 1.0), int(time_s * sample_rate))
        time_s += rng.uniform(0.28, 0.4)
    return out[None, :]
