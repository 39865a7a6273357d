"""The paper's VTA model at tiny sizes on CPU: vocabulary, connector, LoRA step, constrained
generation, decoupled cross-attention and adapter save/load."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from engine.errors import InvalidInputError
from engine.video import vta_model as vta
from engine.video.train import VTABatch, evaluate_loss, make_optimizer, train_step
from tests.engine.video import tiny_vta

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CONFIG = vta.load_vta_config(lora_r=8, lora_alpha=8)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("vta")
    tok = tiny_vta.tokenizer(root / "tok")
    tiny_vta.gemma(root / "llm")
    tiny_vta.clip(root / "clip")
    tiny_vta.unet(root / "unet")
    return {"root": root, "tokenizer": tok}


def _model(parts, *, lora=True):
    vocab = vta.extend_tokenizer(parts["tokenizer"])
    torch.manual_seed(5)
    return vta.build_vta_model(tiny_vta.gemma(parts["root"] / "llm"), vocab, clip_dim=tiny_vta.CLIP_DIM,
                               config=CONFIG, lora=lora)


def _batch(frames=12, units=20):
    generator = torch.Generator().manual_seed(6)
    return VTABatch(torch.randn(2, frames, tiny_vta.CLIP_DIM, generator=generator),
                    torch.randint(0, 500, (2, units), generator=generator))


def test_preset_holds_the_paper_settings_and_rejects_unknown_keys(tmp_path):
    config = vta.load_vta_config()
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (64, 64, 0.05)
    assert (config.frame_rate_hz, config.n_audio_tokens, config.hubert_layer) == (21.5, 500, 9)
    assert config.visual_scale == 0.5 and config.clip_model_id.endswith("clip-vit-large-patch14")
    bad = tmp_path / "vta.toml"
    bad.write_text("[vta]\nlora_rank = 4\n")
    with pytest.raises(InvalidInputError) as info:
        vta.load_vta_config(bad)
    assert info.value.field == "lora_rank"
    with pytest.raises(InvalidInputError):
        vta.load_vta_config(connector_kernel=4)


def test_vocabulary_adds_500_audio_tokens_and_markers_contiguously(parts, tmp_path):
    tok = tiny_vta.tokenizer(tmp_path / "t")
    base = len(tok)
    vocab = vta.extend_tokenizer(tok)
    assert len(tok) == base + 504
    assert vocab.added_ids == list(range(base, base + 504))
    assert tok.convert_ids_to_tokens([vocab.vid_start, vocab.vid_end, vocab.aud_start, vocab.aud_end]) == list(vta.MARKERS)
    assert tok.convert_ids_to_tokens([vocab.first_audio_id, vocab.first_audio_id + 499]) == ["<AUD_0>", "<AUD_499>"]
    assert vocab == vta.vocabulary_from_size(base)
    # Text round trip keeps audio tokens whole, and a saved tokenizer gives the same ids again.
    ids = tok("<VID> w3 </VID> <AUD> <AUD_7> <AUD_123> </AUD>", add_special_tokens=False)["input_ids"]
    assert vocab.to_units(ids) == [7, 123]
    tok.save_pretrained(tmp_path / "t2")
    from transformers import AutoTokenizer

    assert vta.extend_tokenizer(AutoTokenizer.from_pretrained(tmp_path / "t2")) == vocab


def test_frame_sampling_and_clip_features(parts):
    assert len(vta.frame_times(2.0)) == 43 and vta.frame_times(1.0)[1] == pytest.approx(1 / 21.5)
    encoder = vta.FrameEncoder.from_pretrained(str(parts["root"] / "clip"))
    frames = np.random.default_rng(0).integers(0, 255, (5, 40, 48, 3), dtype=np.uint8)
    features = encoder(frames)
    assert features.shape == (5, tiny_vta.CLIP_DIM) and not features.requires_grad
    assert not torch.allclose(features[0], features[1])


def test_connector_shapes_and_temporal_locality():
    connector = vta.TemporalConnector(clip_dim=32, llm_dim=48, kernel_size=3)
    features = torch.randn(2, 17, 32)
    out = connector(features)
    assert out.shape == (2, 17, 48)
    changed = features.clone()
    changed[:, 8] += 1.0
    moved = (connector(changed) - out).abs().sum(dim=(0, 2))
    # A 3-tap conv lets frame 8 reach outputs 7..9 only: order and locality are kept.
    assert torch.all(moved[7:10] > 0) and torch.all(moved[:7] == 0) and torch.all(moved[10:] == 0)


def test_hubert_units_at_50_hz_and_centroid_lookup(parts, tmp_path):
    hubert = tiny_vta.hubert(tmp_path / "hubert")
    with pytest.raises(InvalidInputError) as info:
        vta.CentroidTable.load(tiny_vta.centroids(tmp_path / "bad.npy", units=10), dim=tiny_vta.HUBERT_DIM)
    assert info.value.field == "centroids_path"
    table = vta.CentroidTable.load(tiny_vta.centroids(tmp_path / "c.npy"), dim=tiny_vta.HUBERT_DIM)
    tokenizer = vta.HubertUnitTokenizer(hubert, table, layer=9)
    wave = np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32)
    units = tokenizer.units(wave)
    assert 48 <= len(units) <= 50 and units.min() >= 0 and units.max() < 500
    # assign() is nearest-centroid: centroid rows map to their own index.
    assert list(table.assign(table.centroids[[3, 499, 0]] + 1e-3)) == [3, 499, 0]
    assert table.embed([3, 4]).shape == (2, tiny_vta.HUBERT_DIM)
    assert torch.equal(table.embed([3])[0], torch.from_numpy(table.centroids[3]))


def test_one_lora_step_lowers_the_loss_and_trains_only_adapters(parts):
    model = _model(parts)
    batch = _batch()
    frozen = {n: p.detach().clone() for n, p in model.llm.named_parameters() if "base_layer" in n}
    assert frozen and not any(p.requires_grad for n, p in model.llm.named_parameters() if "base_layer" in n)
    assert any("lora_A" in n and p.requires_grad for n, p in model.llm.named_parameters())
    before = evaluate_loss(model, batch)
    train_step(model, batch, make_optimizer(model, lr=1e-2))
    after = evaluate_loss(model, batch)
    assert after < before
    for name, parameter in model.llm.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), name


def test_processor_masks_everything_but_audio_tokens(parts):
    vocab = vta.vocabulary_from_size(len(tiny_vta.WORDS))
    scores = torch.zeros(1, vocab.first_audio_id + 500)
    scores[0, 5] = 100.0  # a text word would win without the mask
    scores[0, vocab.vid_start] = 50.0
    scores[0, vocab.first_audio_id + 42] = 1.0
    masked = vta.AudioTokenOnlyProcessor(vocab)(torch.zeros(1, 1, dtype=torch.long), scores)
    assert int(masked.argmax()) == vocab.first_audio_id + 42
    assert torch.isinf(masked[0, : vocab.aud_end]).all()  # text words and the other markers
    assert masked[0, vocab.aud_end] == 0.0  # the end marker stays open


def test_generation_emits_only_audio_tokens(parts):
    model = _model(parts)
    model.eval()
    features = _batch(frames=6).features
    embeds = model.prompt_embeds(features)
    from transformers import LogitsProcessorList

    ids = model.llm.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long),
                             max_new_tokens=12, do_sample=True, top_k=None, top_p=None,
                             logits_processor=LogitsProcessorList([vta.AudioTokenOnlyProcessor(model.vocab)]),
                             eos_token_id=model.vocab.aud_end, pad_token_id=model.vocab.aud_end)
    allowed = set(model.vocab.audio_ids) | {model.vocab.aud_end}
    assert ids.numel() > 0 and set(ids.flatten().tolist()) <= allowed
    units = model.generate_units(features, max_units=10)
    assert len(units) == 2 and all(0 <= u < 500 for row in units for u in row)
    assert all(len(row) <= 10 for row in units)


def _unet_out(unet, visual=None, *, seed=7):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    text = torch.randn(1, 5, 24, generator=generator)
    kwargs = {"cross_attention_kwargs": {"visual_hidden_states": visual}} if visual is not None else {}
    with torch.no_grad():
        return unet(sample, 10, encoder_hidden_states=text, **kwargs).sample


def test_decoupled_attention_with_lambda_zero_equals_text_only(parts):
    unet = tiny_vta.unet(parts["root"] / "unet")
    reference = _unet_out(unet)
    visual = torch.randn(1, 9, tiny_vta.VISUAL_DIM)
    processors = vta.install_visual_attention(unet, visual_dim=tiny_vta.VISUAL_DIM, scale=0.0)
    assert processors and all(name.endswith("attn2.processor") for name in processors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(_unet_out(unet, visual), reference)
        assert torch.equal(_unet_out(unet), reference)  # no visual tokens: text-only as well
    vta.set_visual_scale(unet, 0.5)
    assert not torch.allclose(_unet_out(unet, visual), reference)


def test_adapter_save_load_round_trips(parts, tmp_path):
    model = _model(parts)
    unet = tiny_vta.unet(parts["root"] / "unet")
    vta.install_visual_attention(unet, visual_dim=tiny_vta.VISUAL_DIM, scale=0.5)
    batch = _batch()
    optimizer = make_optimizer(model, lr=1e-2)
    train_step(model, batch, optimizer)
    visual = torch.randn(1, 9, tiny_vta.VISUAL_DIM)
    loss, unet_out = evaluate_loss(model, batch), _unet_out(unet, visual)
    vta.save_adapter(model, tmp_path / "adapter", unet=unet, config=CONFIG)

    fresh_unet = tiny_vta.unet(parts["root"] / "unet")
    loaded = vta.load_adapter(tmp_path / "adapter", base_llm=tiny_vta.gemma(parts["root"] / "llm"), unet=fresh_unet)
    assert loaded.vocab == model.vocab
    assert evaluate_loss(loaded, batch) == pytest.approx(loss, abs=1e-6)
    for key, value in model.connector.state_dict().items():
        assert torch.equal(loaded.connector.state_dict()[key], value)
    assert torch.allclose(_unet_out(fresh_unet, visual), unet_out, atol=1e-6)
    untouched = tiny_vta.unet(parts["root"] / "unet")
    vta.install_visual_attention(untouched, visual_dim=tiny_vta.VISUAL_DIM, scale=0.5)
    assert not torch.allclose(_unet_out(untouched, visual), unet_out)  # the weights did travel


def test_frames_to_units_to_unet_conditioning_end_to_end(parts, tmp_path):
    encoder = vta.FrameEncoder.from_pretrained(str(parts["root"] / "clip"))
    model = _model(parts)
    model.eval()
    frames = np.random.default_rng(1).integers(0, 255, (len(vta.frame_times(0.5)), 36, 36, 3), dtype=np.uint8)
    features = encoder(frames)[None]
    (units,) = model.generate_units(features, max_units=25)  # 0.5 s of 50 Hz units at most
    table = vta.CentroidTable.load(tiny_vta.centroids(tmp_path / "c.npy"), dim=tiny_vta.HUBERT_DIM)
    if not units:  # the untrained model may close </AUD> at once; condition on one unit then
        units = [0]
    visual = table.embed(units)[None]
    unet = tiny_vta.unet(parts["root"] / "unet")
    text_only = _unet_out(unet)
    vta.install_visual_attention(unet, visual_dim=tiny_vta.HUBERT_DIM, scale=0.5)
    out = _unet_out(unet, visual)
    assert out.shape == text_only.shape and not torch.allclose(out, text_only)


def test_one_row_of_visual_tokens_serves_a_whole_batch_and_other_mismatches_are_refused(parts):
    # A guided denoising step runs the UNet on [unconditional, conditional]: one row of visual
    # tokens must reach both samples whole, not be reshaped into half as many tokens each.
    unet = tiny_vta.unet(parts["root"] / "unet")
    vta.install_visual_attention(unet, visual_dim=tiny_vta.VISUAL_DIM, scale=0.5)
    generator = torch.Generator().manual_seed(11)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    text = torch.randn(2, 5, 24, generator=generator)
    visual = torch.randn(1, 8, tiny_vta.VISUAL_DIM, generator=generator)

    def run(tokens):
        with torch.no_grad():
            return unet(sample, 10, encoder_hidden_states=text,
                        cross_attention_kwargs={"visual_hidden_states": tokens}).sample

    torch.testing.assert_close(run(visual), run(visual.expand(2, -1, -1).clone()))
    with pytest.raises(InvalidInputError) as info:
        run(torch.randn(3, 8, tiny_vta.VISUAL_DIM))
    assert info.value.field == "visual_hidden_states"


def test_one_visual_attention_step_lowers_the_diffusion_loss_and_trains_only_visual_weights(parts):
    from diffusers import DDPMScheduler

    from engine.video.train import (
        VisualAttentionBatch,
        make_visual_attention_optimizer,
        visual_attention_loss,
        visual_attention_train_step,
    )

    unet = tiny_vta.unet(parts["root"] / "unet")
    vta.install_visual_attention(unet, visual_dim=tiny_vta.VISUAL_DIM, scale=0.5)
    generator = torch.Generator().manual_seed(12)
    batch = VisualAttentionBatch(torch.randn(2, 4, 8, 8, generator=generator),
                                 torch.randn(2, 5, 24, generator=generator),
                                 torch.randn(2, 7, tiny_vta.VISUAL_DIM, generator=generator))
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    frozen = {k: v.clone() for k, v in unet.state_dict().items() if "_vis" not in k}
    visual = {k: v.clone() for k, v in unet.state_dict().items() if "_vis" in k}
    assert visual and frozen
    optimizer = make_visual_attention_optimizer(unet, lr=1e-2)
    with torch.no_grad():
        before = float(visual_attention_loss(unet.eval(), scheduler, batch, seed=0))
    assert visual_attention_train_step(unet, scheduler, batch, optimizer, seed=0) == pytest.approx(before, rel=1e-5)
    with torch.no_grad():
        after = float(visual_attention_loss(unet.eval(), scheduler, batch, seed=0))
    assert after < before
    state = unet.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    assert any(not torch.equal(state[k], v) for k, v in visual.items())
