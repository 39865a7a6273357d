"""server/protocol/ with no sockets: parsing, errors naming fields, encoding, OSC arg lists."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.errors import BusyError, CancelledError, GeneratorError, NotFoundError, PlanValidationError
from engine.manifest import Manifest
from engine.session_views import SessionInfo
from server import protocol as p

ROOT = Path(__file__).resolve().parents[2]
EMPTY = Manifest(duration_s=1.0, sample_rate=48000, events=[])


def gen(**fields):
    base = {"v": 1, "type": "generate", "id": "r1", "session": "s", "prompt": "rain", "duration_s": 5}
    base.update(fields)
    return json.dumps(base)


def error_of(data) -> p.ProtocolError:
    with pytest.raises(p.ProtocolError) as caught:
        p.parse_request(data)
    return caught.value


def test_generate_parses_with_defaults_and_round_trips():
    request = p.parse_request(gen(anchor_s=12.5, notify_osc_port=9001))
    assert isinstance(request, p.GenerateRequest)
    assert (request.session, request.prompt, request.duration_s, request.anchor_s) == ("s", "rain", 5.0, 12.5)
    assert request.notify_osc_port == 9001
    assert p.parse_request(p.encode(request)) == request


@pytest.mark.parametrize("kind,fields", [
    ("edit", {"session": "s", "instruction": "make the rain heavier"}),
    ("edit", {"session": "s", "change": {"op": "move", "event_id": "e2", "start_s": 3.0}}),
    ("undo", {"session": "s"}), ("redo", {"session": "s"}), ("cancel", {"job": "j1"}),
    ("get_session", {"session": "s"}), ("list_sessions", {}), ("ping", {}),
    ("video_cue", {"session": "s", "video_path": "/v.mp4", "start_s": 1, "end_s": 3, "anchor_s": 0}),
])
def test_every_request_type_parses(kind, fields):
    request = p.parse_request(json.dumps({"v": 1, "type": kind, "id": "x", **fields}))
    assert request.type == kind and request.id == "x"


@pytest.mark.parametrize("data,code,field", [
    ("{not json", "bad_json", None),
    ('{"v":1,"type":"ping","id":"a","x":NaN}', "bad_json", None),
    ("[1, 2]", "bad_request", None),
    ('{"type":"ping","id":"a"}', "bad_request", "v"),
    ('{"v":2,"type":"ping","id":"a"}', "unsupported_version", "v"),
    ('{"v":1,"type":"explode","id":"a"}', "unknown_type", "type"),
    ('{"v":1,"id":"a"}', "unknown_type", "type"),
    ('{"v":1,"type":"ping","id":"a","colour":"red"}', "unknown_field", "colour"),
    (gen(duration_s=-1), "invalid_input", "duration_s"),
    (gen(duration_s=0), "invalid_input", "duration_s"),
    (gen(duration_s=1e9), "invalid_input", "duration_s"),
    (gen(duration_s="ten"), "invalid_input", "duration_s"),
    (gen(prompt=""), "invalid_input", "prompt"),
    (gen(prompt="x" * (p.MAX_PROMPT_CHARS + 1)), "invalid_input", "prompt"),
    (gen(session=""), "invalid_input", "session"),
    (gen(session="a\x00b"), "invalid_input", "session"),
    (gen(session="n" * 129), "invalid_input", "session"),
    (gen(notify_osc_port=70000), "invalid_input", "notify_osc_port"),
    ('{"v":1,"type":"edit","id":"a","session":"s"}', "invalid_input", "instruction"),
    ('{"v":1,"type":"edit","id":"a","session":"s","change":{"op":"spin"}}', "invalid_input", "change.op"),
    ('{"v":1,"type":"edit","id":"a","session":"s","change":{"op":"move","x":1}}', "unknown_field", "change.x"),
    ('{"v":1,"type":"video_cue","id":"a","session":"s","video_path":"v","start_s":3,"end_s":1}',
     "invalid_input", "end_s"),
])
def test_bad_requests_name_code_and_field(data, code, field):
    error = error_of(data)
    assert (error.code, error.field) == (code, field)
    assert error.message


def test_error_keeps_the_request_id_when_it_can():
    assert error_of(gen(duration_s=-1)).request_id == "r1"
    reply = p.error_message(error_of(gen(duration_s=-1)))
    assert (reply.id, reply.code, reply.field) == ("r1", "invalid_input", "duration_s")


def test_frame_size_limit():
    big = gen(prompt="x" * 10) + " " * p.MAX_FRAME_BYTES
    assert error_of(big).code == "too_large"
    assert error_of(big.encode()).code == "too_large"


def test_engine_errors_map_through_one_table():
    cases = [
        (PlanValidationError("bad", field="events[0].end_s"), "invalid_plan", "events[0].end_s"),
        (GeneratorError("oom"), "generator_failed", None), (CancelledError("stop"), "cancelled", None),
        (NotFoundError("no", field="session"), "not_found", "session"), (BusyError("full"), "busy", None),
    ]
    for error, code, field in cases:
        message = p.error_message(error, request_id="q", job="j")
        assert (message.code, message.field, message.id, message.job) == (code, field, "q", "j")
    assert set(p.WIRE_CODES) >= {"internal", "invalid_input", "timeout", "busy", "not_found"}
    hidden = p.error_message(RuntimeError("secret /etc/path"))
    assert hidden.code == "internal" and "secret" not in hidden.message


def test_encode_refuses_nan_and_emits_v():
    text = p.encode(p.Progress(id="a", job="j", stage="render", fraction=0.5))
    assert json.loads(text) == {"v": 1, "id": "a", "type": "progress", "job": "j", "stage": "render", "fraction": 0.5}
    with pytest.raises(ValueError):
        p.encode(p.Progress(id="a", job="j", stage="render", fraction=math.nan))


def test_osc_requests_follow_the_contract_arg_lists():
    request, port = p.request_from_osc("/audioagent/generate", ["r", "s", "rain", 4, 2.5, 9001])
    assert (request.type, request.duration_s, request.anchor_s, port) == ("generate", 4.0, 2.5, 9001)
    request, port = p.request_from_osc("/audioagent/generate", ["r", "s", "rain", 4.0])
    assert (request.anchor_s, port) == (0.0, 0)
    request, port = p.request_from_osc("/audioagent/edit", ["r", "s", "louder rain", 0])
    assert (request.instruction, port) == ("louder rain", 0)
    assert p.request_from_osc("/audioagent/cancel", ["r", "j1", 7])[0].job == "j1"
    assert p.request_from_osc("/audioagent/ping", [5, 7])[0].id == "5"
    request, port = p.request_from_osc("/audioagent/request", [json.dumps({"v": 1, "type": "undo", "id": "u", "session": "s"}), 9])
    assert (request.type, port) == ("undo", 9)


@pytest.mark.parametrize("address,args,field", [
    ("/audioagent/generate", ["r", "s", "rain", "ten", 0.0, 1], "duration_s"),
    ("/audioagent/generate", ["r", "s", "rain", math.nan, 0.0, 1], "duration_s"),
    ("/audioagent/generate", ["r", "s", "rain", math.inf], "duration_s"),
    ("/audioagent/generate", ["r", "s", 3, 4.0], "prompt"),
    ("/audioagent/generate", ["r", "s"], "prompt"),
    ("/audioagent/generate", ["r", "s", "rain", 4.0, 0.0, 1.5], "reply_port"),
    ("/audioagent/ping", ["r", True], "reply_port"),
    ("/audioagent/ping", ["r", 1, 2], "args"),
    ("/audioagent/explode", ["r"], "address"),
    ("/other/ping", ["r"], "address"),
])
def test_osc_wrong_types_are_named(address, args, field):
    with pytest.raises(p.ProtocolError) as caught:
        p.request_from_osc(address, args)
    assert caught.value.field == field


def test_server_messages_to_osc_match_the_contract():
    stem = p.StemReady(id="r", job="j", session="s", version=2, event_id="e1", description="rain",
                       stem_path="/d/e1.wav", start_s=1.0, end_s=3.0, target_lufs=-20.0, gain_db=-1.5,
                       cache_hit=True, change="regained")
    assert p.message_to_osc(stem) == ("/audioagent/stem_ready", [
        "r", "s", 2, "e1", "/d/e1.wav", 1.0, 3.0, -1.5, -20.0, 1, "regained", "rain"])
    assert p.message_to_osc(p.Accepted(id="r", job="j")) == ("/audioagent/accepted", ["r", "j"])
    assert p.message_to_osc(p.Progress(id="r", job="j", stage="render", fraction=0.25)) == (
        "/audioagent/progress", ["r", "j", "render", 0.25])
    address, args = p.message_to_osc(p.Done(id="r", job="j", session="s", version=3, manifest=EMPTY))
    assert address == "/audioagent/done" and args[:3] == ["r", "s", 3]
    assert json.loads(args[3]) == EMPTY.model_dump(mode="json")
    assert p.message_to_osc(p.ErrorMessage(id="r", code="busy", message="full")) == (
        "/audioagent/error", ["r", "busy", "full", ""])
    address, args = p.message_to_osc(p.Pong(id="r", server_version="1", stem_root="/d", planner="rules", backend="x"))
    assert address == "/audioagent/pong" and json.loads(args[1])["stem_root"] == "/d"
    for message in (stem, p.Accepted(id="r", job="j")):
        assert p.osc_to_message(*p.message_to_osc(message))["id"] == "r"


def test_schema_file_is_current():
    """docs/protocol.schema.json is generated; regenerate with the command in the message."""
    result = subprocess.run([sys.executable, "-m", "server.protocol", "--schema"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    on_disk = (ROOT / "docs" / "protocol.schema.json").read_text(encoding="utf-8")
    assert result.stdout == on_disk, "run: python -m server.protocol --schema > docs/protocol.schema.json"
    schema = json.loads(on_disk)
    assert "GenerateRequest" in json.dumps(schema["requests"]) and "StemReady" in json.dumps(schema["server_messages"])


def test_positions_allow_long_timelines_but_not_negative():
    request = p.parse_request(gen(anchor_s=7200.0))  # two hours into a film reel
    assert request.anchor_s == 7200.0
    assert error_of(gen(anchor_s=-0.5)).field == "anchor_s"


def test_deeply_nested_json_is_bad_json_not_a_crash():
    deep = "[" * 30_000 + "]" * 30_000  # under the frame limit, far past the parser's depth
    assert len(deep) < p.MAX_FRAME_BYTES
    error = error_of(deep)
    assert error.code == "bad_json" and "nested" in error.message
    nested = '{"v":1,"type":"ping","id":"a","x":' + "[" * 5000 + "]" * 5000 + "}"
    assert error_of(nested).code == "bad_json"


def _doc_osc_tables() -> tuple[dict[str, list[str]], dict[str, str], Any]:
    """docs/protocol.md's OSC tables: request address -> argument names; reply address -> cell."""
    import re

    section = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8").split("## OSC mapping", 1)[1]
    requests_part, replies_part = section.split("Replies (", 1)

    def rows(part: str) -> dict[str, str]:
        out = {}
        for line in part.splitlines():
            if line.startswith("| `/audioagent/"):
                first, second = line.split("|")[1:3]
                for kind in re.findall(r"`/audioagent/(\w+)`", first):
                    out[kind] = second
        return out

    def names(cell: str) -> list[str]:
        return re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", cell))  # remarks in (...) are not args

    requests = {kind: names(cell) for kind, cell in rows(requests_part).items()}
    return requests, {kind: cell for kind, cell in rows(replies_part).items()}, names


