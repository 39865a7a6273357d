"""What the LLM planner has learnt about one endpoint + model: the structured-output rung that
works, the context size the server reported, and which token-limit parameter it takes.

The structured-output ladder, best first:

    json_schema         response_format {"type": "json_schema", "json_schema": {..., "schema"}}
    json_object_schema  response_format {"type": "json_object", "schema": ...}: llama.cpp's
                        llama-server and llama-cpp-python compile that schema into a grammar
    json_object         response_format {"type": "json_object"}: valid JSON, schema in the prompt
    plain               no response_format; the schema is in the prompt

A rung is left only when the server refused the response_format itself (llm_errors.classify),
and the rung found is kept for the process (shared by every planner instance, the server makes
one per request) and in a small JSON file in the cache folder, so a later process starts on
the rung that worked. `audio-agent llm check` probes from the top again and rewrites it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from engine.atomic import atomic_file

log = logging.getLogger(__name__)

Rung = Literal["json_schema", "json_object_schema", "json_object", "plain"]
RUNGS: tuple[Rung, ...] = ("json_schema", "json_object_schema", "json_object", "plain")
RUNG_WORDS = {
    "json_schema": "json_schema",
    "json_object_schema": "json_object with a schema",
    "json_object": "json_object (schema in the prompt)",
    "plain": "plain JSON (schema in the prompt)",
}
CACHE_FILE_NAME = "llm_endpoints.json"
# Entries kept in the file: a test suite or a user trying many servers must not grow it forever.
MAX_ENTRIES = 64


@dataclass(frozen=True)
class EndpointInfo:
    rung: Rung = "json_schema"
    context_tokens: int | None = None  # as the server reported it (models list or an error)
    token_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"

    def below(self) -> Rung | None:
        """The next rung down, or None at the bottom."""
        index = RUNGS.index(self.rung)
        return RUNGS[index + 1] if index + 1 < len(RUNGS) else None


def endpoint_key(base_url: str | None, model: str) -> str:
    return f"{(base_url or 'https://api.openai.com/v1').rstrip('/')}|{model}"


class EndpointMemory:
    """Process-wide, thread-safe memory of EndpointInfo per endpoint key, backed by a file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, EndpointInfo] = {}
        self._loaded_files: set[Path] = set()
        self._probed: set[str] = set()
        # Keys whose rung a server answer has confirmed (or an earlier process found). Until
        # then requests to the key go one at a time, so two threads cannot both be refused.
        self._confirmed: set[str] = set()
        self._first_use_locks: dict[str, threading.Lock] = {}

    def get(self, key: str, *, cache_file: Path | None) -> EndpointInfo:
        with self._lock:
            self._load(cache_file)
            return self._known.get(key, EndpointInfo())

    def update(self, key: str, *, cache_file: Path | None, **changes: Any) -> EndpointInfo:
        """Change what is known about ``key`` and write it through to ``cache_file``."""
        with self._lock:
            self._load(cache_file)
            info = replace(self._known.get(key, EndpointInfo()), **changes)
            if info == self._known.get(key, EndpointInfo()) and key in self._known:
                return info
            self._known[key] = info
            self._save(cache_file)
            return info

    def step_down(
        self, key: str, *, from_rung: Rung, to_rung: Rung, cache_file: Path | None
    ) -> EndpointInfo:
        """Move ``key`` from ``from_rung`` to ``to_rung``; when another thread already moved
        it (lower), keep that: two refusals of one rung never skip a rung that may work."""
        with self._lock:
            self._load(cache_file)
            info = self._known.get(key, EndpointInfo())
            if RUNGS.index(info.rung) <= RUNGS.index(from_rung):
                info = replace(info, rung=to_rung)
                self._known[key] = info
                self._save(cache_file)
            return info

    def forget(self, key: str, *, cache_file: Path | None) -> None:
        with self._lock:
            self._load(cache_file)
            self._probed.discard(key)
            self._confirmed.discard(key)
            if self._known.pop(key, None) is not None:
                self._save(cache_file)

    def first_probe(self, key: str) -> bool:
        """True the first time it is asked for ``key`` in this process (or since forget):
        the models list is read once per endpoint for the context size it may report."""
        with self._lock:
            if key in self._probed:
                return False
            self._probed.add(key)
            return True

    @contextlib.contextmanager
    def first_use(self, key: str) -> Iterator[Callable[[], None]]:
        """Around one request: holds ``key``'s lock while its rung is unconfirmed; yields a
        function that marks the rung confirmed (call it on any answer but a format refusal)."""
        def confirm() -> None:
            with self._lock:
                self._confirmed.add(key)

        with self._lock:
            if key in self._confirmed:
                lock = None
            else:
                lock = self._first_use_locks.setdefault(key, threading.Lock())
        if lock is None:
            yield confirm
            return
        with lock:
            yield confirm

    def clear_process_memory(self) -> None:
        """Forget everything held in memory (tests; the file stays as it is)."""
        with self._lock:
            self._known.clear()
            self._loaded_files.clear()
            self._probed.clear()
            self._confirmed.clear()

    # ----------------------------------------------------------------- file
    def _load(self, cache_file: Path | None) -> None:
        if cache_file is None or cache_file in self._loaded_files:
            return
        self._loaded_files.add(cache_file)
        try:
            data = json.loads(cache_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:  # a broken cache is ignored, never fatal
            log.warning("ignoring unreadable LLM endpoint cache %s (%s)", cache_file, error)
            return
        for key, raw in (data.get("endpoints") or {}).items() if isinstance(data, dict) else ():
            info = _info_from(raw)
            if info is not None and key not in self._known:
                self._known[key] = info
                self._confirmed.add(key)  # an earlier process found this rung working

    def _save(self, cache_file: Path | None) -> None:
        if cache_file is None:
            return
        kept = dict(list(self._known.items())[-MAX_ENTRIES:])
        payload = {"endpoints": {key: asdict(info) for key, info in kept.items()}}
        try:
            with atomic_file(cache_file) as handle:
                handle.write(json.dumps(payload, indent=1).encode())
        except OSError as error:  # a read-only cache folder only costs the memory across runs
            log.warning("cannot write LLM endpoint cache %s (%s)", cache_file, error)


def _info_from(raw: Any) -> EndpointInfo | None:
    if not isinstance(raw, dict) or raw.get("rung") not in RUNGS:
        return None
    context = raw.get("context_tokens")
    param = raw.get("token_param")
    return EndpointInfo(
        rung=raw["rung"],
        context_tokens=context if isinstance(context, int) and context > 0 else None,
        token_param=param if param in ("max_tokens", "max_completion_tokens") else "max_tokens",
    )


MEMORY = EndpointMemory()


def default_cache_file() -> Path | None:
    """<engine cache_dir>/llm_endpoints.json; None when the engine settings cannot be read."""
    from engine.errors import AudioAgentError
    from engine.settings import load_settings

    try:
        return load_settings().resolved_cache_dir() / CACHE_FILE_NAME
    except (AudioAgentError, OSError):
        return None


def reported_context_tokens(model_entry: dict[str, Any]) -> int | None:
    """The context size a models-list entry reports: llama-server puts it in meta.n_ctx,
    vLLM in max_model_len, LM Studio's REST API in max_context_length."""
    meta = model_entry.get("meta") if isinstance(model_entry.get("meta"), dict) else {}
    for value in (
        meta.get("n_ctx"),
        model_entry.get("max_model_len"),
        model_entry.get("max_context_length"),
        model_entry.get("context_length"),
    ):  # never meta.n_ctx_train: the server may run with a smaller context than trained for
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def cache_file_for(setting: Path | None) -> Path | None:
    """The endpoint cache file: the setting when given (os.devnull switches it off)."""
    if setting is not None:
        return None if str(setting) == os.devnull else Path(setting).expanduser()
    return default_cache_file()


def list_models(client: Any, *, timeout_s: float) -> list[dict[str, Any]]:
    """The endpoint's models list as plain dicts, extra fields (context sizes) included."""
    page = client.with_options(timeout=timeout_s).models.list()
    return [item.model_dump() if hasattr(item, "model_dump") else dict(item) for item in page]


def matching_model(models: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The entry for ``name``; a server that serves one model whatever it is called
    (llama-server, llama-cpp-python with one model) answers with that one."""
    for entry in models:
        if entry.get("id") == name:
            return entry
    return models[0] if len(models) == 1 else None
