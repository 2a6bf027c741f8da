import textwrap

import pytest
import yaml

from mads_text.scenario import ScenarioError, builtin_scenarios, load_scenario, resolve_scenario_path


def test_builtin_scenarios_load():
    names = builtin_scenarios()
    assert {"insurance", "automotive", "finance", "p4g"} <= set(names)
    for n in names:
        sc = load_scenario(n)
        assert sc.user_profile
        assert sc.business_attributes or n == "p4g"
        assert sc.sha256 and sc.source_file.endswith(f"{n}.yaml")


def test_insurance_has_paper_business_attributes():
    sc = load_scenario("insurance")
    hs = sc.business_attributes["health_status"]
    assert [c.p for c in hs.candidates] == [0.10, 0.05, 0.05, 0.05, 0.05, 0.30, 0.40]
    assert sc.business_attributes["purchased_insurance_before"].prior == {"true": 0.5, "false": 0.5}


def _write_variant(tmp_path, mutate):
    data = yaml.safe_load(resolve_scenario_path("insurance").read_text())
    mutate(data)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def test_probabilities_not_summing_to_one_name_file_and_field(tmp_path):
    def mutate(d):
        d["business_attributes"]["health_status"]["candidates"][0]["p"] = 0.2

    p = _write_variant(tmp_path, mutate)
    with pytest.raises(ScenarioError) as e:
        load_scenario(str(p))
    msg = str(e.value)
    assert str(p) in msg
    assert "business_attributes.health_status" in msg
    assert "sum to 1.1" in msg


def test_boolean_prior_must_sum_to_one(tmp_path):
    def mutate(d):
        d["business_attributes"]["purchased_insurance_before"]["prior"] = {"true": 0.7, "false": 0.7}

    p = _write_variant(tmp_path, mutate)
    with pytest.raises(ScenarioError, match=r"business_attributes\.purchased_insurance_before.*sum to 1\.4"):
        load_scenario(str(p))


def test_unknown_field_is_named(tmp_path):
    def mutate(d):
        d["agent"]["meta_instructions"] = "typo"

    p = _write_variant(tmp_path, mutate)
    with pytest.raises(ScenarioError, match=r"field 'agent\.meta_instructions'.*Extra inputs"):
        load_scenario(str(p))


def test_wrong_type_and_missing_field(tmp_path):
    def mutate(d):
        d["user_profile"]["gender"]["type"] = "weird"
        del d["product"]["metadata"]

    p = _write_variant(tmp_path, mutate)
    with pytest.raises(ScenarioError) as e:
        load_scenario(str(p))
    assert "user_profile.gender" in str(e.value)
    assert "product.metadata" in str(e.value)


def test_numeric_range_order(tmp_path):
    def mutate(d):
        d["business_attributes"]["monthly_insurance_budget"]["range"] = [900, 100]

    p = _write_variant(tmp_path, mutate)
    with pytest.raises(ScenarioError, match="monthly_insurance_budget"):
        load_scenario(str(p))


def test_not_yaml_and_missing_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: [unclosed")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(p))
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(str(tmp_path / "nope.yaml"))
    with pytest.raises(ScenarioError, match="unknown scenario"):
        load_scenario("no_such_scenario")


def test_minimal_custom_scenario(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(textwrap.dedent("""
        name: tiny
        product: {name: Widget, metadata: "A widget, 5 EUR."}
        agent: {name: Sam, meta_instruction: sell the widget}
        user_profile:
          gender: {type: categorical, candidates: [{value: Male, p: 0.5}, {value: Female, p: 0.5}]}
    """))
    sc = load_scenario(str(p))
    assert sc.name == "tiny" and sc.business_attributes == {}


def test_conditional_priors_and_exclusions_are_validated(tmp_path):
    def later_field(d):
        d["user_profile"]["gender"]["given"] = {"field": "life_stage", "cases": {"Living alone": {"candidates": [{"value": "Male", "p": 1.0}]}}}

    with pytest.raises(ScenarioError, match=r"gender\.given: 'life_stage' must be an attribute defined before"):
        load_scenario(str(_write_variant(tmp_path, later_field)))

    def bad_case(d):
        d["user_profile"]["life_stage"]["given"]["cases"]["18-24"]["candidates"][0]["p"] = 0.9

    with pytest.raises(ScenarioError, match=r"life_stage.*cases\['18-24'\].*sum to"):
        load_scenario(str(_write_variant(tmp_path, bad_case)))

    def unknown_value(d):
        d["user_profile"]["life_stage"]["given"]["cases"]["18-24"]["candidates"][0]["value"] = "On the moon"

    with pytest.raises(ScenarioError, match=r"values outside the attribute's candidates"):
        load_scenario(str(_write_variant(tmp_path, unknown_value)))

    def unknown_exclusion(d):
        d["exclusions"].append({"when": {"age": {"max": 20}, "hair_colour": ["red"]}})

    with pytest.raises(ScenarioError, match=r"exclusions\[2\]: unknown fields \['hair_colour'\]"):
        load_scenario(str(_write_variant(tmp_path, unknown_exclusion)))

    def unknown_stance_field(d):
        d["stance"]["objections"].append({"when": {"shoe_size": [42]}, "text": "x"})

    with pytest.raises(ScenarioError, match=r"stance\.objections\[\d+\]\.when: unknown fields \['shoe_size'\]"):
        load_scenario(str(_write_variant(tmp_path, unknown_stance_field)))