def test_protocol_doc_lists_every_message_and_the_exact_osc_arguments():
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    server_types = [m.model_fields["type"].default for m in (
        p.Accepted, p.PlanMessage, p.Progress, p.StemReady, p.Done, p.ErrorMessage, p.Pong,
        p.SessionMessage, p.SessionsMessage, p.CancelAck, p.AuthOk)]
    for kind in [*p.REQUEST_TYPES, *server_types]:
        assert f"`{kind}`" in doc, kind
    requests, replies, names_in = _doc_osc_tables()
    assert requests == {kind: [name for name, _ in spec] for kind, spec in p.OSC_REQUEST_ARGS.items()}
    samples = [
        p.Accepted(id="r", job="j"), p.Progress(id="r", job="j", stage="generate", fraction=0.5),
        p.PlanMessage(id="r", job="j", session="s", version=2, duration_s=1.0, events=[], diff={}),
        p.StemReady(id="r", job="j", session="s", version=2, event_id="e1", description="d", stem_path="/x.wav",
                    start_s=1.0, end_s=2.0, target_lufs=-20.0, gain_db=-1.5, cache_hit=True, change="moved"),
        p.Done(id="r", job="j", session="s", version=2, manifest=EMPTY),
        p.ErrorMessage(id="r", code="busy", message="full", field="queue"),
        p.Pong(id="r", server_version="1", stem_root="/d", planner="rules", backend="procedural"),
        p.SessionMessage(id="r", session="s", info=SessionInfo(
            name="s", current_version=0, plan=None, manifest=None, history=[], versions=[], planner="",
            backend="", anchor_s=0.0, created=0.0, updated=0.0, can_undo=False, can_redo=False)),
        p.SessionsMessage(id="r", sessions=[]),
        p.CancelAck(id="r", job="j", state="queued"), p.AuthOk(id="r"),
    ]
    for message in samples:
        address, args = p.message_to_osc(message)
        cell = replies[address[len(p.OSC_PREFIX):]]
        if "the whole message as JSON" in cell:
            assert len(args) == 2 and json.loads(args[1])["type"] == message.type
            continue
        names = names_in(cell)
        assert len(names) == len(args), address
        data = message.model_dump(mode="json")
        for name, value in zip(names, args):  # the documented order is the order sent
            if name in data:
                expected = data[name] if data[name] is not None else ""
                assert value == (int(expected) if isinstance(expected, bool) else expected), (address, name)
    # The reply table is what the doc lists, name for name.
    for kind, cell in replies.items():
        if "the whole message as JSON" not in cell:
            assert names_in(cell) == [arg.name for arg in p.reply_args(kind)], kind


