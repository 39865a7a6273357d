"""A HiFi-GAN mel-to-waveform generator that loads the published Auffusion vocoder checkpoint.

The checkpoint (vocoder/config.json + vocoder/vocoder.pt holding {"generator": state_dict}) was
saved from a module wrapped in weight normalisation, so its convolutions are stored as
``weight_g``/``weight_v`` pairs. We fold each pair into a plain weight once at load time: the
module below has no weight-norm wrappers, which is what inference wants anyway.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from engine.errors import InvalidInputError

LEAKY_SLOPE = 0.1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "vocoder.pt"
_REQUIRED = ("num_mels", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
             "resblock_kernel_sizes", "resblock_dilation_sizes", "sampling_rate")


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


def _dilated(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=_same_padding(kernel_size, dilation))


class _ResBlock(nn.Module):
    """Residual dilated convolutions; type "1" pairs each dilated conv with an undilated one."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int], *, kind: str) -> None:
        super().__init__()
        self.kind = kind
        if kind == "1":
            self.convs1 = nn.ModuleList(_dilated(channels, kernel_size, d) for d in dilations)
            self.convs2 = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1)) for _ in dilations
            )
        else:
            self.convs = nn.ModuleList(_dilated(channels, kernel_size, d) for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "1":
            for first, second in zip(self.convs1, self.convs2):
                x = x + second(F.leaky_relu(first(F.leaky_relu(x, LEAKY_SLOPE)), LEAKY_SLOPE))
            return x
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LEAKY_SLOPE))
        return x


class HiFiGAN(nn.Module):
    """(batch, num_mels, frames) log-mel -> (batch, 1, frames * hop) waveform in [-1, 1]."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        missing = [key for key in _REQUIRED if key not in config]
        if missing:
            raise InvalidInputError(f"vocoder config lacks {', '.join(missing)}", field="vocoder.config", value=missing)
        self.config = dict(config)
        rates, kernels = list(config["upsample_rates"]), list(config["upsample_kernel_sizes"])
        width = int(config["upsample_initial_channel"])
        self.num_kernels = len(config["resblock_kernel_sizes"])
        self.conv_pre = nn.Conv1d(int(config["num_mels"]), width, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        kind = str(config.get("resblock", "1"))
        for i, (rate, kernel) in enumerate(zip(rates, kernels)):
            # Odd (kernel - rate) needs one extra output sample so every stage upsamples exactly.
            extra = (kernel - rate) % 2
            self.ups.append(
                nn.ConvTranspose1d(width // 2**i, width // 2 ** (i + 1), kernel, rate,
                                   padding=(kernel - rate) // 2 + extra, output_padding=extra)
            )
            for size, dilations in zip(config["resblock_kernel_sizes"], config["resblock_dilation_sizes"]):
                self.resblocks.append(_ResBlock(width // 2 ** (i + 1), size, list(dilations), kind=kind))
        self.conv_post = nn.Conv1d(width // 2 ** len(rates), 1, 7, padding=3)

    @property
    def hop_length(self) -> int:
        return math.prod(self.config["upsample_rates"])

    @property
    def sampling_rate(self) -> int:
        return int(self.config["sampling_rate"])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LEAKY_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        # The final activation uses torch's default slope, as the published generator does.
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def fold_weight_norm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn weight_g/weight_v pairs (old or parametrize-style) into plain ``weight`` tensors."""
    folded: dict[str, torch.Tensor] = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        for g_suffix, v_suffix in ((".weight_g", ".weight_v"),
                                   (".parametrizations.weight.original0", ".parametrizations.weight.original1")):
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)], {})["g"] = tensor
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)], {})["v"] = tensor
                break
        else:
            folded[key] = tensor
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            message = f"vocoder weights: {prefix} has half a weight-norm pair"
            raise InvalidInputError(message, field="vocoder.weights", value=prefix)
        v = pair["v"].float()
        norm = v.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
        folded[prefix + ".weight"] = (pair["g"].float() * v / norm).to(pair["v"].dtype)
    return folded


def load_hifigan(folder: Path) -> HiFiGAN:
    """Build the vocoder from ``folder``/config.json and ``folder``/vocoder.pt."""
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InvalidInputError(f"{path}: vocoder file missing", field="model", value=str(folder))
    config = json.loads(config_path.read_text(encoding="utf-8"))
    vocoder = HiFiGAN(config)
    checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
    state = checkpoint.get("generator", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    vocoder.load_state_dict(fold_weight_norm(state))
    hop_size = config.get("hop_size")
    if hop_size is not None and int(hop_size) != vocoder.hop_length:
        raise InvalidInputError(
            f"vocoder hop_size={hop_size} differs from its upsampling product {vocoder.hop_length}",
            field="vocoder.hop_size", value=hop_size,
        )
    return vocoder.eval().requires_grad_(False)


def log_mel(waveform: torch.Tensor, config: Mapping[str, Any]) -> torch.Tensor:
    """(batch, samples) at the vocoder's rate -> (batch, num_mels, samples // hop) log-mel.

    The analysis HiFi-GAN vocoders are trained on (and Auffusion's training images were made
    with): STFT with reflect padding of (n_fft - hop) / 2 each side, uncentred, magnitude,
    Slaney mel filters, natural log floored at 1e-5. Keys the vocoder config may lack default to
    the common 4 x hop window over 0 Hz .. Nyquist.
    """
    from transformers.audio_utils import mel_filter_bank

    hop = math.prod(config["upsample_rates"])
    rate = int(config["sampling_rate"])
    n_fft = int(config.get("n_fft", 4 * hop))
    window = int(config.get("win_size", n_fft))
    fmax = config.get("fmax") or rate / 2
    filters = mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=int(config["num_mels"]),
                              min_frequency=float(config.get("fmin", 0.0)), max_frequency=float(fmax),
                              sampling_rate=rate, norm="slaney", mel_scale="slaney")
    padded = F.pad(waveform[:, None, :], ((n_fft - hop) // 2, (n_fft - hop) // 2), mode="reflect")[:, 0]
    spectrum = torch.stft(padded, n_fft, hop_length=hop, win_length=window,
                          window=torch.hann_window(window, device=waveform.device, dtype=waveform.dtype),
                          center=False, return_complex=True)
    magnitude = torch.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    mel = torch.as_tensor(filters.T, dtype=magnitude.dtype, device=magnitude.device) @ magnitude
    return torch.log(mel.clamp(min=1e-5))
