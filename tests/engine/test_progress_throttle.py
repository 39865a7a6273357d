"""ProgressThrottle: what reaches a client's progress bar (and crosses the engine's pipe)."""

from __future__ import annotations

import math

from engine.progress import ProgressThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_a_fast_stage_reports_its_start_and_end_only() -> None:
    # A cached stem or a near-free backend runs a whole stage within milliseconds.
    clock = FakeClock()
    throttle = ProgressThrottle(clock=clock)
    admitted = []
    for index in range(101):
        clock.now_s += 0.0001
        value = throttle.admit("render", index / 100)
        if value is not None:
            admitted.append(value)
    assert admitted == [0.0, 1.0]


def test_a_slow_stage_reports_each_step_at_most_ten_times_a_second() -> None:
    clock = FakeClock()
    throttle = ProgressThrottle(step=0.05, min_interval_s=0.1, clock=clock)
    admitted = []
    for index in range(1001):  # 0.1 % every 10 ms: a 10 s stage
        value = throttle.admit("render", index / 1000)
        if value is not None:
            admitted.append((round(clock.now_s - 100.0, 3), value))
        clock.now_s += 0.01
    fractions = [value for _, value in admitted]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    steps = [b - a for a, b in zip(fractions, fractions[1:-1])]
    assert all(step >= 0.05 - 1e-12 for step in steps)  # every 5 % ...
    assert len(admitted) == 21  # ... which at this pace is every 0.5 s: the time floor never bites
    times = [at for at, _ in admitted]
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(times, times[1:-1]))


def test_the_time_floor_holds_back_big_steps_that_come_too_fast() -> None:
    clock = FakeClock()
    throttle = ProgressThrottle(step=0.05, min_interval_s=0.1, clock=clock)
    assert throttle.admit("generate", 0.0) == 0.0
    clock.now_s += 0.02
    assert throttle.admit("generate", 0.5) is None  # 20 ms after the last report
    clock.now_s += 0.09
    assert throttle.admit("generate", 0.6) == 0.6  # 110 ms after it
    clock.now_s += 0.001
    assert throttle.admit("generate", 1.0) == 1.0  # a stage's end is never held back
    assert throttle.admit("generate", 1.0) is None  # ... and reported once


def test_a_new_stage_always_reports_and_bad_fractions_never_do() -> None:
    clock = FakeClock()
    throttle = ProgressThrottle(clock=clock)
    assert throttle.admit("plan", 0.3) == 0.3
    assert throttle.admit("generate", 0.0) == 0.0  # same instant, new stage
    assert throttle.admit("render", 7.0) == 1.0  # clamped
    assert throttle.admit("mix", math.nan) is None
    assert throttle.admit("mix", -2.0) == 0.0