def test_osc_video_cue_names_a_checkpoint_and_lambda_as_trailing_arguments():
    address = "/audioagent/video_cue"
    request, port = p.request_from_osc(address, ["c", "s", "/v.mp4", 1, 2.5])
    assert (request.type, request.start_s, request.end_s, request.anchor_s, port) == ("video_cue", 1.0, 2.5, 0.0, 0)
    assert (request.generator, request.checkpoint, request.vta_lambda, request.hint) == ("text", None, None, None)
    request, port = p.request_from_osc(address, ["c", "s", "/v.mp4", 1.0, 2.5, 30.0, "claps", "foley", 0.7, 9001])
    assert (request.anchor_s, request.hint, request.generator, request.checkpoint, request.vta_lambda, port) == (
        30.0, "claps", "vta", "foley", 0.7, 9001)
    # "" skips an optional string or number to reach a later argument.
    request, port = p.request_from_osc(address, ["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", "foley", "", 9001])
    assert (request.hint, request.generator, request.checkpoint, request.vta_lambda, port) == (
        None, "vta", "foley", None, 9001)
    request, _ = p.request_from_osc(address, ["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", ""])
    assert (request.generator, request.checkpoint) == ("text", None)
    # An integer lambda followed by a reply port is not ambiguous: every argument is there.
    assert p.request_from_osc(address, ["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", "foley", 1, 9001])[0].vta_lambda == 1.0
    # Over OSC, as over WebSocket, a checkpoint is a name, never a path.
    with pytest.raises(p.ProtocolError) as path:
        p.request_from_osc(address, ["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", "/models/vta", 0.5, 9001])
    assert path.value.field == "checkpoint" and path.value.reply_port == 9001


