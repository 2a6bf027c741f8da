"""Whisper's audio encoder rebuilt in PyTorch from the packaged CTranslate2 weights.

No pip package ships Hugging Face Whisper weights, but faster-whisper's model
folders (see ``mads_text.common.assets.resolve_whisper``) hold the same tensors in
CTranslate2's ``model.bin``. This module reads that file (binary format v6:
a header, then name/shape/dtype/bytes per variable, then aliases), keeps only
the encoder's variables and loads them into ``transformers``' ``WhisperEncoder``:

- ``self_attention/linear_0`` is q, k and v fused along the output axis; it is
  split in three (Whisper's key projection has no bias, CTranslate2 stores zeros);
- ``self_attention/linear_1`` -> ``out_proj``; ``ffn/linear_0/1`` -> ``fc1/fc2``;
- ``gamma/beta`` -> LayerNorm ``weight/bias``; ``position_encodings/encodings`` -> ``embed_positions``.

``WhisperEncoder.forward`` insists on 30 s of input (3000 mel frames). The speech
LLM hears clips of a few seconds, so ``encode`` runs the same modules on any
length up to 30 s with the first T positional embeddings, as Ultravox does;
``encode(..., pad_to_30s=True)`` is the stock behaviour and what the numerical
check against CTranslate2 compares.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mads_text.common import assets

SAMPLE_RATE = 16000
N_MELS = 80
HOP = 160  # mel frames per second = 100
MAX_FRAMES = 3000  # 30 s of mel frames; the encoder halves it to 1500 positions
FRAMES_PER_SECOND = SAMPLE_RATE / HOP / 2  # encoder output rate: 50 Hz

# CTranslate2 DataType enum (include/ctranslate2/types.h)
_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


class EncoderError(RuntimeError):
    pass


def read_ct2_variables(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``, as float32/int arrays.

    Others are skipped with a seek, so reading the encoder never loads the decoder's bytes.
    """
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        f = open(path, "rb")
    except OSError as e:
        raise EncoderError(f"{path}: cannot open CTranslate2 model: {e}") from e
    with f:

        def num(fmt: str):
            b = f.read(struct.calcsize("<" + fmt))
            if len(b) != struct.calcsize("<" + fmt):
                raise EncoderError(f"{path}: truncated CTranslate2 model file")
            return struct.unpack("<" + fmt, b)[0]

        def string() -> str:
            n = num("H")
            return f.read(n)[:-1].decode("utf-8")  # stored with its NUL terminator

        version = num("I")
        if version < 4 or version > 6:
            raise EncoderError(f"{path}: CTranslate2 binary version {version} is not supported (4-6 are)")
        spec = string()
        num("I")  # spec revision
        if spec != "WhisperSpec":
            raise EncoderError(f"{path}: model spec is {spec!r}, not a Whisper model")
        for _ in range(num("I")):
            name = string()
            rank = num("B")
            shape = [num("I") for _ in range(rank)]
            type_id = num("B")
            nbytes = num("I")
            if not name.startswith(prefix):
                f.seek(nbytes, 1)
                continue
            raw = f.read(nbytes)
            if type_id == _BFLOAT16:
                arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif type_id in _CT2_DTYPES:
                arr = np.frombuffer(raw, dtype=_CT2_DTYPES[type_id])
            else:
                raise EncoderError(f"{path}: variable {name} has unknown data type id {type_id}")
            out[name] = arr.reshape(shape) if shape else arr.reshape(())
    return out


@dataclass(frozen=True)
class EncoderDims:
    d_model: int
    layers: int
    heads: int
    ffn: int
    n_mels: int
    positions: int


