"""Fitting the VTA model's audio vocabulary: HuBERT layer-9 features at 50 Hz from a folder of
audio (or video) files, clustered with scikit-learn's MiniBatchKMeans into ``n_clusters``
centroids (500 in the paper). Row i of the saved .npy array is the vector of unit <AUD_i>.

Every file is read through PyAV as mono float32 at 16 kHz (HuBERT's rate), so WAV, FLAC, MP3
and the audio track of a video all work. Features of all files are pooled; a seeded, evenly
spread subsample of at most ``max_frames`` rows keeps memory bounded on large datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import InvalidInputError

HUBERT_RATE_HZ = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aif", ".aiff")
MEDIA_SUFFIXES = AUDIO_SUFFIXES + (".mp4", ".mov", ".mkv", ".webm", ".avi")

# (files done, files in all) after each file.
FileProgress = Callable[[int, int], None]


def media_files(folder: str | Path) -> list[Path]:
    """Audio and video files under ``folder`` (recursively), sorted; refuses an empty folder."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"audio_dir={str(root)!r}: not a folder", field="audio_dir", value=str(root))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if not files:
        names = ", ".join(MEDIA_SUFFIXES)
        raise InvalidInputError(f"audio_dir={str(root)!r}: no audio or video files ({names})", field="audio_dir",
                                value=str(root))
    return files


def read_audio(path: str | Path, *, sample_rate: int = HUBERT_RATE_HZ) -> np.ndarray:
    """Mono float32 samples of the file's first audio stream at ``sample_rate``."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InvalidInputError(f"{path}: has no audio stream", field="audio_path", value=str(path))
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            pieces = []
            for frame in container.decode(container.streams.audio[0]):
                pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            pieces.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except av.FFmpegError as error:
        raise InvalidInputError(f"{path}: could not be decoded ({error})", field="audio_path",
                                value=str(path)) from None
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)


def check_layer(hubert: object, layer: int) -> None:
    layers = int(getattr(getattr(hubert, "config"), "num_hidden_layers"))
    if not 1 <= layer <= layers:
        raise InvalidInputError(f"hubert_layer={layer}: the model has {layers} layers", field="hubert_layer",
                                value=layer)


def hubert_features(hubert: object, waveform: np.ndarray, *, layer: int) -> np.ndarray:
    """(frames, hidden) float32: the output of transformer layer ``layer`` (hidden_states[layer])."""
    import torch

    with torch.no_grad():
        audio = torch.as_tensor(np.asarray(waveform, dtype=np.float32))[None, :]
        audio = audio.to(getattr(hubert, "device", "cpu"))
        output = hubert(input_values=audio, output_hidden_states=True)  # type: ignore[operator]
    return output.hidden_states[layer][0].float().cpu().numpy()


@dataclass(frozen=True)
class UnitFit:
    centroids: np.ndarray  # (n_clusters, hidden) float32
    n_files: int
    n_frames: int  # feature rows pooled (before subsampling)
    inertia: float  # k-means objective on the rows it was fitted on


def fit_centroids(
    features: np.ndarray, *, n_clusters: int, seed: int = 0, batch_size: int = 4096, max_frames: int = 1_000_000
) -> tuple[np.ndarray, float]:
    """MiniBatchKMeans centroids (n_clusters, dim) and its inertia."""
    from sklearn.cluster import MiniBatchKMeans

    if n_clusters < 1:
        raise InvalidInputError(f"clusters={n_clusters}: must be >= 1", field="clusters", value=n_clusters)
    if len(features) < n_clusters:
        message = (f"{len(features)} feature frames (50 per second of audio) cannot make {n_clusters} clusters; "
                   "give more audio or fewer clusters")
        raise InvalidInputError(message, field="clusters", value=n_clusters)
    if len(features) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(features), size=max_frames, replace=False))
        features = features[keep]
    kmeans = MiniBatchKMeans(n_clusters=n_clusters, batch_size=max(batch_size, n_clusters), random_state=seed,
                             n_init=3, max_iter=100)
    kmeans.fit(features)
    return kmeans.cluster_centers_.astype(np.float32), float(kmeans.inertia_)


def units_from_folder(
    audio_dir: str | Path,
    hubert: object,
    *,
    layer: int = 9,
    n_clusters: int = 500,
    seed: int = 0,
    max_frames: int = 1_000_000,
    progress: FileProgress | None = None,
) -> UnitFit:
    """Features of every file under ``audio_dir``, then k-means over all of them."""
    check_layer(hubert, layer)
    files = media_files(audio_dir)
    rows: list[np.ndarray] = []
    for done, path in enumerate(files, start=1):
        waveform = read_audio(path)
        # HuBERT's conv stack needs 400 samples for its first frame; shorter files add nothing.
        if len(waveform) >= 400:
            rows.append(hubert_features(hubert, waveform, layer=layer))
        if progress is not None:
            progress(done, len(files))
    if not rows:
        raise InvalidInputError(f"audio_dir={str(audio_dir)!r}: every file is shorter than 25 ms",
                                field="audio_dir", value=str(audio_dir))
    features = np.concatenate(rows)
    centroids, inertia = fit_centroids(features, n_clusters=n_clusters, seed=seed, max_frames=max_frames)
    return UnitFit(centroids=centroids, n_files=len(files), n_frames=len(features), inertia=inertia)


def save_centroids(path: str | Path, centroids: np.ndarray) -> Path:
    """Write the .npy atomically (a plain array: loads with allow_pickle=False)."""
    from engine.atomic import atomic_file

    path = Path(path)
    with atomic_file(path) as handle:
        np.save(handle, np.ascontiguousarray(centroids, dtype=np.float32), allow_pickle=False)
    return path

