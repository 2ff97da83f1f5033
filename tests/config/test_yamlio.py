from pathlib import Path

import pytest

from config.yamlio import LoadError, load_file, parse_text


def problems(text: str) -> list[str]:
    with pytest.raises(LoadError) as exc:
        parse_text(text, "f.yaml")
    return [p.format() for p in exc.value.problems]


def test_positions_point_at_keys():
    loaded = parse_text("a:\n  - b: 1\n    c: x\n", "f.yaml")
    assert loaded.data == {"a": [{"b": 1, "c": "x"}]}
    assert loaded.locate(("a", 0, "c")) == (3, 5)
    assert loaded.locate(("a", 0, "missing")) == (2, 5)


def test_duplicate_key_is_reported_with_both_lines():
    [line] = problems("id: a\nmodel: x\nid: b\n")
    assert line.startswith("f.yaml:3:1: id: duplicate key 'id' (first defined at line 1)")


def test_syntax_error_has_line_and_column():
    [line] = problems("a: [1, 2\nb: 3\n")
    assert line.startswith("f.yaml:2:")
    assert "YAML syntax error" in line


def test_alias_bomb_is_refused_quickly():
    text = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    prev = "a"
    for n in "bcdefghi":
        text += f"{n}: &{n} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = n
    [line] = problems(text)
    assert "alias bomb" in line


def test_json_syntax_error(tmp_path: Path):
    f = tmp_path / "x.json"
    f.write_text('{"a": 1,\n "b": }\n')
    with pytest.raises(LoadError) as exc:
        load_file(f, "x.json")
    assert exc.value.problems[0].format().startswith("x.json:2:7: <file>: JSON syntax error")


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"   \n\n", "empty file"),
    (b"\x00\x01\x02binary", "binary file"),
    (b"\xff\xfe\xfa not utf8", "not valid UTF-8"),
])
def test_unreadable_files(tmp_path: Path, content: bytes, message: str):
    f = tmp_path / "x.yaml"
    f.write_bytes(content)
    with pytest.raises(LoadError) as exc:
        load_file(f, "x.yaml")
    assert message in exc.value.problems[0].message


def test_oversized_file_is_refused_before_parsing(tmp_path: Path):
    f = tmp_path / "big.yaml"
    f.write_bytes(b"a: " + b"x" * (20 * 1024 * 1024) + b"\n")
    with pytest.raises(LoadError) as exc:
        load_file(f, "big.yaml")
    assert "limit is" in exc.value.problems[0].message


def test_memo_by_file_parses_once_and_rereads_an_edited_file(tmp_path: Path):
    import os

    from config.yamlio import memo_by_file

    calls = []

    @memo_by_file
    def load(path: Path, display: str) -> object:
        calls.append(path)
        return parse_text(path.read_text(), display).data

    f = tmp_path / "a.yaml"
    f.write_text("a: 1\n")
    assert load(f, "a.yaml") == {"a": 1} and load(f, "a.yaml") == {"a": 1}
    assert len(calls) == 1
    f.write_text("a: [\n")
    os.utime(f, ns=(1, 1))  # a different mtime, whatever the clock's resolution
    for _ in range(2):
        with pytest.raises(LoadError):
            load(f, "a.yaml")
    assert len(calls) == 2  # the error is remembered too