@pytest.mark.parametrize("args,field", [
    (["c", "s", "/v.mp4", 1.0, 2.5, 9001], "anchor_s"),  # anchor at 9001 s, or reply to 9001?
    (["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", "foley", 1], "vta_lambda"),  # lambda 1, or port 1?
])
def test_osc_video_cue_refuses_an_integer_that_could_be_the_reply_port(args, field):
    with pytest.raises(p.ProtocolError) as caught:
        p.request_from_osc("/audioagent/video_cue", args)
    error = caught.value
    assert error.field == field and error.request_id == "c"
    assert "ambiguous" in str(error) and f"send {field} as a float" in str(error)
    # The same number as a float is unambiguous.
    request, port = p.request_from_osc("/audioagent/video_cue", [*args[:-1], float(args[-1])])
    assert port == 0 and getattr(request, field) == float(args[-1])


@pytest.mark.parametrize("args,field", [
    (["c", "s", "/v.mp4", 1.0, 2.5, 0.0, 3, "foley"], "hint"),
    (["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", 7], "checkpoint"),
    (["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", "foley", "loud", 0], "vta_lambda"),
    (["c", "s", "/v.mp4", 1.0, 2.5, 0.0, "", "foley", 0.5, 0, "extra"], "args"),
    (["c", "s", "/v.mp4", 1.0], "end_s"),
])
def test_osc_video_cue_wrong_types_are_named(args, field):
    with pytest.raises(p.ProtocolError) as caught:
        p.request_from_osc("/audioagent/video_cue", args)
    assert caught.value.field == field


def test_pong_lists_the_vta_checkpoint_names_in_json_and_over_osc():
    pong = p.Pong(id="r", server_version="1", stem_root="/d", planner="rules", backend="x",
                  vta_checkpoints=["foley", "impacts"])
    assert p.parse_server_message(p.encode(pong)).vta_checkpoints == ["foley", "impacts"]
    address, args = p.message_to_osc(pong)
    assert json.loads(args[1])["vta_checkpoints"] == ["foley", "impacts"]
    # Older servers sent no such field: a client reading one gets an empty list.
    bare = p.Pong.model_validate({"type": "pong", "server_version": "1", "stem_root": "/d", "planner": "rules",
                                  "backend": "x"})
    assert bare.vta_checkpoints == []
