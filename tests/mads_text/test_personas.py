import functools

import numpy as np
from scipy.stats import chisquare

from mads_text.personas import (
    GROUPS,
    MBTI,
    ZODIAC,
    render_agent_prompt,
    render_user_prompt,
    sample_persona,
    sample_personas,
)
from mads_text.scenario import load_scenario

N = 3000


@functools.cache
def busi_personas():
    return sample_personas(load_scenario("insurance"), "busi", N, seed=11)


def _chi2_ok(observed_values, candidates, probs):
    counts = np.array([sum(1 for v in observed_values if v == c) for c in candidates], dtype=float)
    expected = np.array(probs) * len(observed_values)
    return chisquare(counts, expected).pvalue


def test_categorical_and_boolean_priors_match():
    sc = load_scenario("insurance")
    ps = busi_personas()
    hs = sc.business_attributes["health_status"]
    p = _chi2_ok([x.fields["health_status"] for x in ps], [c.value for c in hs.candidates], [c.p for c in hs.candidates])
    assert p > 0.001
    p = _chi2_ok([x.fields["purchased_insurance_before"] for x in ps], [True, False], [0.5, 0.5])
    assert p > 0.001
    si = sc.business_attributes["has_social_medical_insurance"]
    p = _chi2_ok([x.fields["has_social_medical_insurance"] for x in ps], [True, False], [si.prior["true"], si.prior["false"]])
    assert p > 0.001
    ar = sc.user_profile["age_range"]
    p = _chi2_ok([x.fields["age_range"] for x in ps], [c.value for c in ar.candidates], [c.p for c in ar.candidates])
    assert p > 0.001


def test_a_wrong_prior_is_detected():
    # the check has power: sampled health status does not fit a uniform prior
    sc = load_scenario("insurance")
    ps = busi_personas()
    hs = sc.business_attributes["health_status"]
    p = _chi2_ok([x.fields["health_status"] for x in ps], [c.value for c in hs.candidates], [1 / 7] * 7)
    assert p < 1e-6


def test_exact_age_inside_band_and_numeric_in_range():
    for x in busi_personas()[:500]:
        lo, hi = map(int, x.fields["age_range"].split("-"))
        assert lo <= x.fields["age"] <= hi
        assert 0 <= x.fields["monthly_insurance_budget"] <= 800


def test_signifiers_uniform():
    sc = load_scenario("insurance")
    z = [x.fields["zodiac"] for x in busi_personas()]
    assert _chi2_ok(z, list(ZODIAC), [1 / 12] * 12) > 0.001
    m = [x.fields["mbti"] for x in sample_personas(sc, "mbti", 2000, seed=5)]
    assert _chi2_ok(m, list(MBTI), [1 / 16] * 16) > 0.001


def test_groups_add_the_right_fields_and_are_paired():
    sc = load_scenario("insurance")
    by = {g: sample_persona(sc, g, 3, seed=7) for g in GROUPS}
    assert "zodiac" not in by["base"].fields and "mbti" not in by["base"].fields
    assert "zodiac" in by["sign"].fields and "mbti" not in by["sign"].fields
    assert "mbti" in by["mbti"].fields and "zodiac" not in by["mbti"].fields
    assert "zodiac" in by["busi"].fields and "health_status" in by["busi"].fields
    assert "health_status" not in by["sign"].fields
    demo = {k: by["base"].fields[k] for k in by["base"].profile_keys}
    for g in ("sign", "mbti", "busi"):
        assert {k: by[g].fields[k] for k in by[g].profile_keys} == demo
    assert by["sign"].fields["zodiac"] == by["busi"].fields["zodiac"]


def test_same_seed_same_personas_and_prefix_stable():
    sc = load_scenario("automotive")
    a = sample_personas(sc, "busi", 30, seed=9)
    b = sample_personas(sc, "busi", 30, seed=9)
    assert [x.fields for x in a] == [x.fields for x in b]
    assert [x.fields for x in sample_personas(sc, "busi", 10, seed=9)] == [x.fields for x in a[:10]]
    c = sample_personas(sc, "busi", 30, seed=10)
    assert [x.fields for x in a] != [x.fields for x in c]
    assert len({x.id for x in a}) == 30


PAPER_TASK = """<task>
  Based on the above personal profile, please role-play as this person.
  Note:
  1.Make your replies as conversational and colloquial as possible.
  2.Only output the dialogue. Do not output any thoughts, inner monologue, or any unnecessary content.
"""


