import json

import pytest

from mads_text.reproduce import GROUPS, ReproduceConfig, ReproduceError, _check_settings, render, summarize


def _t1(h):
    runs = []
    for g in GROUPS:
        runs.append({"name": g, "n_labelled": 4, "h_avg": h[g], "h_avg_ci95": [h[g] - 0.1, h[g] + 0.1],
                     "h_norm": h[g] / 2.7726, "js": None if g == "base" else {"sign": 0.2, "mbti": 0.25, "busi": 0.3}[g],
                     "js_ci95": [0.1, 0.4], "acceptance_rate": 0.25, "c_str": {"base": 1.5, "sign": 2.0, "mbti": 2.5,
                                                                                  "busi": 1.0}[g],
                     "c_str_sd": 0.5, "strategy_cv": 1.0})
    return {"runs": runs}


def _t4(rows_by_sc):
    return {sc: {"rows": [{"k": k, "n_dialogues": 3, "tau": t, "tau_ci95": (0.0, 0.9), "h_avg": 1.0}
                          for k, t in enumerate(taus)]} for sc, taus in rows_by_sc.items()}


def test_summary_findings_follow_the_numbers():
    s = summarize(_t1({"base": 1.0, "sign": 1.5, "mbti": 1.6, "busi": 1.2}),
                  _t4({"insurance": [0.0, 0.33, 0.67], "finance": [0.33, 0.33, 0.67]}))
    f = s["findings"]
    assert f["signifiers raise entropy (sign, mbti > base)"] is True
    assert f["busi has the highest JS vs base"] is True
    assert f["richer personas, more strategies (C_str of sign, mbti, busi > base)"] is False  # busi 1.0 < base 1.5
    assert f["K=2 prompt beats the meta instruction in every scenario"] is True
    assert s["table4"]["insurance"]["k0"] == 0.0 and s["table4"]["insurance"]["kK"] == 0.67

    s2 = summarize(_t1({"base": 2.0, "sign": 1.5, "mbti": 1.6, "busi": 2.5}), _t4({"insurance": [0.67]}))
    assert s2["findings"]["signifiers raise entropy (sign, mbti > base)"] is False
    # a loop that stopped at K=0 cannot support the K=2 finding
    assert s2["findings"]["K=2 prompt beats the meta instruction in every scenario"] is False
    md = render(s2, ReproduceConfig(), {"model": "m", "wall_s": 60})
    assert "stopped at K=0" in md and "| busi |" in md and "did not hold" in md


def test_settings_mismatch_is_refused(tmp_path):
    _check_settings(tmp_path, ReproduceConfig(scale="small"))
    _check_settings(tmp_path, ReproduceConfig(scale="small", concurrency=3))  # concurrency may change
    with pytest.raises(ReproduceError, match="scale"):
        _check_settings(tmp_path, ReproduceConfig(scale="paper"))
    assert json.loads((tmp_path / "settings.json").read_text())["config"]["scale"] == "small"
