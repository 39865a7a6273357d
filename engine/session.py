"""Sessions: a named scene that evolves by generate / edit / undo / redo, persisted on disk.

Each request runs in two phases so the server can plan one request while its single render
worker renders another:

- ``prepare_*`` plans (or, for undo/redo, picks a stored version), validates and diffs against
  the session's current version. Nothing is rendered; the result is a PendingVersion.
- ``render(pending)`` renders only what the diff says changed, reusing the previous stems of
  unchanged, moved and re-gained events, stores the version and makes it current.

Layout under ``data_dir``: ``audio_agent.sqlite`` (engine.store) and
``sessions/<safe name>/v<N>/`` (stems, mix.wav, manifest.json of version N).

Beside it: engine.session_paths (safe folder names), engine.session_views (what front doors
show of a session), engine.session_words (undo phrases, reply wording), engine.seeds (seeds).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence

from engine.cache import RenderCache
from engine.edits import EventEdit, apply_edit
from engine.errors import InvalidInputError, NotFoundError, StorageError, storage_error
from engine.generators import Generator
from engine.limits import (
    check_duration_s,
    check_position_s,
    check_seed,
    check_session_name,
    check_text,
)
from engine.manifest import Manifest, ManifestEvent, Variation
from engine.plan import (
    DEFAULT_LIMITS,
    ChangeKind,
    Plan,
    PlanDiff,
    PlanLimits,
    diff_plans,
    validate_plan,
)
from engine.planners import Planner, PlanResult, Turn
from engine.progress import CancelToken, ProgressFn
from engine.render_settings import RenderSettings, SceneLabels
from engine.reuse import session_reuse
from engine.session_paths import SESSIONS_DIR, SessionFolders, session_dir_name
from engine.session_views import (
    SessionInfo,
    SessionSummary,
    history,
    neighbours,
    session_info,
    session_summary,
)
from engine.session_words import (
    applied_reply,
    describe_change,
    planned_reply,
    restored_reply,
    route_instruction,
)
from engine.seeds import DEFAULT_SEED, plan_prompt, seed_plan
from engine.store import SessionRow, SessionStore, VersionRow

# Re-exported: callers have always found these here.
__all__ = [
    "DB_NAME", "SESSIONS_DIR", "OnStem", "PendingVersion", "SessionInfo", "SessionManager",
    "SessionSummary", "SessionVersion", "VersionKind", "check_session_name", "route_instruction",
    "session_dir_name",
]

DB_NAME = "audio_agent.sqlite"

VersionKind = Literal["generate", "edit", "undo", "redo", "video_cue"]
OnStem = Callable[[ManifestEvent, ChangeKind], None]

@dataclass(frozen=True)
class PendingVersion:
    """A planned but not yet rendered version (for undo/redo: the stored version to restore)."""

    session: str
    version: int
    kind: VersionKind
    plan: Plan
    diff: PlanDiff
    notes: tuple[str, ...] = ()
    planner: str = ""  # the planner that produced the plan ("" for structured edits/restores)
    backend: str = ""  # "" = the generator factory's default
    anchor_s: float = 0.0
    base_version: int = 0  # the current version this was planned against (0: none)
    instruction: str = ""  # the user's words (prompt, instruction or described change)
    reply: str = ""  # the assistant's answer, stored as a turn
    fell_back: bool = False
    session_planner: str = ""  # planner setting to store on the session ("" = default)
    seed: int | None = None  # request seed to store on the session (engine.seeds); None: keep
    # Renders this version instead of ``backend``'s: a generator bound to its source (a VTA video
    # cue's picture), which no factory can rebuild from a name. ``backend`` is then its label.
    generator: Generator | None = None
    # A re-roll of N takes: (event id, seeds) pairs rendered in one batch (Manifest.variations).
    variations: tuple[tuple[str, tuple[int, ...]], ...] = ()

    @property
    def duration_s(self) -> float:
        return self.plan.duration_s


@dataclass(frozen=True)
class SessionVersion:
    session: str
    version: int
    kind: str
    plan: Plan
    manifest: Manifest
    instruction: str = ""
    notes: tuple[str, ...] = ()
    rerendered: tuple[str, ...] = ()  # undo/redo: ids whose missing stem was rendered again


@dataclass(frozen=True)
class _Current:
    row: VersionRow
    plan: Plan
    manifest: Manifest


class SessionManager:
    """Sessions of one data dir. Thread-safe; renders of one session are serialised."""

    def __init__(
        self,
        *,
        data_dir: Path,
        planner_factory: Callable[[str | None], Planner],
        generator_factory: Callable[[str | None], Generator],
        cache: RenderCache | None = None,
        limits: PlanLimits = DEFAULT_LIMITS,
        render_settings: RenderSettings = RenderSettings(),
    ) -> None:
        """``render_settings``: how every version is written (rate, loudness target, ceiling)."""
        self.folders = SessionFolders(data_dir)
        self.data_dir = self.folders.data_dir
        self.sessions_dir = self.folders.sessions_dir
        self.store = SessionStore(self.data_dir / DB_NAME)
        self.cache = cache
        self.limits = limits
        self.render_settings = render_settings.checked()
        self._planner_factory = planner_factory
        self._generator_factory = generator_factory
        self._planners: dict[str, Planner] = {}
        self._generators: dict[str, Generator] = {}
        # Per session, the bound generator of its latest version that had one (see PendingVersion):
        # its later edits and undo/redo render with it. Held in memory only.
        self._bound: dict[str, Generator] = {}
        self._factory_lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._live_keys: dict[str, frozenset[str]] = {}
        self._live_lock = threading.Lock()
        for name, manifest_json in self.store.current_manifests().items():
            self._remember_live(name, Manifest.model_validate_json(manifest_json))
        if cache is not None:
            cache.protect(self.live_cache_keys)

    # -- paths -------------------------------------------------------------------------------

    def session_dir(self, session: str) -> Path:
        return self.folders.session_dir(session)

    def version_dir(self, session: str, version: int) -> Path:
        return self.folders.version_dir(session, version)

    # -- factories (one instance per name: models load once) ---------------------------------

    def planner(self, name: str | None = None) -> Planner:
        """The planner requests without an explicit choice use (the server's default)."""
        return self._planner(name or "")

    def _planner(self, name: str) -> Planner:
        with self._factory_lock:
            if name not in self._planners:
                self._planners[name] = self._planner_factory(name or None)
            return self._planners[name]

    def _generator(self, name: str) -> Generator:
        with self._factory_lock:
            if name not in self._generators:
                self._generators[name] = self._generator_factory(name or None)
            return self._generators[name]

    def _default_backend(self, row: SessionRow | None) -> str:
        """The session's backend for a request naming none; a bound label is not a backend."""
        backend = row.backend if row else ""
        return "" if _is_bound(backend) else backend

    def _bound_for(self, session: str, backend: str, *, editing: bool) -> Generator | None:
        """The bound generator an edit or a restore of a version labelled ``backend`` renders
        with; an edit without it (after a restart) is refused here, before any work."""
        if not _is_bound(backend):
            return None
        generator = self._bound.get(session)
        if generator is None and editing:
            raise InvalidInputError(
                f"session={session!r}: its scene was rendered by {backend!r} from a video, and this "
                "server no longer holds that picture (it was restarted); send the video_cue again "
                "to edit it", field="session", value=session)
        return generator

    def _session_lock(self, session: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(session, threading.Lock())

    # -- reading state -----------------------------------------------------------------------

    def _current(self, row: SessionRow) -> _Current | None:
        if row.current_version == 0:
            return None
        stored = self.store.get_version(row.name, row.current_version)
        if stored is None:  # pragma: no cover - the store keeps the pointer consistent
            return None
        return _Current(
            stored,
            Plan.model_validate_json(stored.plan_json),
            Manifest.model_validate_json(stored.manifest_json),
        )

    def _history(self, row: SessionRow | None) -> list[Turn]:
        return history(self.store, row)

    def _neighbours(self, row: SessionRow) -> tuple[int | None, int | None]:
        return neighbours(self.store.list_versions(row.name), row.current_version)

    def current_version(self, session: str) -> int:
        """The session's current version (0: nothing rendered yet); NotFoundError if unknown."""
        return self.store.require_session(check_session_name(session)).current_version

    def get(self, session: str) -> SessionInfo:
        row = self.store.require_session(check_session_name(session))
        current = self._current(row)
        return session_info(
            self.store, row, plan=current.plan if current else None,
            manifest=current.manifest if current else None,
            directory=str(self.session_dir(row.name)),
        )

    def list(self) -> list[SessionSummary]:
        summaries = []
        for row in self.store.list_sessions():
            current = self._current(row)
            summaries.append(session_summary(self.store, row, plan=current.plan if current else None))
        return summaries

    # -- phase 1: prepare --------------------------------------------------------------------

    def prepare_generate(
        self,
        session: str,
        *,
        prompt: str,
        duration_s: float,
        anchor_s: float = 0.0,
        planner: str | None = None,
        backend: str | None = None,
        seed: int | None = None,
    ) -> PendingVersion:
        """Plan a new scene for ``session`` (created if new; an existing one gets a new version)."""
        name = check_session_name(session)
        text = check_text("prompt", prompt)
        duration = check_duration_s(duration_s, maximum=self.limits.max_duration_s)
        anchor = check_position_s(anchor_s)
        if seed is not None:
            check_seed(seed)
        row = self.store.get_session(name)
        planner_name = planner if planner is not None else (row.planner if row else "")
        backend_name = backend if backend is not None else self._default_backend(row)
        result = plan_prompt(
            self._planner(planner_name), text, duration_s=duration, seed=seed,
            limits=self.limits, history=self._history(row),
        )
        return self._pending(
            name, row, kind="generate", plan=result.plan, result=result, instruction=text,
            backend=backend_name, anchor_s=anchor, session_planner=planner_name,
            seed=seed or DEFAULT_SEED,
        )

    def prepare_plan(
        self,
        session: str,
        result: PlanResult,
        *,
        instruction: str,
        kind: VersionKind = "video_cue",
        anchor_s: float | None = None,
        backend: str | None = None,
        seed: int | None = None,
        generator: Generator | None = None,
    ) -> PendingVersion:
        """A plan made elsewhere (e.g. engine.video.cue.plan_from_video) as the next version.
        ``generator``: one bound to this plan's source (PendingVersion.generator), with
        ``backend`` its label."""
        name = check_session_name(session)
        row = self.store.get_session(name)
        plan = seed_plan(validate_plan(result.plan, limits=self.limits), seed)
        if anchor_s is None:
            anchor_s = row.anchor_s if row else 0.0
        anchor = check_position_s(anchor_s)
        backend_name = backend if backend is not None else self._default_backend(row)
        return self._pending(
            name, row, kind=kind, plan=plan, result=result, instruction=instruction,
            backend=backend_name, anchor_s=anchor,
            session_planner=row.planner if row else "", seed=seed or DEFAULT_SEED,
            generator=generator,
        )

    def prepare_edit(
        self,
        session: str,
        *,
        instruction: str | None = None,
        change: EventEdit | None = None,
        changes: Sequence[EventEdit] | None = None,
        variations: Mapping[str, Sequence[int]] | None = None,
    ) -> PendingVersion:
        """Revise the current version by a free-text instruction, one structured change, or
        several applied in order (a DAW's hand edits), as one new version. ``variations``:
        event id -> seeds rendered in one batch as that event's variations (a DAW's re-roll of
        N takes); the event's own seed must be one of them, so its stem is one of the batch."""
        name = check_session_name(session)
        if sum(x is not None for x in (instruction, change, changes)) != 1:
            raise InvalidInputError(
                "instruction: give either an instruction or a change", field="instruction"
            )
        if change is not None:
            changes = [change]
        text = ""
        if instruction is not None:
            text = check_text("instruction", instruction)
            routed = route_instruction(text)
            if routed == "undo":
                return self.prepare_undo(name)
            if routed == "redo":
                return self.prepare_redo(name)
        row = self.store.require_session(name)
        current = self._current(row)
        if current is None:
            raise InvalidInputError(
                f"session={name!r}: nothing rendered yet to edit; generate first",
                field="session",
                value=name,
            )
        if changes is not None:
            plan = current.plan
            for one in changes:
                plan = apply_edit(plan, one, limits=self.limits)
            words = "; ".join(describe_change(one) for one in changes)
            result = PlanResult(plan=plan, planner="", reply=applied_reply(words))
        else:
            result = self._planner(row.planner).edit(
                current.plan, text, history=self._history(row), limits=self.limits
            )
            plan = validate_plan(result.plan, limits=self.limits)
            words = text
        # New and changed events get the session's seed; kept ones keep theirs (and their stems).
        plan = seed_plan(plan, row.seed, previous=current.plan)
        # A version a bound generator rendered (a VTA cue) is edited with that generator, so kept
        # stems keep their cache keys; it may re-seed edited events (by their picture) and refuse
        # events it cannot render, before anything is accepted.
        backend = current.manifest.backend if _is_bound(current.manifest.backend) else self._default_backend(row)
        bound = self._bound_for(name, backend, editing=True)
        rebind = getattr(bound, "rebind_plan", None)
        if rebind is not None:
            plan = rebind(plan, previous=current.plan)
        # A seed a client set (a re-roll, the take the designer chose) is the seed, unmixed: the
        # same variation must come back when the designer picks that take again.
        pinned = {c.event_id: c.seed for c in changes or () if c.op == "set_seed" and c.seed is not None}
        if pinned:
            plan = plan.model_copy(update={"events": tuple(
                e.model_copy(update={"seed": pinned[e.id]}) if e.id in pinned else e for e in plan.events)})
        check = getattr(bound, "check_plan", None)
        if check is not None:
            check(plan)
        wanted = _checked_variations(plan, variations or {})
        pending = self._pending(
            name, row, kind="edit", plan=plan, result=result, instruction=words,
            backend=backend, anchor_s=row.anchor_s, session_planner=row.planner,
            current=current, generator=bound,
        )
        return replace(pending, variations=wanted) if wanted else pending

    def prepare_undo(self, session: str) -> PendingVersion:
        return self._prepare_restore(session, kind="undo")

    def prepare_redo(self, session: str) -> PendingVersion:
        return self._prepare_restore(session, kind="redo")

    def _prepare_restore(self, session: str, *, kind: Literal["undo", "redo"]) -> PendingVersion:
        name = check_session_name(session)
        row = self.store.require_session(name)
        before, after = self._neighbours(row)
        target = before if kind == "undo" else after
        if target is None:
            raise InvalidInputError(
                f"session={name!r}: nothing to {kind}", field="session", value=name
            )
        stored = self.store.get_version(name, target)
        if stored is None:  # pragma: no cover - listed a moment ago
            raise NotFoundError(f"version={target}: gone", field="version", value=target)
        plan = Plan.model_validate_json(stored.plan_json)
        current = self._current(row)
        manifest = Manifest.model_validate_json(stored.manifest_json)
        backend = manifest.backend if _is_bound(manifest.backend) else self._default_backend(row)
        return PendingVersion(
            session=name,
            version=target,
            kind=kind,
            plan=plan,
            diff=diff_plans(current.plan if current else None, plan),
            backend=backend,
            anchor_s=manifest.anchor_s,
            base_version=row.current_version,
            instruction=kind,
            reply=restored_reply(target),
            session_planner=row.planner,
            generator=self._bound_for(name, backend, editing=False),
        )

    def _pending(
        self,
        name: str,
        row: SessionRow | None,
        *,
        kind: VersionKind,
        plan: Plan,
        result: PlanResult,
        instruction: str,
        backend: str,
        anchor_s: float,
        session_planner: str,
        current: _Current | None = None,
        seed: int | None = None,
        generator: Generator | None = None,
    ) -> PendingVersion:
        if row is None:
            # Settings stay at their defaults until a version commits (commit_version stores
            # them): a first request naming a backend that then fails to load must not leave
            # the session bound to it, failing every later request that names none.
            row = self.store.ensure_session(name)
        elif current is None:
            current = self._current(row)
        version = self.store.reserve_version(name)
        return PendingVersion(
            session=name,
            version=version,
            kind=kind,
            plan=plan,
            diff=diff_plans(current.plan if current else None, plan),
            notes=tuple(result.notes),
            planner=result.planner,
            backend=backend,
            anchor_s=anchor_s,
            base_version=row.current_version,
            instruction=instruction,
            reply=result.reply or planned_reply(len(plan.events)),
            fell_back=result.fell_back,
            session_planner=session_planner,
            seed=seed,
            generator=generator,
        )

    # -- phase 2: render ---------------------------------------------------------------------

    def render(
        self,
        pending: PendingVersion,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        on_stem: OnStem | None = None,
    ) -> SessionVersion:
        """Render ``pending`` (or restore it, for undo/redo) and make it the current version."""
        with self._session_lock(pending.session):
            if pending.kind in ("undo", "redo"):
                return self._restore(pending, progress=progress, cancel=cancel, on_stem=on_stem)
            return self._render_new(pending, progress=progress, cancel=cancel, on_stem=on_stem)

    def _scene(
        self,
        pending: PendingVersion,
        plan: Plan,
        *,
        out_dir: Path,
        reuse: dict[str, ManifestEvent],
        diff: PlanDiff,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
        on_stem: OnStem | None,
    ) -> Manifest:
        notified: set[str] = set()

        def landed(entry: ManifestEvent) -> None:
            notified.add(entry.id)
            if on_stem is not None:
                on_stem(entry, diff.kind_of(entry.id))

        # Imported on first use: engine.scene pulls in the DSP stack, which planning never needs.
        from engine.scene import render_scene

        _make_dir(out_dir)
        manifest = render_scene(
            plan,
            generator=pending.generator or self._generator(pending.backend),
            out_dir=out_dir,
            settings=self.render_settings,
            anchor_s=pending.anchor_s,
            cache=self.cache,
            reuse=reuse,
            labels=SceneLabels(pending.backend, pending.planner, pending.notes),
            progress=progress,
            cancel=cancel,
            on_stem=landed,
        )
        for entry in manifest.events:  # a renderer that skipped the callback still reports
            if entry.id not in notified:
                landed(entry)
        return manifest

    def _render_new(
        self,
        pending: PendingVersion,
        *,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
        on_stem: OnStem | None,
    ) -> SessionVersion:
        row = self.store.require_session(pending.session)
        current = self._current(row)
        # Diff again: the current version may have moved since planning (the server orders a
        # session's jobs, but other callers need not); reuse must match what is on disk now.
        diff = diff_plans(current.plan if current else None, pending.plan)
        reuse = session_reuse(current.manifest if current else None, diff)
        variations = self._render_variations(pending, reuse, cancel=cancel)
        manifest = self._scene(
            pending, pending.plan, out_dir=self.version_dir(pending.session, pending.version),
            reuse=reuse, diff=diff, progress=progress, cancel=cancel, on_stem=on_stem,
        )
        if variations:
            manifest = manifest.model_copy(update={"variations": variations})
        self.store.commit_version(
            pending.session,
            version=pending.version,
            kind=pending.kind,
            plan_json=pending.plan.model_dump_json(),
            manifest_json=manifest.model_dump_json(),
            instruction=pending.instruction,
            turns=(("user", pending.instruction), ("assistant", pending.reply)),
            anchor_s=pending.anchor_s,
            planner=pending.session_planner,
            backend=pending.backend,
            seed=pending.seed,
        )
        if pending.generator is not None:
            self._bound[pending.session] = pending.generator
        self._set_live(pending.session, manifest)
        return SessionVersion(
            pending.session, pending.version, pending.kind, pending.plan, manifest,
            pending.instruction, pending.notes,
        )

    def _render_variations(
        self, pending: PendingVersion, reuse: dict[str, ManifestEvent], *, cancel: CancelToken | None
    ) -> list[Variation]:
        """Render every seed of a re-roll's events as one scene of its own, so the generator gets
        them all in one batched call; the active seed's stem then serves the version itself
        (added to ``reuse``: the same cache key, so no second generator call)."""
        if not pending.variations:
            return []
        from engine.scene import render_scene

        by_id = {event.id: event for event in pending.plan.events}
        events, owners = [], {}
        for event_id, seeds in pending.variations:
            for number, seed in enumerate(seeds, start=1):
                vid = f"v{len(events) + 1}"
                owners[vid] = (event_id, number, seed)
                events.append(by_id[event_id].model_copy(update={"id": vid, "seed": seed}))
        plan = pending.plan.model_copy(update={"events": tuple(events)})
        out_dir = self.version_dir(pending.session, pending.version) / "variations"
        _make_dir(out_dir)
        rendered = render_scene(
            plan,
            generator=pending.generator or self._generator(pending.backend),
            out_dir=out_dir,
            settings=replace(self.render_settings, write_mix=False, aligned=False, cue_markers_bpm=None),
            anchor_s=pending.anchor_s,
            cache=self.cache,
            labels=SceneLabels(pending.backend, pending.planner, pending.notes),
            cancel=cancel,
        )
        variations = []
        for entry in rendered.events:
            event_id, number, seed = owners[entry.id]
            variations.append(Variation(event_id=event_id, number=number, seed=seed, stem_path=entry.stem_path,
                                        cache_key=entry.cache_key, cache_hit=entry.cache_hit,
                                        measured_lufs=entry.measured_lufs, gain_db=entry.gain_db))
            if by_id[event_id].seed == seed:
                reuse[event_id] = entry.model_copy(update={"id": event_id})
        return sorted(variations, key=lambda v: (v.event_id, v.number))

    def _restore(
        self,
        pending: PendingVersion,
        *,
        progress: ProgressFn | None,
        cancel: CancelToken | None,
        on_stem: OnStem | None,
    ) -> SessionVersion:
        name, version = pending.session, pending.version
        stored = self.store.get_version(name, version)
        if stored is None:
            raise NotFoundError(
                f"version={version}: session {name!r} no longer has it (a new edit dropped it)",
                field="version",
                value=version,
            )
        row = self.store.require_session(name)
        current = self._current(row)
        diff = diff_plans(current.plan if current else None, pending.plan)
        manifest = Manifest.model_validate_json(stored.manifest_json)
        # Events that failed when the version was made stay failed: undo must not cost a render.
        missing = [e.id for e in manifest.events if not Path(e.stem_path).is_file()]
        if missing:
            reuse = {e.id: e for e in manifest.events if e.id not in missing}
            manifest = self._scene(
                pending, pending.plan, out_dir=self.version_dir(name, version), reuse=reuse,
                diff=diff, progress=progress, cancel=cancel, on_stem=on_stem,
            )
            self.store.update_manifest(name, version, manifest.model_dump_json())
        else:
            # Nothing was generated for this request: every stem reports as a cache hit.
            events = [entry.model_copy(update={"cache_hit": True}) for entry in manifest.events]
            manifest = manifest.model_copy(update={"events": events})
            for entry in events:
                if on_stem is not None:
                    on_stem(entry, diff.kind_of(entry.id))
            if progress is not None:
                progress("render", 1.0)
        self.store.set_current(name, version)
        self.store.add_turns(
            name, version, (("user", pending.instruction), ("assistant", pending.reply))
        )
        self._set_live(name, manifest)
        return SessionVersion(
            name, version, pending.kind, pending.plan, manifest, pending.instruction,
            rerendered=tuple(missing),
        )

    # -- cache protection --------------------------------------------------------------------

    def _remember_live(self, session: str, manifest: Manifest) -> None:
        keys = frozenset(e.cache_key for e in manifest.events if e.cache_key)
        with self._live_lock:
            self._live_keys[session] = keys

    def _set_live(self, session: str, manifest: Manifest) -> None:
        self._remember_live(session, manifest)
        # The live set just changed: renders it no longer holds may now be over the bound.
        if self.cache is not None:
            self.cache.evict()

    def live_cache_keys(self) -> set[str]:
        """Cache keys of every session's current version: eviction must keep them."""
        with self._live_lock:
            return set().union(*self._live_keys.values()) if self._live_keys else set()

    def close(self) -> None:
        self.store.close()


def _checked_variations(plan: Plan, variations: Mapping[str, Sequence[int]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    events = {event.id: event for event in plan.events}
    for event_id, seeds in variations.items():
        if event_id not in events:
            raise InvalidInputError(f"variations: event_id={event_id!r} is not in the scene", field="variations")
        if events[event_id].seed not in seeds:
            raise InvalidInputError(
                f"variations: event {event_id!r} plays seed {events[event_id].seed}, not one of {list(seeds)}",
                field="variations")
    return tuple((event_id, tuple(seeds)) for event_id, seeds in variations.items())


def _is_bound(backend: str) -> bool:
    """Labels of bound generators carry their source's name after a colon ("vta:NAME")."""
    return ":" in backend


def _make_dir(path: Path) -> None:
    """Create a version folder inside the data dir. A data dir that cannot take it is the
    server's problem (storage_error / storage_full), not bad input from the client."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
    except OSError as error:
        raise storage_error(error) or StorageError(f"cannot create {path}: {error}") from None
    if not writable:
        raise StorageError(f"cannot write {path}: the data dir is read-only or not ours; check "
                           "its permissions")

