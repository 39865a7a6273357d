"""The `audio-agent client` path stays lean: a DAW's status poll must not load the protocol models.

server/client.py keeps its own copies of two constants so that it need not import server.protocol
(pydantic models, engine.api); these tests pin the copies to their sources and check, in a fresh
interpreter, that the lean path really leaves the heavy modules unloaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from server import client
from server import protocol as p
from server import websocket

ROOT = Path(__file__).resolve().parents[2]


def test_client_constants_match_the_protocol_and_the_server():
    assert client.PROTOCOL_VERSION == p.PROTOCOL_VERSION
    assert client.CLIENT_MAX_FRAME_BYTES == websocket.CLIENT_MAX_FRAME_BYTES


def test_client_path_does_not_import_the_protocol_models():
    code = (
        "import json, sys\n"
        "import server.commands.client, server.client\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'server', 'engine', 'numpy'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=60)
    loaded = json.loads(result.stdout)
    heavy = [m for m in loaded if m.startswith(("pydantic", "server.protocol", "engine", "numpy"))]
    assert heavy == [], f"the client path imported {heavy}"
