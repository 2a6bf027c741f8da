import numpy as np

from mads_text.common.records import DialogueRecord, Turn
from mads_text.fidelity import compare_outcomes, extract_amount, simulated_donation
from mads_text.metrics import proportion


def test_extract_amount():
    assert extract_amount("I'll give $0.50 to them") == 0.5
    assert extract_amount("ok, 50 cents then") == 0.5
    assert extract_amount("I can do 1 dollar") == 1.0
    assert extract_amount("sure, donate all of it") == 2.0
    assert extract_amount("maybe $1... no, $0.25") == 0.25
    assert extract_amount("$5 please") == 2.0  # capped at the $2 payment
    assert extract_amount("I'd rather not") is None


def _rec(pid, outcome, real, text="ok"):
    return DialogueRecord(
        id=f"{pid}-d0", scenario="p4g", group="import", persona={"_real_outcome": real, "gender": "Male", "age": 30},
        persona_id=pid, persona_prompt="", agent_prompt="",
        turns=[Turn(role="agent", text="Would you donate $1?"), Turn(role="user", text=text)],
        outcome=outcome, rounds=1,
    )


def test_simulated_donation_reads_the_ask():
    assert simulated_donation(_rec("a", "accept", 1.0, "Sure.")) == (True, 1.0)
    assert simulated_donation(_rec("a", "withdraw", 1.0)) == (False, 0.0)


def test_proportion_with_its_wilson_interval():
    p = proportion(5, 10)
    assert p["rate"] == 0.5 and abs(p["lo"] - 0.2366) < 1e-3 and abs(p["hi"] - 0.7634) < 1e-3
    assert proportion(0, 0) == {"rate": None, "lo": None, "hi": None}


def test_compare_outcomes_perfect_and_inverse():
    recs = [_rec(f"p{i}", "accept" if i % 2 else "withdraw", 1.0 if i % 2 else 0.0) for i in range(20)]
    res = compare_outcomes(recs)
    assert res["n_people"] == 20 and res["agreement"] == 1.0
    assert abs(res["corr_real_donated_vs_sim_rate"]["r"] - 1.0) < 1e-9
    assert abs(res["gap_sim_minus_real"]["value"]) < 1e-9
    inv = [_rec(f"p{i}", "withdraw" if i % 2 else "accept", 1.0 if i % 2 else 0.0) for i in range(20)]
    res = compare_outcomes(inv)
    assert res["agreement"] == 0.0 and res["corr_real_donated_vs_sim_rate"]["r"] < -0.99
    assert np.isclose(res["cohen_kappa"], -1.0)
