"""The REAPER panel's logic (AA.panel_frame) with a stub in place of ReaImGui's drawing: every
button runs the same library calls as the actions; the stub only scripts the designer's input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.daw.conftest import ScriptedClient
from tests.daw.fake_reaper import FakeReaper
from tests.daw.test_reaper_edit import scene  # noqa: F401 - fixture


class StubUI:
    """Records what is drawn; answers input from a script (label -> value, clicks by label)."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.clicks: set[str] = set()
        self.inputs: dict[str, Any] = {}
        self.checks: dict[str, bool] = {}
        self.drawn: list[tuple[str, Any]] = []

    def key(self, label: str) -> str:
        return "/".join([*self.ids, label])

    def table(self, reaper: FakeReaper) -> Any:
        def text(value: str) -> None:
            self.drawn.append(("text", value))

        def input_(label: str, value: Any) -> Any:
            self.drawn.append(("input", self.key(label)))
            return self.inputs.pop(self.key(label), value)

        def button(label: str) -> bool:
            self.drawn.append(("button", self.key(label)))
            if self.key(label) in self.clicks:
                self.clicks.discard(self.key(label))
                return True
            return False

        def checkbox(label: str, value: bool) -> bool:
            return self.checks.pop(self.key(label), value)

        def progress(fraction: float, overlay: str) -> None:
            self.drawn.append(("progress", (fraction, overlay)))

        def selectable(label: str) -> bool:
            self.drawn.append(("selectable", label))
            return button(label)

        return reaper.lua.table_from({
            "text": text, "input": input_, "number": input_, "button": button, "checkbox": checkbox,
            "progress": progress, "selectable": selectable, "same_line": lambda: None,
            "separator": lambda: None, "push_id": lambda i: self.ids.append(str(i)),
            "pop_id": lambda: self.ids.pop(),
        })

    def buttons(self) -> list[str]:
        return [value for kind, value in self.drawn if kind == "button"]


def panel(reaper: FakeReaper, scripts_dir: Path) -> tuple[Any, Any]:
    aa = reaper.load_lib(scripts_dir)
    aa.pin_project()
    return aa, reaper.lua.table()


def test_generate_from_the_panel_remembers_the_prompt(reaper, client: ScriptedClient, scripts_dir):
    reaper.time_selection = (4.0, 10.0)
    aa, state = panel(reaper, scripts_dir)
    ui = StubUI()
    aa.panel_frame(state, ui.table(reaper))
    assert state.duration_s == 6.0 and "Generate" in ui.buttons()  # from the time selection
    ui.inputs.update({"Scene": "rain on a tin roof", "Planner": "rules"})
    ui.clicks.add("Generate")
    aa.panel_frame(state, ui.table(reaper))
    reaper.run_deferred()
    argv = client.job["argv"]
    assert argv[argv.index("generate") + 1] == "rain on a tin roof"
    assert argv[argv.index("--duration") + 1] == "6" and argv[argv.index("--anchor") + 1] == "4"
    assert argv[argv.index("--planner") + 1] == "rules" and "--backend" not in argv
    assert json.loads(reaper.ext_state[("AudioAgent", "history")]) == ["rain on a tin roof"]
    # While it runs: a progress bar and Cancel instead of Generate.
    client.send({"type": "accepted", "id": "r", "job": "job-1"})
    client.send({"type": "progress", "id": "r", "job": "job-1", "stage": "render", "fraction": 0.5})
    reaper.run_deferred()
    ui = StubUI()
    ui.clicks.add("Cancel")
    aa.panel_frame(state, ui.table(reaper))
    assert ("progress", (0.5, "Generate scene: render")) in ui.drawn and "Generate" not in ui.buttons()
    assert client.calls[-1][-3:] == ["cancel", "--job", "job-1"]


def test_the_scenes_events_can_be_muted_rerolled_regained_and_reworded(reaper, client, scripts_dir,
                                                                      scene):  # noqa: F811
    session = scene["session"]
    aa, state = panel(reaper, scripts_dir)
    ui = StubUI()
    aa.panel_frame(state, ui.table(reaper))
    rows = [value for kind, value in ui.drawn if kind == "text" and " dB " in value]
    assert rows[0].startswith("steady rain  0.00 s  -3.0 dB  1 take(s)") and len(rows) == 5
    ui = StubUI()
    ui.checks["dog/"] = False  # the dog's "playing" box unticked: muted
    aa.panel_frame(state, ui.table(reaper))
    assert reaper.items_of_session(session)["dog"].values["B_MUTE"] == 1.0
    assert reaper.active.undo_points()[-1] == "AudioAgent: mute dog"
    ui = StubUI()
    ui.clicks.add("door/Re-roll")
    aa.panel_frame(state, ui.table(reaper))
    reaper.run_deferred()
    argv = client.job["argv"]
    sent = json.loads(Path(argv[argv.index("--changes-file") + 1]).read_text())
    assert [(c["op"], c["event_id"]) for c in sent] == [("set_seed", "door")]
    client.exit(1)  # (that job is not played out here)
    reaper.run_deferred()
    ui = StubUI()
    ui.clicks.add("engine/+1 dB")
    aa.panel_frame(state, ui.table(reaper))
    reaper.run_deferred()
    argv = client.job["argv"]
    sent = json.loads(Path(argv[argv.index("--changes-file") + 1]).read_text())
    assert sent == [{"op": "set_loudness", "event_id": "engine", "target_lufs": -22.0}]
    client.exit(1)
    reaper.run_deferred()
    ui = StubUI()
    ui.inputs["tyres/New words"] = "tyres on gravel"
    ui.clicks.add("tyres/Regenerate")
    aa.panel_frame(state, ui.table(reaper))
    reaper.run_deferred()
    argv = client.job["argv"]
    sent = json.loads(Path(argv[argv.index("--changes-file") + 1]).read_text())
    assert sent == [{"op": "replace_text", "event_id": "tyres", "description": "tyres on gravel"}]


def test_the_session_browser_lists_the_servers_sessions_and_syncs_one(reaper, client, scripts_dir):
    aa, state = panel(reaper, scripts_dir)
    ui = StubUI()
    ui.clicks.add("Sessions on the server")
    aa.panel_frame(state, ui.table(reaper))
    reaper.run_deferred()
    assert client.job["argv"][client.job["argv"].index("client") + 1] == "list-sessions"
    client.send({"type": "sessions", "id": "r", "sessions": [
        {"name": "car chase", "current_version": 3, "event_count": 4}]})
    reaper.run_deferred()
    ui = StubUI()
    ui.clicks.add("car chase (v3, 4 events)")
    aa.panel_frame(state, ui.table(reaper))
    reaper.run_deferred()
    assert session_words(client) == ["get-session", "--session", "car chase"]


def session_words(client: ScriptedClient) -> list[str]:
    argv = client.job["argv"]
    return argv[argv.index("client") + 1:argv.index("--events-file")]


def test_without_reaimgui_the_panel_falls_back_to_the_dialog(reaper, client, scripts_dir):
    reaper.run_script("AudioAgent_Panel.lua", scripts_dir)
    assert reaper.user_input_requests and reaper.user_input_requests[0][0] == "Audio-Agent: generate scene"
    assert any("ReaImGui is not installed" in line for line in reaper.console)
