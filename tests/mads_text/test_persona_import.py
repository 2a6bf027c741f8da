from pathlib import Path

import pytest
import yaml

from mads_text.persona_import import MappingError, import_personas, load_mapping
from mads_text.personas import render_user_prompt
from mads_text.scenario import load_scenario

P4G = Path("/work/shared/data/p4g") if Path("/work/shared/data/p4g").exists() else Path(__file__).parents[3] / "shared/data/p4g"
MAPPING = Path(__file__).parents[2] / "mads_text" / "mappings" / "p4g.yaml"

CSV = "uid,role,sex,age,extra,paid\nu1,1,Male,30,4.5,1.0\nu2,0,Female,41,2.0,0\nu3,1,Female,,3.1,0\n"


def _mapping(tmp_path, fields, **extra):
    m = {"source": {"id_column": "uid", "filter": {"role": "1"}}, "fields": fields, **extra}
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(m))
    return p


def test_small_table_import(tmp_path):
    (tmp_path / "t.csv").write_text(CSV)
    m = _mapping(tmp_path, {
        "gender": {"column": "sex", "map": {"Male": "Male", "Female": "Female"}},
        "age": {"column": "age", "type": "int", "missing": 35},
        "extraversion": {"column": "extra", "type": "float", "bins": {"edges": [3.0, 4.0], "labels": ["low", "medium", "high"]}},
    }, outcome={"column": "paid"})
    ps = import_personas(load_mapping(m), tmp_path / "t.csv", "insurance")
    assert [p.id for p in ps] == ["imported-u1", "imported-u3"]
    assert ps[0].fields["extraversion"] == "high" and ps[0].fields["extraversion_value"] == 4.5
    assert ps[1].fields["age"] == 35 and ps[1].fields["extraversion"] == "medium"
    assert ps[0].fields["_real_outcome"] == 1.0
    text = render_user_prompt(ps[0], load_scenario("insurance"))
    assert "**Extraversion**: high" in text and "_real_outcome" not in text and "1.0" not in text


def test_unknown_column_is_named(tmp_path):
    (tmp_path / "t.csv").write_text(CSV)
    m = _mapping(tmp_path, {"gender": {"column": "gender_col"}})
    with pytest.raises(MappingError, match=r"column 'gender_col' \(from fields\.gender\.column\)"):
        import_personas(load_mapping(m), tmp_path / "t.csv", "insurance")


def test_bad_values_name_row_and_column(tmp_path):
    (tmp_path / "t.csv").write_text(CSV)
    m = _mapping(tmp_path, {"age": {"column": "age", "type": "int"}})
    with pytest.raises(MappingError, match=r"t\.csv:4: empty value in column 'age'"):
        import_personas(load_mapping(m), tmp_path / "t.csv", "insurance")
    m = _mapping(tmp_path, {"g": {"column": "sex", "map": {"Male": "M"}}})
    with pytest.raises(MappingError, match=r"'Female' of column 'sex' is not in the field's map"):
        import_personas(load_mapping(m), tmp_path / "t.csv", "insurance")
    m = _mapping(tmp_path, {"g": {"column": "sex", "type": "float"}})
    with pytest.raises(MappingError, match=r"column 'sex' value 'Male' is not a float"):
        import_personas(load_mapping(m), tmp_path / "t.csv", "insurance")


def test_invalid_mapping_file(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump({"source": {"id_column": "uid"}, "fields": {"x": {"column": "a", "bins": {"edges": [1, 2], "labels": ["a"]}}}}))
    with pytest.raises(MappingError, match=r"fields\.x\.bins.*2 edges need 3 labels"):
        load_mapping(p)
    p.write_text(yaml.safe_dump({"source": {"id_column": "uid"}, "fields": {"x": {"colum": "a"}}}))
    with pytest.raises(MappingError, match=r"fields\.x\.colum"):
        load_mapping(p)


@pytest.mark.skipif(not (P4G / "full_info.csv").exists(), reason="P4G data not present")
def test_p4g_persuadees_import():
    ps = import_personas(load_mapping(MAPPING), P4G / "full_info.csv", "p4g")
    assert len(ps) == 1017  # one persuadee per dialogue
    assert len({p.id for p in ps}) == 1017
    donated = sum(p.fields["_real_outcome"] > 0 for p in ps)
    assert abs(donated / len(ps) - 0.536) < 0.01  # the README's 53.6 %
    assert {p.fields["openness"] for p in ps} == {"low", "medium", "high"}
