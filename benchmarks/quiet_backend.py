"""The benchmarks' near-free backend ("bench-quiet"), imported by the server's engine process as
a plugin (ServerConfig.plugins): latency rounds then measure the server, not synthesis."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.generators import GenerationResult, register_generator


class QuietGenerator:
    """Near-free audio so latency rounds measure the server, not synthesis."""

    name = "bench-quiet"

    def identity(self) -> dict[str, Any]:
        return {}

    def generate(self, requests: Any, *, progress: Any = None, cancel: Any = None) -> list[GenerationResult]:
        return [GenerationResult(audio=(0.05 * np.random.default_rng(r.seed).standard_normal(
            (1, int(r.length_s * r.sample_rate)))).astype(np.float32)) for r in requests]


register_generator("bench-quiet", lambda **_: QuietGenerator())
