"""The LLM planner against a real llama-cpp-python server with a tiny model made here (JSON out).

    .venv/bin/python benchmarks/llm_servers.py [--keep DIR] [--n-ctx 16384] [--temperature 1.0]

Needs llama-cpp-python's server and the gguf package, neither of which the project depends on
(llama-cpp-python compiles C++ for 10+ minutes; build it once, outside CI):

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_CUDA=OFF -DLLAMA_BUILD_TESTS=OFF" \\
        .venv/bin/pip install "llama-cpp-python[server]" gguf

Without them it prints one {"skipped": ...} line and exits 0.

What it does: writes a tiny llama-architecture GGUF (2 layers, a character vocabulary, no
download), starts `python -m llama_cpp.server` on a free loopback port, lets the planner plan
one scene with the structured-output ladder from the top, and prints one JSON line per request
the planner sent (response_format rung, max_tokens, status or finish_reason, the answer's
start), then one summary line: the rung that worked, whether the answer the grammar allowed
was schema-valid JSON, and the outcome (a model-made plan, or the planner's one-line reason).

The model is not trained. Its attention and MLP outputs are zero, so the next token depends on
the current one only, through a hand-set table that prefers short strings and short numbers
(small random noise on top). Every bit of JSON structure comes from the server's grammar,
which is the point: the schema the planner sends is what makes a tiny model's answer usable.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODEL_ALIAS = "tiny-planner"
PROMPT = "Rain on a window, then a door closes"
DURATION_S = 8.0

# ----------------------------------------------------------------------------- tiny model
SPECIALS = ["<unk>", "<s>", "</s>"]
# SentencePiece-style vocabulary: printable ASCII (space is U+2581), newline and tab as bytes.
PRINTABLE = ["\u2581" if c == " " else c for c in map(chr, range(0x20, 0x7F))]
BYTES = ["<0x0A>", "<0x09>"]
N_EMBD = 128
N_LAYER = 2
N_HEAD = 4
N_FF = 256


def _vocab() -> list[str]:
    return SPECIALS + PRINTABLE + BYTES


def _bigram_table(vocab: list[str], rng: Any) -> Any:
    """W[next, current]: how much the model wants ``next`` after ``current`` (logit / ~11)."""
    import numpy as np

    index = {tok: i for i, tok in enumerate(vocab)}
    table = rng.normal(0.0, 0.05, size=(len(vocab), len(vocab))).astype(np.float32)

    def prefer(after: str | list[str], tokens: str | list[str], value: float) -> None:
        for a in [after] if isinstance(after, str) else after:
            for t in [tokens] if isinstance(tokens, str) else tokens:
                table[index[t], index[a]] = value

    letters = list("abcdefghijklmnopqrstuvwxyz")
    digits = list("0123456789")
    table[[index["\u2581"], index["<0x0A>"], index["<0x09>"]], :] = -1.0  # no whitespace
    prefer(list(index), "</s>", 0.9)  # end as soon as the grammar allows it
    prefer(":", digits[:8], 0.45)  # a number starts with a small digit
    prefer(":", "-", -1.0)
    prefer(digits, [",", "}", "]"], 0.6)  # and stops after one or two
    prefer(digits, ".", 0.3)
    prefer(digits, digits, -0.3)
    prefer(".", digits, 0.45)
    prefer('"', letters, 0.5)  # a string opens with a letter
    prefer(letters, '"', 0.5)  # and closes soon
    prefer(letters, letters, 0.35)
    prefer("}", "]", 0.5)  # one event is enough
    prefer("}", ",", 0.1)
    return table


def write_tiny_gguf(path: Path, *, n_ctx: int, seed: int = 0) -> Path:
    """A 2-layer llama GGUF with its tokenizer, written with the gguf package."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(seed)
    vocab = _vocab()
    n_vocab = len(vocab)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("audio-agent tiny planner (untrained)")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab)
    writer.add_token_scores([0.0] * len(SPECIALS) + [-1.0] * (n_vocab - len(SPECIALS)))
    types = ([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
             + [gguf.TokenType.NORMAL] * len(PRINTABLE) + [gguf.TokenType.BYTE] * len(BYTES))
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)

    # Embeddings: one dimension per token (plus noise), so the residual stream names the
    # current token; the output matrix then reads the bigram table off it.
    embed = rng.normal(0.0, 0.01, size=(n_vocab, N_EMBD)).astype(np.float32)
    embed[np.arange(n_vocab), np.arange(n_vocab) % N_EMBD] += 1.0
    output = np.zeros((n_vocab, N_EMBD), dtype=np.float32)
    table = _bigram_table(vocab, rng)
    for current in range(n_vocab):
        output[:, current % N_EMBD] += table[:, current]
    writer.add_tensor("token_embd.weight", embed)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output)
    for layer in range(N_LAYER):
        def random(*shape: int) -> Any:
            return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.attn_q.weight", random(N_EMBD, N_EMBD))
        writer.add_tensor(f"{prefix}.attn_k.weight", random(N_EMBD, N_EMBD))
        writer.add_tensor(f"{prefix}.attn_v.weight", random(N_EMBD, N_EMBD))
        # Zero outputs: attention and MLP run, but leave the residual stream as it was.
        writer.add_tensor(f"{prefix}.attn_output.weight", np.zeros((N_EMBD, N_EMBD), np.float32))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", random(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.weight", random(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_down.weight", np.zeros((N_EMBD, N_FF), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


# ----------------------------------------------------------------------------- server
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llama_cpp_server(model: Path, *, n_ctx: int, log_path: Path) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free loopback port; yields its /v1 base URL."""
    port = _free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
               "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
               "--n_ctx", str(n_ctx), "--chat_format", "chatml", "--n_threads", "2"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the server exited ({process.returncode}); see {log_path}")
                try:
                    urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the server did not start in 120 s; see {log_path}")
                    time.sleep(0.5)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


# ----------------------------------------------------------------------------- recording
class _Recorder:
    """Wraps an openai client: every chat request the planner sends, and what came back."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[dict[str, Any]] = []
        self.answers: list[str] = []  # whole answers (the printed records keep 200 chars)
        self.chat = self  # client.chat.completions.create -> self.create
        self.completions = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create(self, **kwargs: Any) -> Any:
        record: dict[str, Any] = {"rung": _rung(kwargs.get("response_format")),
                                  "max_tokens": kwargs.get("max_tokens")}
        started = time.perf_counter()
        try:
            completion = self._client.chat.completions.create(**kwargs)
        except Exception as error:
            record["status"] = getattr(error, "status_code", None)
            record["error"] = " ".join(str(getattr(error, "message", error)).split())[:160]
            raise
        finally:
            record["seconds"] = round(time.perf_counter() - started, 3)
            self.calls.append(record)
        choice = completion.choices[0]
        record["status"] = 200
        record["finish_reason"] = choice.finish_reason
        record["answer"] = (choice.message.content or "")[:200]
        self.answers.append(choice.message.content or "")
        return completion


def _rung(fmt: Any) -> str:
    if not isinstance(fmt, dict):
        return "plain"
    if fmt.get("type") == "json_object":
        return "json_object_schema" if "schema" in fmt else "json_object"
    return str(fmt.get("type"))


def _schema_valid(text: str, schema: dict[str, Any]) -> bool | None:
    """Does the answer match the plan schema (jsonschema when installed, else None)?"""
    try:
        import jsonschema
    except ImportError:
        return None
    from engine.planners.llm_parse import extract_json

    try:
        jsonschema.validate(extract_json(text), schema)
    except Exception:
        return False
    return True


# ----------------------------------------------------------------------------- main
def _missing() -> str | None:
    for module, why in (("llama_cpp", "llama-cpp-python"), ("llama_cpp.server.app", "its server"
                        " extra (pip install 'llama-cpp-python[server]')"), ("gguf", "gguf")):
        try:
            __import__(module)
        except ImportError as error:
            return f"{why} is not installed ({error}); see this file's docstring to build it"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from engine.errors import PlannerError
    from engine.plan import DEFAULT_LIMITS
    from engine.planners.llm import LLMPlanner, LLMSettings
    from engine.planners.llm_config import create_openai_client
    from engine.planners.llm_parse import plan_schema

    folder = Path(args.keep or tempfile.mkdtemp(prefix="llm-servers-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    model = write_tiny_gguf(folder / "tiny-planner.gguf", n_ctx=args.n_ctx, seed=args.seed)
    summary: dict[str, Any] = {"model": str(model), "model_bytes": model.stat().st_size}
    with llama_cpp_server(model, n_ctx=args.n_ctx, log_path=folder / "server.log") as base_url:
        summary["server_start_s"] = round(time.perf_counter() - started, 2)
        settings = LLMSettings(
            base_url=base_url, model=MODEL_ALIAS, variant="plain", temperature=args.temperature,
            max_retries=0, timeout_s=300.0, context_tokens=args.n_ctx,
            endpoint_cache=Path(os.devnull), fallback=False,
        )
        recorder = _Recorder(create_openai_client(settings))
        planner = LLMPlanner(settings=settings, client=recorder, fallback=False)
        plan_started = time.perf_counter()
        try:
            result = planner.plan(PROMPT, duration_s=DURATION_S)
            outcome: dict[str, Any] = {
                "outcome": "model-made plan", "notes": list(result.notes),
                "plan": result.plan.model_dump(mode="json"),
            }
        except PlannerError as error:
            outcome = {"outcome": "no plan", "reason": str(error)}
        summary["plan_s"] = round(time.perf_counter() - plan_started, 2)
    for number, call in enumerate(recorder.calls, 1):
        print(json.dumps({"request": number, **call}))
    answered = [c for c in recorder.calls if c.get("status") == 200]
    schema = plan_schema(with_loudness=False, limits=DEFAULT_LIMITS)
    summary.update({
        "server": "llama-cpp-python " + _version("llama_cpp"),
        "rung_that_worked": answered[0]["rung"] if answered else None,
        "refused_requests": sum(1 for c in recorder.calls if c.get("status") != 200),
        "answers_schema_valid": [_schema_valid(text, schema) for text in recorder.answers],
        **outcome,
    })
    return summary


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default=None, help="folder for the model and server log")
    parser.add_argument("--n-ctx", type=int, default=16384,
                        help="server context (the character vocabulary makes prompts long)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the tiny model's noise")
    args = parser.parse_args(argv)
    missing = _missing()
    if missing:
        print(json.dumps({"skipped": missing}))
        return 0
    print(json.dumps({"summary": run(args)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