def test_user_prompt_renders_as_appendix():
    sc = load_scenario("insurance")
    p = sample_persona(sc, "busi", 0, seed=7)
    text = render_user_prompt(p, sc)
    assert text.startswith("<user_profile>\n  <basic_info>\n    - **Name**: ")
    assert f"    - **Gender**: {p.fields['gender']}\n" in text
    assert f"    - **Health Status**: {p.fields['health_status']}\n" in text
    assert (
        "  <personality>\n    Based on the commonly accepted and general "
        f"{p.fields['zodiac']} personality traits, please characterize this person's personality and reflect it in the "
        "dialogue.\n  </personality>\n</user_profile>\n"
    ) in text
    assert PAPER_TASK in text
    assert "[ACCEPT]" in text and "[WITHDRAW]" in text
    assert text.endswith("</task>\nStart the task!")
    assert "{" not in text


def test_base_prompt_has_no_personality_or_business():
    sc = load_scenario("insurance")
    text = render_user_prompt(sample_persona(sc, "base", 0, seed=7), sc)
    assert "<personality>" not in text and "Health Status" not in text
    assert "  </basic_info>\n</user_profile>\n<task>" in text


def test_agent_prompt_renders_as_appendix():
    sc = load_scenario("insurance")
    text = render_agent_prompt(sc)
    assert text.startswith("<reference_information>\nProduct metadata\n  Product: Critical Illness Protection Plan")
    assert text.endswith(
        "</reference_information>\n<task>\n  sell a critical illness insurance policy (monthly 288 RMB)\n</task>\nStart the task!"
    )
    sop = "Business SOP\nStep 1: Opening\n  Objective: build rapport"
    assert "<task>\n  Business SOP\n  Step 1: Opening\n    Objective: build rapport\n</task>" in render_agent_prompt(sc, sop)


def test_conditional_priors_hold_within_each_condition():
    sc = load_scenario("insurance")
    ps = busi_personas()
    ls = sc.user_profile["life_stage"]
    for band in ("18-24", "55-60"):
        case = ls.given.cases[band]["candidates"]
        got = [x.fields["life_stage"] for x in ps if x.fields["age_range"] == band]
        assert set(got) <= {c["value"] for c in case}  # no teenager for a 19-year-old
        assert _chi2_ok(got, [c["value"] for c in case], [c["p"] for c in case]) > 0.001
    # a numeric conditional moves the mean: budgets follow income
    low = [x.fields["monthly_insurance_budget"] for x in ps if x.fields["income_level"] == "Below 2,500 RMB"]
    high = [x.fields["monthly_insurance_budget"] for x in ps if x.fields["income_level"] == "15,000 RMB or more"]
    assert np.mean(low) < 120 < 400 < np.mean(high)


def test_exclusions_are_never_drawn_and_earlier_priors_keep():
    sc = load_scenario("insurance")
    ps = busi_personas()
    assert not [x for x in ps if x.fields["age"] <= 21 and x.fields["education"] in ("Bachelor's degree", "Master's degree or above")]
    assert not [x for x in ps if x.fields["age"] <= 23 and x.fields["occupation"] == "Manager"]
    ar = sc.user_profile["age_range"]  # the excluded pairs redraw education, not age
    assert _chi2_ok([x.fields["age_range"] for x in ps], [c.value for c in ar.candidates], [c.p for c in ar.candidates]) > 0.001


def test_stance_is_deterministic_and_follows_the_persona():
    from mads_text.stance import derive_stance, render_stance

    sc = load_scenario("insurance")
    ps = busi_personas()[:300]
    st = [derive_stance(p, sc) for p in ps]
    assert st == [derive_stance(p, sc) for p in ps]
    for p, s in zip(ps, st):
        assert s.budget == p.fields["monthly_insurance_budget"] and not s.budget_estimated
        assert s.budget_fits == (s.budget >= 288) and 1 <= len(s.objections) <= 3
        if not s.budget_fits:  # the persona's own reason comes first
            assert s.objections[0] in ("288 a month is more than I can put toward insurance",
                                       "money is tight right now, I can't take on another monthly bill")
    assert {s.leaning for s in st} == {"open", "guarded", "resistant"}
    text = render_stance(st[0], sc, ps[0].name)
    assert ps[0].name in text and "Objections" in text and "288 RMB a month" in text
    # without business attributes the budget is an estimate from income
    s = derive_stance(sample_persona(sc, "sign", 0, seed=11), sc)
    assert s.budget_estimated and s.budget is not None


def test_no_customer_shares_a_name_with_the_agent():
    for name in ("insurance", "automotive"):
        sc = load_scenario(name)
        taken = set(sc.agent.name.lower().split())
        assert all(p.name.lower() not in taken for p in sample_personas(sc, "sign", 300, seed=3))
