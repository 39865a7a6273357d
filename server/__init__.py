"""Audio-Agent server: transports and wiring around the engine."""
