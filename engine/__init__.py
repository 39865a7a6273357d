"""Audio-Agent engine: pure planning and audio logic (no sockets, no servers)."""
