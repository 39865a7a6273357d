"""CLAP semantic search with a tiny random ClapModel saved and loaded through the real loader.

A random model ranks nothing meaningfully, so the tests check the plumbing that a real model
relies on: vectors per file and model, the cosine ranking (with a planted vector), the blend
into search scores, the CLI, and clear errors for a bad model source."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InvalidInputError
from engine.library.backend import LibraryGenerator
from engine.library.search import search
from engine.library.semantic import ClapEmbedder, SemanticIndex
from engine.library.store import LibraryIndex
from engine.generators import GenerationRequest


def build_tiny_clap(root: Path) -> Path:
    import torch
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, ClapTextConfig

    from tests.engine.tiny_models import roberta_tokenizer

    torch.manual_seed(0)
    tokenizer = roberta_tokenizer()
    model = ClapModel(ClapConfig(
        text_config=ClapTextConfig(
            bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16, intermediate_size=32,
            num_attention_heads=2, num_hidden_layers=1, vocab_size=len(tokenizer) + 8, projection_dim=16,
        ),
        # A 1 s feature window (101 frames x 64 mel bins) stretched onto a 128 x 128 Swin grid:
        # the real model's layout (10 s onto 256 x 256) at a size a CPU test can afford.
        audio_config=ClapAudioConfig(
            spec_size=128, window_size=4, num_mel_bins=64, intermediate_size=37, depths=[1, 1],
            num_attention_heads=[2, 2], num_hidden_layers=2, hidden_size=32, patch_embeds_hidden_size=16,
            projection_dim=16, patch_size=4, patch_stride=4, patch_embed_input_channels=4,
        ),
        projection_dim=16,
    ))
    model.save_pretrained(root)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(max_length_s=1), tokenizer=tokenizer).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory) -> Path:
    return build_tiny_clap(tmp_path_factory.mktemp("clap") / "tiny-clap")


@pytest.fixture()
def embedded(built: LibraryIndex, clap_dir: Path) -> SemanticIndex:
    semantic = SemanticIndex(built, ClapEmbedder(clap_dir))
    done, failures = semantic.update()
    assert (done, failures) == (built.count(), [])
    return semantic


def test_vectors_are_stored_once_per_file_and_model(embedded: SemanticIndex, built: LibraryIndex) -> None:
    rows = built.db.execute("SELECT model, length(vector) FROM vectors").fetchall()
    assert len(rows) == built.count() and {r[0] for r in rows} == {str(embedded.embedder.name)}
    assert {r[1] for r in rows} == {16 * 4}  # projection_dim float32s
    assert embedded.update() == (0, [])  # nothing left to embed


def test_similarity_ranks_by_cosine(embedded: SemanticIndex, built: LibraryIndex) -> None:
    text = "rain on pavement"
    planted = built.db.execute("SELECT id FROM files ORDER BY id DESC LIMIT 1").fetchone()[0]
    built.db.execute("UPDATE vectors SET vector = ? WHERE file_id = ?",
                     (embedded.embedder.embed_text([text])[0].tobytes(), planted))
    built.commit()  # a new generation: the cached matrix is reloaded
    similar = embedded.similar(text, limit=3)
    assert list(similar)[0] == planted and similar[planted] == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= value <= 1.0 for value in similar.values()) and len(similar) == 3


def test_search_blends_clap_scores(embedded: SemanticIndex, built: LibraryIndex) -> None:
    plain = search(built, "heavy wooden door slam")
    blended = search(built, "heavy wooden door slam", semantic=embedded)
    assert all(hit.semantic is not None for hit in blended)
    assert plain[0].semantic is None and blended[0].file.cat_id == "DOORWood"


def test_backend_and_cli_use_the_model(embedded: SemanticIndex, built: LibraryIndex, clap_dir: Path,
                                       tmp_path: Path, monkeypatch, capsys) -> None:
    generator = LibraryGenerator(index=built.path, clap_model=str(clap_dir))
    assert generator.identity()["clap_model"] == str(clap_dir)
    result = generator.generate([GenerationRequest("door slam", 0.5, 1, 48000)])[0]
    assert result.ok and result.source["cat_id"].startswith("DOOR")
    from server.cli import main

    monkeypatch.setenv("AUDIO_AGENT_LIBRARY_CLAP_MODEL", str(clap_dir))
    assert main(["library", "--index", str(built.path), "search", "door slam", "--clap", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits and all(h["semantic"] is not None for h in hits)


def test_a_bad_model_source_is_named(tmp_path: Path, built: LibraryIndex, monkeypatch) -> None:
    with pytest.raises(InvalidInputError, match="clap_model"):
        ClapEmbedder(tmp_path / "no-such-model")
    monkeypatch.delenv("AUDIO_AGENT_LIBRARY_CLAP_MODEL", raising=False)
    monkeypatch.setenv("AUDIO_AGENT_CONFIG", str(tmp_path / "empty.toml"))
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(InvalidInputError, match="clap_model is not set"):
        SemanticIndex.from_settings(built)


def test_embedding_skips_a_vanished_file(built: LibraryIndex, clap_dir: Path) -> None:
    victim = next(iter(built.iter_files()))
    victim.path.unlink()
    done, failures = SemanticIndex(built, ClapEmbedder(clap_dir)).update()
    assert done == built.count() - 1 and failures[0][0] == victim.display
    assert np.isfinite(done)
