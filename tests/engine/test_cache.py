"""RenderCache: key invariance, round trips, atomic writes, LRU eviction, pins and protection."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.cache import RenderCache, cache_key
from engine.errors import InvalidInputError
from engine.generators import GenerationRequest
from engine.plan import Event


class FakeGenerator:
    def __init__(self, name: str = "fake", **identity: object) -> None:
        self.name = name
        self._identity = {"model": "tiny", "steps": 10, **identity}

    def identity(self) -> dict[str, object]:
        return dict(self._identity)

    def generate(self, requests, *, progress=None, cancel=None):  # pragma: no cover - unused
        raise AssertionError("the cache never calls the generator")


def _request(event: Event, sample_rate: int = 48000) -> GenerationRequest:
    return GenerationRequest(
        description=event.description,
        length_s=event.length_s,
        seed=event.seed,
        sample_rate=sample_rate,
    )


BASE = Event(id="e1", description="rain on a tin roof", start_s=1.0, end_s=4.0, seed=7)


def _audio(frames: int = 1000, channels: int = 1, value: float = 0.25) -> np.ndarray:
    rng = np.random.default_rng(int(value * 1000))
    return (rng.standard_normal((channels, frames)) * value).astype(np.float32)


def test_key_ignores_position_and_loudness() -> None:
    generator = FakeGenerator()
    key = cache_key(generator, _request(BASE))
    moved = BASE.model_copy(update={"start_s": 5.0, "end_s": 8.0, "id": "other"})
    louder = BASE.model_copy(update={"target_lufs": -12.0})
    padded = BASE.model_copy(update={"description": "  rain on a tin roof \n"})
    # Float noise from a JSON round trip of the times must not change the key either.
    noisy = BASE.model_copy(update={"start_s": 0.1 + 0.2, "end_s": 0.1 + 0.2 + 3.0})
    for variant in (moved, louder, padded, noisy):
        assert cache_key(generator, _request(variant)) == key
    assert len(key) == 64 and int(key, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"description": "rain on a car roof"},
        {"seed": 8},
        {"end_s": 4.5},
    ],
)
def test_key_changes_with_content(change: dict) -> None:
    generator = FakeGenerator()
    variant = BASE.model_copy(update=change)
    assert cache_key(generator, _request(variant)) != cache_key(generator, _request(BASE))


def test_key_changes_with_rate_backend_and_identity() -> None:
    base_key = cache_key(FakeGenerator(), _request(BASE))
    assert cache_key(FakeGenerator(), _request(BASE, 44100)) != base_key
    assert cache_key(FakeGenerator("other"), _request(BASE)) != base_key
    assert cache_key(FakeGenerator(steps=20), _request(BASE)) != base_key
    assert cache_key(FakeGenerator(revision="abc"), _request(BASE)) != base_key
    # Identity key order is irrelevant (canonical JSON).
    a = FakeGenerator(x=1, y=2)
    b = FakeGenerator(y=2, x=1)
    assert cache_key(a, _request(BASE)) == cache_key(b, _request(BASE))


def test_put_get_round_trip_and_contains(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    key = cache.key_for(FakeGenerator(), _request(BASE))
    assert key not in cache and cache.get(key) is None
    stereo = _audio(frames=4800, channels=2)
    cache.put(key, stereo, 48000)
    assert key in cache
    back = cache.get(key)
    assert back is not None and back.dtype == np.float32 and back.shape == (2, 4800)
    np.testing.assert_array_equal(back, stereo)
    assert cache.sample_rate_of(key) == 48000
    path = cache.path_for(key)
    assert path.parent.name == key[:2] and path.name.startswith(key)
    # A fresh instance on the same root (a server restart) sees the entry.
    again = RenderCache(tmp_path / "cache")
    np.testing.assert_array_equal(again.get(key), stereo)


def test_mono_vector_is_stored_as_one_channel(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    key = "a" * 64
    cache.put(key, np.ones(10, dtype=np.float64), 16000)
    back = cache.get(key)
    assert back is not None and back.shape == (1, 10) and back.dtype == np.float32


def test_bad_keys_cannot_escape_root(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    for bad in ("../../etc/passwd", "/abs", "A" * 64, "a" * 63, ""):
        with pytest.raises(InvalidInputError) as info:
            cache.put(bad, _audio(), 48000)
        assert info.value.field == "key"
        assert bad not in cache
    assert not (tmp_path / "etc").exists()


def test_put_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch) -> None:
    cache = RenderCache(tmp_path)
    key = "b" * 64
    original = _audio(value=0.1)
    cache.put(key, original, 48000)

    def failing_replace(src, dst):  # the crash lands between writing the temp and renaming it
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        cache.put(key, _audio(value=0.9), 48000)
    monkeypatch.undo()
    # The old entry is intact and no temp file is left beside it.
    np.testing.assert_array_equal(cache.get(key), original)
    assert [p.name for p in cache.path_for(key).parent.iterdir()] == [cache.path_for(key).name]


def test_corrupt_or_missing_entry_is_a_miss(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path)
    key = "c" * 64
    cache.put(key, _audio(), 48000)
    cache.path_for(key).write_bytes(b"not a wav file")
    assert cache.get(key) is None
    assert key not in cache and key not in cache.keys()
    cache.put(key, _audio(), 48000)
    cache.path_for(key).unlink()
    assert cache.get(key) is None and cache.total_bytes == 0


def _fill(cache: RenderCache, count: int) -> list[str]:
    keys = [f"{index:064x}" for index in range(1, count + 1)]
    for key in keys:
        cache.put(key, _audio(frames=1000), 48000)
    return keys


def test_lru_evicts_least_recently_used_within_bound(tmp_path: Path) -> None:
    probe = RenderCache(tmp_path / "probe")
    probe.put("f" * 64, _audio(frames=1000), 48000)
    entry_bytes = probe.total_bytes
    cache = RenderCache(tmp_path / "lru", max_bytes=3 * entry_bytes)
    k1, k2, k3 = _fill(cache, 3)
    assert cache.total_bytes == 3 * entry_bytes
    assert cache.get(k1) is not None  # k1 is now the most recent; k2 the least
    k4 = "4" * 64
    cache.put(k4, _audio(frames=1000), 48000)
    assert k2 not in cache and cache.get(k2) is None
    assert all(key in cache for key in (k1, k3, k4))
    assert cache.total_bytes <= 3 * entry_bytes
    assert cache.keys() == [k3, k1, k4]
    # Two more puts push out k3 then k1, in that order.
    cache.put("5" * 64, _audio(frames=1000), 48000)
    cache.put("6" * 64, _audio(frames=1000), 48000)
    assert k3 not in cache and k1 not in cache and k4 in cache


def test_bound_holds_when_recency_survives_restart(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, max_bytes=None)
    k1, k2, k3 = _fill(cache, 3)
    cache.get(k1)
    entry_bytes = cache.total_bytes // 3
    cache.close()
    bounded = RenderCache(tmp_path, max_bytes=2 * entry_bytes)
    assert bounded.evict() == [k2]
    assert k1 in bounded and k3 in bounded


def test_pinned_and_protected_keys_survive_eviction(tmp_path: Path) -> None:
    live: set[str] = set()
    cache = RenderCache(tmp_path, max_bytes=None, protected=lambda: live)
    k1, k2, k3, k4 = _fill(cache, 4)
    entry_bytes = cache.total_bytes // 4
    cache.max_bytes = 2 * entry_bytes
    cache.pin([k1])
    cache.pin([k1])  # pins nest
    live.add(k2)
    assert cache.evict() == [k3, k4]
    assert k1 in cache and k2 in cache
    # The bound is full of protected entries: a new entry is kept while it is fresh (it is
    # about to be used), never a live stem; the next eviction takes it.
    cache.put("9" * 64, _audio(frames=1000), 48000)
    assert k1 in cache and k2 in cache and "9" * 64 in cache
    cache.unpin([k1])
    assert cache.evict() == ["9" * 64]  # k1 is still pinned once
    cache.unpin([k1])
    cache.max_bytes = entry_bytes
    assert cache.evict() == [k1]
    live.clear()
    cache.max_bytes = 0
    assert cache.evict() == [k2]
    assert cache.total_bytes == 0


def test_a_single_entry_over_the_bound_is_kept(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, max_bytes=10)
    key = "d" * 64
    cache.put(key, _audio(frames=1000), 48000)
    assert key in cache
    other = "e" * 64
    cache.put(other, _audio(frames=1000), 48000)
    assert key not in cache and other in cache


def test_concurrent_puts_and_gets_keep_the_bound(tmp_path: Path) -> None:
    probe = RenderCache(tmp_path / "probe")
    probe.put("f" * 64, _audio(frames=500), 48000)
    entry_bytes = probe.total_bytes
    cache = RenderCache(tmp_path / "shared", max_bytes=5 * entry_bytes)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for index in range(15):
                key = f"{offset * 100 + index:064x}"
                cache.put(key, _audio(frames=500), 48000)
                cache.get(key)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.total_bytes <= 5 * entry_bytes
    on_disk = {p.stem for p in (tmp_path / "shared").glob("*/*.wav")}
    assert on_disk == set(cache.keys())
    assert len(on_disk) == 5


def test_lost_index_is_rebuilt_from_files(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, max_bytes=None)
    keys = _fill(cache, 2)
    cache.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"index.sqlite{suffix}").unlink(missing_ok=True)
    reopened = RenderCache(tmp_path)
    assert reopened.total_bytes == 0 and all(key in reopened for key in keys)
    assert reopened.get(keys[0]) is not None  # a hit adopts the file into the index
    assert reopened.keys() == [keys[0]] and reopened.sample_rate_of(keys[0]) == 48000
