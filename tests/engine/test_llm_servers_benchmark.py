"""benchmarks/llm_servers.py: the skip line without llama-cpp-python, and the tiny GGUF it writes
(the real-server run itself is a benchmark, run by hand: see its docstring)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import llm_servers  # noqa: E402


def test_without_llama_cpp_python_the_benchmark_prints_one_skip_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import now fails, installed or not
    assert llm_servers.main([]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    skipped = json.loads(line)["skipped"]
    assert skipped.startswith("llama-cpp-python is not installed")
    assert "docstring" in skipped


def test_the_tiny_model_is_a_llama_gguf_with_its_tokenizer(tmp_path):
    gguf = pytest.importorskip("gguf")
    path = llm_servers.write_tiny_gguf(tmp_path / "tiny.gguf", n_ctx=4096)
    reader = gguf.GGUFReader(str(path))
    names = {tensor.name for tensor in reader.tensors}
    assert {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"} <= names
    fields = reader.fields
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "llama"
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == len(llm_servers._vocab())
    # Every character JSON needs is one token, so the server's grammar can spell any answer.
    vocab = set(llm_servers._vocab())
    assert set('{}[]":,.-0123456789abcdefghijklmnopqrstuvwxyz') <= vocab