def _dims(v: dict[str, np.ndarray]) -> EncoderDims:
    layers = 0
    while f"encoder/layer_{layers}/ffn/linear_0/weight" in v:
        layers += 1
    if not layers:
        raise EncoderError("no encoder layers found in the CTranslate2 model")
    if "encoder/layer_0/self_attention/linear_0/weight_scale" in v:
        raise EncoderError("int8-quantized CTranslate2 weights are not supported; use a float16/float32 conversion")
    d_model = v["encoder/conv1/weight"].shape[0]
    return EncoderDims(
        d_model=d_model,
        layers=layers,
        heads=int(v["encoder/num_heads"]) if "encoder/num_heads" in v else max(1, d_model // 64),
        ffn=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        n_mels=v["encoder/conv1/weight"].shape[1],
        positions=v["encoder/position_encodings/encodings"].shape[0],
    )


def ct2_to_hf_state_dict(v: dict[str, np.ndarray], dims: EncoderDims) -> dict[str, np.ndarray]:
    """Rename (and split) CTranslate2 encoder variables into ``WhisperEncoder`` state-dict keys."""
    sd: dict[str, np.ndarray] = {
        "conv1.weight": v["encoder/conv1/weight"],
        "conv1.bias": v["encoder/conv1/bias"],
        "conv2.weight": v["encoder/conv2/weight"],
        "conv2.bias": v["encoder/conv2/bias"],
        "embed_positions.weight": v["encoder/position_encodings/encodings"],
        "layer_norm.weight": v["encoder/layer_norm/gamma"],
        "layer_norm.bias": v["encoder/layer_norm/beta"],
    }
    d = dims.d_model
    for i in range(dims.layers):
        src, dst = f"encoder/layer_{i}", f"layers.{i}"
        qkv_w = v[f"{src}/self_attention/linear_0/weight"]
        qkv_b = v[f"{src}/self_attention/linear_0/bias"]
        if qkv_w.shape[0] != 3 * d:
            raise EncoderError(f"{src}: fused attention weight has shape {qkv_w.shape}, expected ({3 * d}, {d})")
        sd[f"{dst}.self_attn.q_proj.weight"] = qkv_w[:d]
        sd[f"{dst}.self_attn.k_proj.weight"] = qkv_w[d : 2 * d]
        sd[f"{dst}.self_attn.v_proj.weight"] = qkv_w[2 * d :]
        sd[f"{dst}.self_attn.q_proj.bias"] = qkv_b[:d]
        sd[f"{dst}.self_attn.v_proj.bias"] = qkv_b[2 * d :]
        sd[f"{dst}.self_attn.out_proj.weight"] = v[f"{src}/self_attention/linear_1/weight"]
        sd[f"{dst}.self_attn.out_proj.bias"] = v[f"{src}/self_attention/linear_1/bias"]
        sd[f"{dst}.self_attn_layer_norm.weight"] = v[f"{src}/self_attention/layer_norm/gamma"]
        sd[f"{dst}.self_attn_layer_norm.bias"] = v[f"{src}/self_attention/layer_norm/beta"]
        sd[f"{dst}.fc1.weight"] = v[f"{src}/ffn/linear_0/weight"]
        sd[f"{dst}.fc1.bias"] = v[f"{src}/ffn/linear_0/bias"]
        sd[f"{dst}.fc2.weight"] = v[f"{src}/ffn/linear_1/weight"]
        sd[f"{dst}.fc2.bias"] = v[f"{src}/ffn/linear_1/bias"]
        sd[f"{dst}.final_layer_norm.weight"] = v[f"{src}/ffn/layer_norm/gamma"]
        sd[f"{dst}.final_layer_norm.bias"] = v[f"{src}/ffn/layer_norm/beta"]
    return sd


def feature_extractor(n_mels: int = N_MELS):
    """Whisper's log-mel front end, built from its constructor defaults (no download)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP, chunk_length=30)


class AudioEncoder:
    """A frozen Whisper encoder plus its feature extractor; ``__call__`` maps 16 kHz PCM to 50 Hz hidden states."""

    def __init__(self, whisper: str | None = "base", device: str = "cpu"):
        import torch
        from transformers import WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        try:
            folder = assets.resolve_whisper(whisper)
        except assets.AssetError as e:
            raise EncoderError(str(e)) from e
        self.name = whisper or "base"
        self.folder = folder
        v = read_ct2_variables(folder / "model.bin", prefix="encoder/")
        dims = _dims(v)
        self.dims = dims
        cfg = WhisperConfig(
            d_model=dims.d_model,
            encoder_layers=dims.layers,
            encoder_attention_heads=dims.heads,
            encoder_ffn_dim=dims.ffn,
            num_mel_bins=dims.n_mels,
            max_source_positions=dims.positions,
            # the decoder half is never built; these only keep the config valid
            decoder_layers=1,
            decoder_attention_heads=dims.heads,
            decoder_ffn_dim=dims.ffn,
            activation_function="gelu",
            dropout=0.0,
            attention_dropout=0.0,
            activation_dropout=0.0,
        )
        cfg._attn_implementation = "sdpa"
        enc = WhisperEncoder(cfg)
        sd = {k: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for k, a in ct2_to_hf_state_dict(v, dims).items()}
        missing, unexpected = enc.load_state_dict(sd, strict=False)
        # the key projection has no bias in Whisper; anything else missing is a mapping error
        missing = [m for m in missing if not m.endswith("k_proj.bias")]
        if missing or unexpected:
            raise EncoderError(f"encoder weights do not match: missing {missing[:4]}, unexpected {unexpected[:4]}")
        enc.requires_grad_(False)
        self.model = enc.to(device).eval()
        self.device = device
        self.features = feature_extractor(dims.n_mels)

    @property
    def dim(self) -> int:
        return self.dims.d_model

    def to(self, device: str) -> "AudioEncoder":
        self.model.to(device)
        self.device = device
        return self

    def mel(self, audio: list[np.ndarray], pad_to_30s: bool = False):
        """Log-mel features (B, n_mels, T) of 16 kHz clips, right-padded to the longest (or to 30 s)."""
        import torch

        clips = [np.asarray(a, dtype=np.float32).reshape(-1)[: SAMPLE_RATE * 30] for a in audio]
        # the extractor always pads to 30 s: normalisation is computed on the padded clip, as Whisper does
        feats = self.features(clips, sampling_rate=SAMPLE_RATE, return_tensors="np", padding="max_length")
        x = torch.from_numpy(feats["input_features"])
        if not pad_to_30s:
            longest = max(len(c) for c in clips)
            frames = min(MAX_FRAMES, int(np.ceil(longest / HOP / 2)) * 2 + 2)
            x = x[..., :frames]
        return x

    @staticmethod
    def n_outputs(n_samples: int) -> int:
        """Encoder frames that carry a clip of ``n_samples`` (the rest is padding)."""
        return min(MAX_FRAMES // 2, int(np.ceil(n_samples / HOP / 2)))

    def encode_features(self, x):
        """Hidden states (B, T/2, d) of mel features of any length up to 3000 frames."""
        import torch
        from torch import nn

        m = self.model
        if x.shape[-1] > MAX_FRAMES:
            raise EncoderError(f"audio longer than 30 s ({x.shape[-1]} mel frames) cannot be encoded at once")
        x = x.to(self.device, dtype=m.conv1.weight.dtype)
        with torch.no_grad():  # frozen in every training stage
            h = nn.functional.gelu(m.conv1(x))
            h = nn.functional.gelu(m.conv2(h)).permute(0, 2, 1)
            h = h + m.embed_positions.weight[: h.shape[1]]
            for layer in m.layers:
                h = layer(h, None)
            return m.layer_norm(h)

    def __call__(self, audio: list[np.ndarray], pad_to_30s: bool = False):
        """(hidden states (B, T, d), valid frame count per clip).

        Whisper attends over padding too (it has no mask), so clips are encoded one
        by one: a clip's encoding then never depends on what else is in the batch,
        and training sees exactly what single-clip inference sees.
        """

        outs, lens = [], []
        for a in audio:
            a = np.asarray(a, dtype=np.float32).reshape(-1)
            h = self.encode_features(self.mel([a], pad_to_30s=pad_to_30s))
            outs.append(h[0])
            lens.append(min(h.shape[1], self.n_outputs(len(a))))
        width = max(o.shape[0] for o in outs)
        batch = outs[0].new_zeros(len(outs), width, outs[0].shape[1])
        for i, o in enumerate(outs):
            batch[i, : o.shape[0]] = o
        return batch, lens


def ct2_encoder_output(folder: str | Path, features: np.ndarray, threads: int = 2) -> np.ndarray:
    """CTranslate2's own encoder output for mel features (B, n_mels, 3000), float32: the reference for the rebuild."""
    import ctranslate2

    model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=threads)
    sv = model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features, dtype=np.float32)))
    return np.array(sv)


def compare_with_ct2(whisper: str | None = "base", audio: np.ndarray | None = None) -> dict[str, float]:
    """Cosine similarity and max abs difference between the rebuilt encoder and CTranslate2 on one clip.

    Both run the stock 30-second window in float32 on the same log-mel features.
    """
    import torch

    enc = AudioEncoder(whisper)
    if audio is None:
        rng = np.random.default_rng(0)
        t = np.arange(SAMPLE_RATE * 3) / SAMPLE_RATE
        audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
    feats = enc.mel([np.asarray(audio, dtype=np.float32)], pad_to_30s=True)
    with torch.no_grad():
        ours = enc.model(feats).last_hidden_state.numpy()
    ref = ct2_encoder_output(enc.folder, feats.numpy())
    a, b = ours.reshape(-1).astype(np.float64), ref.reshape(-1).astype(np.float64)
    frame_cos = (ours * ref).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(ref, axis=-1))
    return {
        "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))),
        "min_frame_cosine": float(frame_cos.min()),
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "ref_abs_max": float(np.abs(ref).max()),
    }
