"""The Chain-of-Attitude state space is Appendix A.1 of the paper, in its order: every matrix is indexed by it."""

from mads_text.attitude import COARSE, STATE_GROUP, STATES, coarse_of, normalize_state

# Table 6 of the paper, row by row (AIDA stage -> MADS psychological state -> typical attitudes)
APPENDIX_A1 = {
    "negative": ("Refusal", "Resistance", "Disinterest", "Doubt"),
    "neutral": ("Indifference", "Cautious", "Hesitant", "Weighing Options"),
    "positive": ("Interested", "Attention", "Consideration", "Seeking Value"),
    "acceptance": ("Active", "Cooperative", "Satisfied", "Acceptance"),
}


def test_sixteen_states_in_the_order_of_appendix_a1():
    assert COARSE == tuple(APPENDIX_A1)
    assert STATES == tuple(s for group in APPENDIX_A1.values() for s in group)
    assert len(set(STATES)) == 16


def test_each_state_sits_in_its_coarse_group():
    for group, states in APPENDIX_A1.items():
        for s in states:
            assert STATE_GROUP[s] == group and coarse_of(s) == group


def test_state_names_are_normalised_from_free_text():
    assert normalize_state("weighing options") == "Weighing Options"
    assert normalize_state(" SEEKING VALUE ") == "Seeking Value"
