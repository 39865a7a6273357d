"""Optional semantic search: CLAP text and audio embeddings (transformers ``ClapModel``).

The model comes from a Hub id or a local folder on the user's machine (``[library]
clap_model``); nothing is downloaded unless the user's Hugging Face settings allow it. Audio
vectors are computed once per file (``audio-agent library embed``) and kept in the index's
``vectors`` table as float32 blobs, tagged with the model name, so changing models never
mixes spaces. A query embeds the text and takes cosines against all vectors of that model
with one matrix product (20,000 x 512 floats is 40 MB and a few milliseconds); no vector
extension is needed at this size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from engine.errors import InvalidInputError
from engine.library.store import LibraryIndex

MAX_AUDIO_S = 10.0  # CLAP's feature extractor looks at 10 s; more is read for nothing
BATCH = 8


class ClapEmbedder:
    """Text and audio embeddings from one CLAP checkpoint, L2-normalised."""

    def __init__(self, source: str | Path, *, device: str = "cpu") -> None:
        import torch
        from transformers import ClapModel, ClapProcessor

        self.name = str(source)
        try:
            self.model = ClapModel.from_pretrained(str(source)).to(device).eval()
            self.processor = ClapProcessor.from_pretrained(str(source))
        except (OSError, ValueError) as error:
            raise InvalidInputError(
                f"clap_model={self.name!r}: cannot load a CLAP model from it "
                f"({str(error).splitlines()[0]})",
                field="clap_model", value=self.name,
            ) from None
        self.device = device
        self.sample_rate = int(self.processor.feature_extractor.sampling_rate)
        self._torch = torch

    def _vectors(self, output: object) -> np.ndarray:
        # transformers 5 returns the model output with the normalised projection as
        # pooler_output; older releases returned the tensor itself.
        tensor = output
        if not isinstance(output, self._torch.Tensor):
            tensor = output.pooler_output  # type: ignore[attr-defined]
        vectors = tensor.detach().float().cpu().numpy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        inputs = self.processor(text=list(texts), return_tensors="pt", padding=True,
                                truncation=True)
        with self._torch.inference_mode():
            output = self.model.get_text_features(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
            )
        return self._vectors(output)

    def embed_audio(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """``clips``: mono float32 arrays at ``self.sample_rate``."""
        features = self.processor.feature_extractor(
            [np.asarray(c, dtype=np.float32) for c in clips],
            sampling_rate=self.sample_rate, return_tensors="pt",
        )
        with self._torch.inference_mode():
            output = self.model.get_audio_features(
                input_features=features["input_features"].to(self.device),
                is_longer=features.get("is_longer"),
            )
        return self._vectors(output)


class SemanticIndex:
    """CLAP vectors of one model over a LibraryIndex."""

    def __init__(self, index: LibraryIndex, embedder: ClapEmbedder) -> None:
        self.index = index
        self.embedder = embedder
        self._matrix: tuple[int, np.ndarray, np.ndarray] | None = None  # (generation, ids, vectors)

    @classmethod
    def from_settings(cls, index: LibraryIndex) -> "SemanticIndex":
        from engine.library.settings import load_library_settings

        model = load_library_settings().clap_model
        if not model:
            raise InvalidInputError(
                "clap_model is not set: name a CLAP Hub id or local folder in [library] clap_model "
                "(or AUDIO_AGENT_LIBRARY_CLAP_MODEL)", field="clap_model", value=None,
            )
        return cls(index, ClapEmbedder(model))

    def update(
        self, *, progress: Callable[[int, int], None] | None = None
    ) -> tuple[int, list[tuple[str, str]]]:
        """Embed every file without a vector of this model; returns (embedded, failures)."""
        from engine.library.fit import load_source

        db = self.index.db
        missing = [
            (row[0], bytes(row[1]), row[2]) for row in db.execute(
                "SELECT f.id, f.path, f.display FROM files f LEFT JOIN vectors v"
                " ON v.file_id = f.id AND v.model = ? WHERE v.file_id IS NULL ORDER BY f.id",
                (self.embedder.name,),
            )
        ]
        done, failures = 0, []
        for start in range(0, len(missing), BATCH):
            batch, clips = [], []
            for file_id, raw, display in missing[start:start + BATCH]:
                try:
                    audio = load_source(Path(os.fsdecode(raw)), self.embedder.sample_rate,
                                        max_s=MAX_AUDIO_S)
                except Exception as error:  # noqa: BLE001 - one file never stops the pass
                    failures.append((display, f"cannot embed: {error}"))
                    continue
                batch.append(file_id)
                clips.append(audio.mean(axis=0))
            if batch:
                vectors = self.embedder.embed_audio(clips)
                db.executemany(
                    "INSERT OR REPLACE INTO vectors (file_id, model, vector) VALUES (?, ?, ?)",
                    [(i, self.embedder.name, v.tobytes()) for i, v in zip(batch, vectors)],
                )
                db.commit()
                done += len(batch)
            if progress is not None:
                progress(min(start + BATCH, len(missing)), len(missing))
        self._matrix = None
        return done, failures

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        generation = self.index.generation()
        if self._matrix is None or self._matrix[0] != generation:
            rows = self.index.db.execute(
                "SELECT file_id, vector FROM vectors WHERE model = ? ORDER BY file_id",
                (self.embedder.name,),
            ).fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            vectors = (np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                       if rows else np.zeros((0, 1), dtype=np.float32))
            self._matrix = (generation, ids, vectors)
        return self._matrix[1], self._matrix[2]

    def similar(self, text: str, *, limit: int) -> dict[int, float]:
        """file id -> similarity in 0..1 (cosine, negatives as 0), the ``limit`` best."""
        ids, vectors = self._load()
        if ids.size == 0:
            return {}
        query = self.embedder.embed_text([text])[0]
        cosines = vectors @ query
        best = np.argsort(-cosines, kind="stable")[:limit]
        return {int(ids[i]): float(max(0.0, cosines[i])) for i in best}
