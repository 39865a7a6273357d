"""The vision-model path, over HTTP through the real openai client to a scripted local server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.planners.llm_config import LLMSettings
from engine.video.cue import plan_from_video


class _Script:
    def __init__(self, status: int, answer: str) -> None:
        self.status, self.answer, self.requests = status, answer, []


def _handler(script: _Script):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.requests.append((self.path, body))
            payload = {
                "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": script.answer}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            data = json.dumps(payload if script.status == 200 else {"error": {"message": "down"}}).encode()
            self.send_response(script.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def vision_server():
    servers = []

    def start(status: int, answer: str):
        script = _Script(status, answer)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        settings = LLMSettings(base_url=f"http://127.0.0.1:{server.server_port}/v1", model="vision-test",
                               timeout_s=10, max_retries=0)
        return script, settings

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_model_names_hits_and_they_land_on_detected_onsets(flash_video, vision_server):
    path, truth = flash_video
    answer = json.dumps({
        "hits": [
            {"onset": 0, "description": "a boot heel on wet concrete"},
            {"time_s": 0.6, "description": "a paper bag thump"},  # snapped back to the 0.48 s flash
            {"time_s": 1.2, "description": "a lamp switch click"},  # snapped to the 1.28 s flash
        ],
        "beds": [{"start_s": 0.0, "end_s": 3.0, "description": "distant city hum"}],
    })
    script, settings = vision_server(200, "Here you go:\n```json\n" + answer + "\n```")
    result = plan_from_video(path, start_s=0.0, end_s=3.0, hint="steps", planner=settings)
    assert result.planner == "video-llm" and not result.fell_back
    by_text = {e.description: e for e in result.plan.events}
    assert by_text["a boot heel on wet concrete"].start_s == pytest.approx(truth[0], abs=1e-6)
    assert by_text["a lamp switch click"].start_s == pytest.approx(truth[1], abs=1e-6)
    assert by_text["a paper bag thump"].start_s == pytest.approx(truth[0], abs=1e-6)
    assert by_text["distant city hum"].end_s == 3.0
    (path_sent, body), = script.requests
    assert path_sent.endswith("/chat/completions") and body["model"] == "vision-test"
    content = body["messages"][1]["content"]
    images = [part for part in content if part["type"] == "image_url"]
    assert 1 <= len(images) <= 6
    assert all(part["image_url"]["url"].startswith("data:image/jpeg;base64,") for part in images)
    assert "0: t=0.48 s" in content[0]["text"] and "steps" in content[0]["text"]


def test_failing_model_falls_back_to_the_onset_plan(flash_video, vision_server):
    path, truth = flash_video
    _, settings = vision_server(500, "")
    result = plan_from_video(path, start_s=0.0, end_s=3.0, planner=settings)
    assert result.fell_back and result.planner == "video-onsets"
    assert any("vision model failed" in note for note in result.notes)
    assert sorted(e.start_s for e in result.plan.events) == pytest.approx(truth, abs=0.041)


def test_answer_without_events_falls_back(flash_video, vision_server):
    path, _ = flash_video
    _, settings = vision_server(200, "I cannot see any sound here.")
    result = plan_from_video(path, start_s=0.0, end_s=3.0, planner=settings)
    assert result.fell_back


def test_llm_without_any_endpoint_falls_back_without_dialing(flash_video, monkeypatch):
    for name in ("AUDIO_AGENT_LLM_BASE_URL", "OPENAI_BASE_URL", "AUDIO_AGENT_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    path, _ = flash_video
    result = plan_from_video(path, start_s=0.0, end_s=3.0, planner="llm")
    assert result.fell_back and "no endpoint or key configured" in " ".join(result.notes)


def test_session_planner_objects_are_understood(flash_video, vision_server):
    from engine.planners.rules import RulePlanner

    path, truth = flash_video
    offline = plan_from_video(path, start_s=0.0, end_s=3.0, planner=RulePlanner())
    assert offline.planner == "video-onsets" and not offline.fell_back

    from engine.planners.llm import LLMPlanner

    _, settings = vision_server(200, json.dumps({"hits": [{"onset": 1, "description": "a cup set down"}]}))
    result = plan_from_video(path, start_s=0.0, end_s=3.0, planner=LLMPlanner(settings=settings))
    assert [(e.description, e.start_s) for e in result.plan.events] == [("a cup set down", pytest.approx(truth[1]))]


def test_untidy_answers_are_cleaned_not_trusted(flash_video, vision_server):
    path, truth = flash_video
    answer = json.dumps({
        "hits": [
            {"onset": 2, "description": "a very long " + "metal " * 120 + "clang"},
            {"time_s": "NaN", "description": "nothing"},
            {"onset": 99, "time_s": None, "description": "out of range"},
            "not an object",
        ],
        "beds": [{"start_s": 0, "description": "no end"}, {"start_s": 0.5, "end_s": 9.0, "description": "wind"}],
    })
    _, settings = vision_server(200, answer)
    result = plan_from_video(path, start_s=0.0, end_s=3.0, planner=settings)
    assert result.planner == "video-llm"
    long_hit = next(e for e in result.plan.events if e.description.startswith("a very long"))
    wind = next(e for e in result.plan.events if e.description == "wind")
    assert long_hit.start_s == pytest.approx(truth[2]) and len(long_hit.description) <= 300
    assert (wind.start_s, wind.end_s) == (0.5, 3.0)  # clipped to the cue
    assert len(result.plan.events) == 2


def test_llm_by_name_reads_the_environment(flash_video, vision_server, monkeypatch):
    path, truth = flash_video
    script, settings = vision_server(200, json.dumps({"hits": [{"onset": 3, "description": "a stone drop"}]}))
    monkeypatch.setenv("AUDIO_AGENT_LLM_BASE_URL", settings.base_url)
    monkeypatch.setenv("AUDIO_AGENT_LLM_MODEL", "env-vision-model")
    result = plan_from_video(path, start_s=0.0, end_s=3.0, planner="llm")
    assert result.planner == "video-llm"
    assert [(e.description, e.start_s) for e in result.plan.events] == [("a stone drop", pytest.approx(truth[3]))]
    assert script.requests[0][1]["model"] == "env-vision-model"
