"""The Whisper encoder rebuilt from CTranslate2 weights matches CTranslate2's own encoder."""

import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from mads_audio.encoder import AudioEncoder, EncoderError, compare_with_ct2, read_ct2_variables
from mads_text.common import assets

pytestmark = pytest.mark.skipif(shutil.which("flite") is None, reason="flite makes the test speech")


def _say(text: str) -> np.ndarray:
    import soundfile as sf

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        subprocess.run(["flite", "-voice", "rms", "-t", text, "-o", f.name], check=True)
        x, sr = sf.read(f.name, dtype="float32")
    assert sr == 16000
    return x


def test_reader_keeps_only_the_encoder():
    v = read_ct2_variables(assets.resolve_whisper("tiny.en") / "model.bin", prefix="encoder/")
    assert v and all(k.startswith("encoder/") for k in v)
    assert v["encoder/conv1/weight"].shape == (384, 80, 3)
    assert v["encoder/position_encodings/encodings"].shape == (1500, 384)
    assert v["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 384, 384)  # fused q, k, v


def test_tiny_en_rebuild_matches_ctranslate2_on_speech():
    res = compare_with_ct2("tiny.en", _say("How much does the policy cost every month?"))
    assert res["cosine"] > 0.99999, res
    assert res["min_frame_cosine"] > 0.9999, res
    assert res["max_abs_diff"] < 5e-3, res


@pytest.mark.slow
def test_base_rebuild_matches_ctranslate2_on_speech():
    res = compare_with_ct2("base", _say("I already have insurance from my employer."))
    assert res["cosine"] > 0.99999, res
    assert res["max_abs_diff"] < 5e-3, res


def test_short_clips_are_encoded_without_padding_to_30_s():
    enc = AudioEncoder("tiny.en")
    a = _say("Yes, please.")
    h, lens = enc([a, a[: len(a) // 2]])
    frames = int(np.ceil(len(a) / 320))
    assert h.shape[0] == 2 and h.shape[2] == 384
    assert h.shape[1] <= frames + 2  # about 50 frames per second of audio, not 1500
    assert lens == [frames, int(np.ceil(len(a) // 2 / 320))]


def test_a_file_that_is_not_a_ct2_model_is_named(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x01\x00")
    with pytest.raises(EncoderError, match="model.bin"):
        read_ct2_variables(bad)
