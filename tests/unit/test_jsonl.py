"""JSON Lines readers: a record ends at "\\n" only, whatever separators its strings hold."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cluster.config import load_config
from cluster.exceptions import ConfigError, DataFileError
from cluster.exemplars import PLAIN_SOURCE, Exemplar, read_exemplars
from cluster.jsonl import json_lines, read_jsonl, split_records
from loadtest.summary import read_records
from router._telemetry import usage_of

pytestmark = pytest.mark.unit

#: Characters str.splitlines() splits at, which JSON allows unescaped in strings.
SEPARATORS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
TRICKY = f"first{SEPARATORS}last\rcarriage"


def _write(path: Path, rows: list[Any]) -> Path:
    # ensure_ascii=False writes the separators raw, as real datasets do.
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def test_split_records_splits_at_newline_only() -> None:
    assert split_records(f"a{TRICKY}\r\nb\n") == [f"a{TRICKY}", "b", ""]
    assert len(f"a{TRICKY}".splitlines()) > 1  # what the old readers did


def test_json_lines_keeps_separators_inside_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "rows.jsonl", [{"prompt": TRICKY}, {"prompt": "two"}])
    assert [(n, row["prompt"]) for n, row in json_lines(path)] == [(1, TRICKY), (2, "two")]


def test_json_lines_names_the_file_and_line_of_a_bad_record(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"ok": 1}\n\n{"torn": \n')
    with pytest.raises(DataFileError, match=r"rows\.jsonl:3: not JSON"):
        read_jsonl(path)
    assert read_jsonl(path, skip_invalid=True) == [{"ok": 1}]


def test_loadtest_records_keep_separators(tmp_path: Path) -> None:
    path = _write(tmp_path / "records.jsonl", [{"kind": "start", "error": TRICKY}])
    with path.open("a") as f:
        f.write('{"kind": "sto')  # a writer killed mid-line
    assert read_records(path) == [{"kind": "start", "error": TRICKY}]


def test_usage_of_a_body_whose_text_holds_a_separator() -> None:
    body = json.dumps(
        {"choices": [{"text": TRICKY}], "usage": {"prompt_tokens": 3, "completion_tokens": 5}},
        ensure_ascii=False,
    )
    assert usage_of(body) == (3, 5)
    assert usage_of(f"data: {body}\r\n\r\n") == (3, 5)


def test_exemplars_in_jsonl_keep_multiline_texts_and_sources(tmp_path: Path) -> None:
    code = "def f(x):\n    return x + 1\n"
    path = _write(tmp_path / "ex.jsonl", [{"text": code, "source": "raw"}, {"text": TRICKY}])
    assert read_exemplars(path) == [
        Exemplar(code.strip(), "raw"),
        Exemplar(TRICKY, PLAIN_SOURCE),
    ]


def test_plain_exemplar_files_are_one_prompt_per_line(tmp_path: Path) -> None:
    path = tmp_path / "ex.txt"
    # A carriage return ends a line of a text file; the other separators do not.
    path.write_text(f"one\n\n  a{SEPARATORS}b  \r\ntwo\rthree\n", "utf-8")
    assert [e.text for e in read_exemplars(path)] == ["one", f"a{SEPARATORS}b", "two", "three"]
    assert {e.source for e in read_exemplars(path)} == {PLAIN_SOURCE}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "x"}, "rows are"),
        ({"text": "x", "style": "y"}, "rows are"),
        ({"text": "  "}, "text must be a non-empty string"),
        ({"text": "x", "source": 3}, "source must be a non-empty string"),
    ],
)
def test_a_bad_exemplar_row_is_a_config_error_at_load(
    tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    _write(tmp_path / "law.jsonl", [{"text": "Is a verbal contract binding?"}, row])
    config = {
        "data_dir": str(tmp_path / "data"),
        "models": [
            {"name": "law", "role": "specialist", "domains": ["law"], "tiny": {},
             "exemplars_file": "law.jsonl"},
            {"name": "generalist", "role": "generalist", "tiny": {}},
        ],
    }  # fmt: skip
    path = tmp_path / "garden.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    (problem,) = info.value.problems
    assert problem.startswith("models[0].exemplars_file: ")
    assert "law.jsonl:2: " in problem and message in problem


def test_route_eval_reads_chat_rows_and_separators(tmp_path: Path) -> None:
    from cluster.cli import _route  # noqa: F401  (registers the commands)
    from cluster.cli._main import cli

    law = ["Is a verbal contract binding?", "What is a tort?", "Can my landlord evict me?"]
    general = ["Who wrote Hamlet?", "Why is the sky blue?", "What is the capital of Peru?"]
    config = {
        "data_dir": str(tmp_path / "data"),
        "models": [
            {"name": "law", "role": "specialist", "domains": ["law"], "exemplars": law,
             "tiny": {}},
            {"name": "generalist", "role": "generalist", "exemplars": general, "tiny": {}},
        ],
        "router": {"classifier": {"options": {"semantic": False}}},
    }  # fmt: skip
    config_path = tmp_path / "garden.yaml"
    config_path.write_text(yaml.safe_dump(config))
    chat = [
        {"role": "user", "content": "Who wrote Hamlet?"},
        {"role": "assistant", "content": "Shakespeare."},
        {"role": "user", "content": f"Can my landlord evict me?{SEPARATORS}"},
    ]
    data = _write(
        tmp_path / "rows.jsonl",
        [
            {"messages": chat, "domain": "law"},
            {"prompt": f"What is a tort?{TRICKY}", "domain": "law"},
        ],
    )
    args = ["route-eval", "--config", str(config_path), "--data", str(data), "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 2
    # Both rows are law's: the oracle sends both to law, never dearer than routing.
    cost = report["cost"]
    assert cost["oracle_per_1k"] <= cost["routed_per_1k"] <= cost["generalist_per_1k"]
    assert cost["ceiling"] >= cost["savings"] >= 1.0

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "not a list", "domain": "law"}\n')
    args[4] = str(bad)
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2
    assert "bad.jsonl:1:" in result.output and '"messages" list' in result.output


def _one_model_config(tmp_path: Path, exemplars_file: str) -> Path:
    config = {
        "data_dir": str(tmp_path / "data"),
        "models": [
            {"name": "law", "role": "specialist", "domains": ["law"], "tiny": {},
             "exemplars_file": exemplars_file},
            {"name": "generalist", "role": "generalist", "tiny": {}},
        ],
    }  # fmt: skip
    path = tmp_path / "garden.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_bundled_sets_earlier_txt_names_still_load(tmp_path: Path) -> None:
    garden = load_config(str(_one_model_config(tmp_path, "exemplars/law.txt")))
    assert Path(garden.models[0].exemplars_file or "").name == "law.jsonl"


def test_an_exemplar_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "law.txt").write_bytes(b"caf\xe9 law\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(_one_model_config(tmp_path, "law.txt")))
    assert "models[0].exemplars_file: cannot read" in info.value.problems[0]


def test_the_jsonl_suffix_is_matched_in_any_case(tmp_path: Path) -> None:
    path = _write(tmp_path / "ex.JSONL", [{"text": "x", "source": "s"}])
    assert read_exemplars(path) == [Exemplar("x", "s")]
