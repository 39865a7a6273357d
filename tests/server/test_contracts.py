"""Contracts between the server and the code that talks to it without importing it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from server import protocol as p

ROOT = Path(__file__).resolve().parents[2]
LIVE_SCRIPT = ROOT / "daw_scripts" / "ableton" / "AudioAgent" / "surface.py"


def _tuple_constant(path: Path, name: str) -> list[str]:
    """A module-level ``NAME = ("a", "b", ...)`` read with ast (the Live script imports Live)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, (tuple, list)), f"{name} is not a literal list"
            return list(value)
    raise AssertionError(f"{path}: no {name} = (...) found")


def test_live_script_reads_stem_ready_in_the_order_the_server_sends() -> None:
    live = _tuple_constant(LIVE_SCRIPT, "STEM_ARGS")
    assert live == [arg.name for arg in p.OSC_REPLY_ARGS["stem_ready"]]
    message = p.StemReady(id="r", job="j", session="s", version=2, event_id="e1", description="d",
                          stem_path="/x.wav", start_s=1.0, end_s=2.0, target_lufs=-20.0, gain_db=-1.5,
                          cache_hit=True, change="moved")
    address, args = p.message_to_osc(message)
    sent = dict(zip(live, args))
    assert (sent["event_id"], sent["stem_path"], sent["gain_db"], sent["cache_hit"]) == ("e1", "/x.wav", -1.5, 1)
    assert p.osc_to_message(address, args)["cache_hit"] is True


@pytest.mark.parametrize("kind", sorted(p.OSC_REPLY_ARGS))
def test_every_reply_round_trips_through_its_table_row(kind: str) -> None:
    samples = {
        "accepted": p.Accepted(id="r", job="j"),
        "progress": p.Progress(id="r", job="j", stage="render", fraction=0.5),
        "plan": p.PlanMessage(id="r", job="j", session="s", version=1, duration_s=2.0, events=[],
                              diff={"e1": "removed"}),
        "stem_ready": p.StemReady(id="r", job="j", session="s", version=2, event_id="e1", description="d",
                                  stem_path="/x.wav", start_s=1.0, end_s=2.0, target_lufs=-20.0,
                                  gain_db=-1.5, cache_hit=False, change="added"),
        "done": p.Done(id="r", job="j", session="s", version=1, manifest={
            "duration_s": 1.0, "sample_rate": 48000, "events": []}),
        "error": p.ErrorMessage(id="r", code="busy", message="full"),
    }
    message = samples[kind]
    address, args = p.message_to_osc(message)
    assert len(args) == len(p.OSC_REPLY_ARGS[kind])
    back = p.osc_to_message(address, args)
    expected = message.model_dump(mode="json")
    for key, value in back.items():
        if key in expected:
            assert value == expected[key], key


def test_connection_state_machine_without_sockets() -> None:
    """Auth rules as strings in, decisions out (server.protocol.connection)."""
    ping = '{"v":1,"type":"ping","id":"p"}'
    open_connection = p.Connection(token=None)
    assert open_connection.state is p.State.OPEN
    assert isinstance(open_connection.receive(ping).request, p.PingRequest)

    guarded = p.Connection(token="s3cret")
    assert guarded.state is p.State.AWAITING_AUTH
    refused = guarded.receive(ping)
    assert refused.request is None and refused.replies[0].code == "unauthorized"
    assert guarded.state is p.State.CLOSING
    assert guarded.receive('{"v":1,"type":"auth","token":"s3cret"}').replies == []  # closing stays closed

    good = p.Connection(token="s3cret")
    assert isinstance(good.receive('{"v":1,"type":"auth","id":"a","token":"s3cret"}').replies[0], p.AuthOk)
    assert good.state is p.State.OPEN and good.receive(ping).request is not None
    bad_json = good.receive("{nope")
    assert bad_json.replies[0].code == "bad_json" and good.state is p.State.OPEN  # authed: stays open

    wrong = p.Connection(token="s3cret")
    assert wrong.receive('{"v":1,"type":"auth","token":"guess"}').replies[0].code == "unauthorized"
    assert wrong.state is p.State.CLOSING
    assert p.Connection(token="s3cret", authenticated=True).state is p.State.OPEN
