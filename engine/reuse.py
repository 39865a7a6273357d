"""Which previous stems a new render may stand on: the reuse rules of every front door.

``render_scene(reuse=...)`` takes the candidates and makes the final check itself (same cache
key, same length, the file still there in the same format); these functions decide which
previous stems are candidates at all:

- a session (the server): the events the plan diff calls unchanged, moved or regained. The DAW
  script moves the item or changes its gain, so the file itself stands as it is;
- a folder (the CLI): events of the previous manifest in the folder at the same timeline
  position. A reused file keeps its BWF timestamp and on the command line nobody moves the DAW
  item for us, so a moved event gets a new file (from the raw render cache, without a generator
  call).
"""

from __future__ import annotations

from pathlib import Path

from engine.manifest import Manifest, ManifestEvent, read_manifest
from engine.plan import TIME_EPS_S, ChangeKind, Plan, PlanDiff


def session_reuse(current: Manifest | None, diff: PlanDiff) -> dict[str, ManifestEvent]:
    """Stems of the session's current version whose events kept their content."""
    if current is None:
        return {}
    keep = set(diff.ids(ChangeKind.UNCHANGED, ChangeKind.MOVED, ChangeKind.REGAINED))
    return {event.id: event for event in current.events if event.id in keep}


def folder_reuse(out: Path, plan: Plan, anchor_s: float) -> dict[str, ManifestEvent]:
    """Stems of an earlier render into ``out`` that can stand as they are (see module doc)."""
    from engine.scene import MANIFEST_NAME  # the CLI renders next; the DSP stack loads anyway

    path = Path(out) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        previous = read_manifest(path)
    except (OSError, ValueError):
        return {}  # an unreadable old manifest only costs the reuse
    if abs(previous.anchor_s - anchor_s) > TIME_EPS_S:
        return {}
    starts = {event.id: event.start_s for event in plan.events}
    return {
        event.id: event
        for event in previous.events
        if event.id in starts and abs(starts[event.id] - event.start_s) <= TIME_EPS_S
    }
