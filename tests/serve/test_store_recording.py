import sqlite3
import wave

import numpy as np

from serve.outcome import detect_outcome
from serve.recording import StereoRecorder
from serve.store import CallStore


def test_store_is_wal_and_commits_each_turn(tmp_path):
    db = tmp_path / "calls.sqlite"
    st = CallStore(db)
    assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    st.create_call("c1", arm="pipeline", assignment="split", protocol="native", scenario="insurance", caller={"id": "x"}, recording=None)
    st.add_turn("c1", 0, "agent", "Hello")
    st.add_turn("c1", 1, "user", "Sign me up, please.")
    # another connection sees the rows at once: nothing waits for the call to end
    other = sqlite3.connect(db)
    assert other.execute("SELECT COUNT(*) FROM turns WHERE call_id='c1'").fetchone()[0] == 2
    assert other.execute("SELECT user_turns, agent_turns, status FROM calls").fetchone() == (1, 1, "active")


def test_recover_closes_calls_of_a_dead_server(tmp_path):
    db = tmp_path / "calls.sqlite"
    st = CallStore(db)
    st.create_call("c1", arm="pipeline", assignment="split", protocol="native", scenario="insurance", caller={}, recording=None)
    st.add_turn("c1", 1, "user", "okay, send me the application link", ended_at=123.0)
    st.close()
    st2 = CallStore(db)
    assert st2.recover(detect_outcome) == 1
    c = st2.call("c1")
    assert (c["status"], c["end_reason"], c["outcome"]) == ("ended", "server_lost", "accepted")
    assert st2.recover(detect_outcome) == 0


def test_stereo_recorder_alignment_and_barge_in(tmp_path):
    path = tmp_path / "r.wav"
    rec = StereoRecorder(path, flush_every_s=0.1)
    rec.user(np.zeros(1600, np.float32))  # 0.1 s caller silence
    rec.agent(np.full(3200, 0.5, np.float32))  # 0.2 s agent audio starts at 0.1 s
    rec.user(np.full(800, 0.25, np.float32))  # caller talks over it at 0.1-0.15 s
    rec.cut_agent()  # barge-in: the rest of the agent audio never played
    rec.user(np.zeros(1600, np.float32))
    rec.close()
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 16000, 2)
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2) / 32768
    agent, user = x[:, 0], x[:, 1]
    assert len(x) == 4000
    assert np.all(agent[:1600] == 0) and np.allclose(agent[1600:2400], 0.5, atol=1e-4) and np.all(agent[2400:] == 0)
    assert np.allclose(user[1600:2400], 0.25, atol=1e-4)


def test_recording_is_readable_without_close(tmp_path):
    path = tmp_path / "r.wav"
    rec = StereoRecorder(path, flush_every_s=0.1)
    rec.user(np.zeros(3200, np.float32))
    rec.agent(np.full(1000, 0.1, np.float32))
    rec.user(np.zeros(3200, np.float32))
    # no close(): as after a crash, the header already matches the data written
    with wave.open(str(path)) as w:
        assert w.getnframes() == 6400
