from mads_text.common.records import Turn
from mads_text.common.runstore import JsonlWriter, iter_jsonl, repair_tail


def test_torn_tail_is_cut_and_appends_continue(tmp_path):
    p = tmp_path / "d.jsonl"
    with JsonlWriter(p) as w:
        w.append({"id": 1})
        w.append(Turn(role="user", text="hi"))
    with open(p, "ab") as f:
        f.write(b'{"id": 3, "trunc')  # a crash mid-line
    assert [o.get("id") for o in iter_jsonl(p)] == [1, None]
    with JsonlWriter(p) as w:
        assert w.repaired == len(b'{"id": 3, "trunc')
        w.append({"id": 4})
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and lines[-1] == '{"id": 4}'


def test_repair_single_partial_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b'{"partial')
    assert repair_tail(p) == 9 and p.read_bytes() == b""
