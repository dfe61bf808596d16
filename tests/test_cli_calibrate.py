import json
import sys
from pathlib import Path
from typing import Any

import pytest

from reliable_graph.cli import main

EXAMPLES = [
    {"question": "boiling point of water", "contexts": ["Water boils at 100 C."], "output": "100 C", "label": True},
    {"question": "boiling point of water", "contexts": ["Cats sleep a lot."], "output": "50 C", "label": False},
    {
        "question": "capital of France",
        "contexts": ["Paris is the capital of France."],
        "output": "Paris",
        "label": True,
    },
    {"question": "capital of France", "contexts": ["France is large", "Lyon"], "output": "Lyon", "label": False},
]


def run(*argv: str) -> int:
    return main(["calibrate", *argv])


def write(tmp_path: Path, lines: list[Any], name: str = "held_out.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return str(path)


def test_cli_calibrate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, EXAMPLES)
    assert (
        run(
            path,
            "--evaluator",
            "lexical_relevance",
            "--target-silent-failure",
            "0.01",
            "--method",
            "empirical",
            "--json",
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out == {
        "silent_failure_bound": None,
        "method": "empirical",
        "delta": None,
        "evaluator": "lexical_relevance",
        "file": path,
        "threshold": 1.0,
        "silent_failure": 0.0,
        "precision": 1.0,
        "pass_rate": 0.5,
        "retry_rate": 0.5,
        "escalation_rate": 0.25,
        "n": 4,
        "max_retries": 1,
        "target": "silent_failure <= 0.01",
    }


def test_cli_calibrate_table_and_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, EXAMPLES)
    assert run(path, "--evaluator", "lexical_relevance", "--target-precision", "0.9") == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│ threshold"))
    assert "1.0000" in row and "precision >= 0.9" in out and "lexical_relevance" in out


def test_cli_calibrate_import_path_factory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_evals.py").write_text(
        "from reliable_graph import Predicate\n"
        "def make():\n"
        "    return Predicate(fn=lambda s: 1.0 if s.output in ('100 C', 'Paris') else 0.2, pass_input=True,"
        " name='exact')\n"
        "INSTANCE = make()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, EXAMPLES)
    for spec in ["my_evals:make", "my_evals:INSTANCE"]:
        assert run(path, "--evaluator", spec, "--target-silent-failure", "0", "--method", "empirical", "--json") == 0
        assert json.loads(capsys.readouterr().out)["threshold"] == 1.0
    sys.modules.pop("my_evals", None)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ({"question": "q", "contexts": [], "output": "o"}, "missing 'label'"),
        ({"question": "q", "contexts": "text", "output": "o", "label": True}, "'contexts' must be a list"),
        ({"question": "q", "contexts": [42], "output": "o", "label": True}, "'contexts'"),
        ({"question": "q", "contexts": [], "output": "o", "label": "yes"}, "'label' must be true or false"),
        ({"question": "", "contexts": [], "output": "o", "label": True}, "'question' must be a non-empty string"),
        ("", "empty line"),
    ],
)
def test_cli_calibrate_malformed_line_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: Any, error: str
) -> None:
    path = write(tmp_path, [*EXAMPLES[:2], line, *EXAMPLES[2:]])
    assert run(path, "--evaluator", "lexical_relevance", "--target-silent-failure", "0.01") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}:3: ") and error in captured.err
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([], "empty"),
        (EXAMPLES[::2], "labelled correct"),
        ([{**EXAMPLES[1], "label": True}, {**EXAMPLES[0], "label": False}], "no threshold meets"),
    ],
)
def test_cli_calibrate_bad_set_is_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[Any], error: str
) -> None:
    path = write(tmp_path, lines)
    assert run(path, "--evaluator", "lexical_relevance", "--target-silent-failure", "0", "--method", "empirical") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and error in err


def test_cli_calibrate_out_of_range_score_names_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad_evals.py").write_text(
        "from reliable_graph import Predicate\nBAD = Predicate(fn=lambda o: 1.5, name='overconfident')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, EXAMPLES)
    assert run(path, "--evaluator", "bad_evals:BAD", "--target-silent-failure", "0.1") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:1: ") and "must be in [0, 1], got 1.5" in err
    sys.modules.pop("bad_evals", None)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("nonsense", "neither a built-in evaluator"),
        ("no_such_module_xyz:thing", "cannot import module"),
        ("json:no_such_attr", "has no attribute"),
        ("json:dumps", "calling the factory failed"),
        ("json:__name__", "must be an evaluator"),
    ],
)
def test_cli_calibrate_bad_evaluator(tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, error: str) -> None:
    path = write(tmp_path, EXAMPLES)
    assert run(path, "--evaluator", spec, "--target-silent-failure", "0.01") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --evaluator") and error in err


def test_cli_calibrate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.jsonl")
    assert run(path, "--evaluator", "lexical_relevance", "--target-silent-failure", "0.01") == 2
    assert capsys.readouterr().err == f"error: {path}: no such file\n"


def test_cli_calibrate_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "latin1.jsonl").write_bytes(b'{"question": "caf\xe9"}\n')
    assert run(str(tmp_path / "latin1.jsonl"), "--evaluator", "lexical_relevance", "--target-precision", "0.9") == 2
    assert "not UTF-8 text" in capsys.readouterr().err
    assert run(str(tmp_path), "--evaluator", "lexical_relevance", "--target-precision", "0.9") == 2
    assert "is a directory" in capsys.readouterr().err


def test_cli_calibrate_needs_exactly_one_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("f.jsonl", "--evaluator", "lexical_relevance") == 2
    assert "give a target" in capsys.readouterr().err
    assert run("f.jsonl", "--evaluator", "x", "--target-precision", "0.9", "--target-silent-failure", "0.1") == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_cli_calibrate_negative_max_retries(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("f.jsonl", "--evaluator", "lexical_relevance", "--target-precision", "0.9", "--max-retries", "-1") == 2
    assert "'--max-retries': must be at least 0, got -1" in capsys.readouterr().err


def test_cli_calibrate_guarantee_needs_enough_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, EXAMPLES)
    assert run(path, "--evaluator", "lexical_relevance", "--target-silent-failure", "0.01") == 2
    err = capsys.readouterr().err
    assert "cannot certify silent_failure <= 0.01 with probability 0.95 on 4 examples" in err
    assert "about 299 examples" in err and len(err.strip().splitlines()) == 1


def test_cli_calibrate_guarantee_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, EXAMPLES * 200)
    assert run(path, "--evaluator", "lexical_relevance", "--target-silent-failure", "0.01", "--delta", "0.1") == 0
    out = capsys.readouterr().out
    assert "Learn then Test" in out and "with probability 90%" in out


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--method", "bayes"], "'--method': must be one of ltt, empirical; got 'bayes'"),
        (["--delta", "0"], "'--delta': must be in (0, 0.5], got 0"),
        (["--delta", "1"], "'--delta': must be in (0, 0.5], got 1"),
        (["--delta", "nan"], "'--delta': must be in (0, 0.5] (a finite number), got nan"),
    ],
)
def test_cli_calibrate_method_and_delta_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], error: str
) -> None:
    path = write(tmp_path, EXAMPLES)
    assert run(path, "--evaluator", "lexical_relevance", "--target-silent-failure", "0.01", *args) == 2
    assert error in capsys.readouterr().err


def test_cli_calibrate_pipeline_from_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [{**x, "step": step} for step in ("retrieve", "answer") for x in EXAMPLES * 400]
    path = write(tmp_path, lines)
    args = ("--evaluator", "lexical_relevance", "--target-silent-failure", "0.02", "--pipeline")
    assert run(path, *args, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["steps"]) == {"retrieve", "answer"} and data["split"].startswith("union")
    assert data["silent_failure_bound"] <= 0.02 and all(s["delta"] == 0.025 for s in data["steps"].values())
    assert run(path, *args) == 0 and "the run's bound" in capsys.readouterr().out
    no_step = write(tmp_path, EXAMPLES * 10)
    assert run(no_step, *args) == 2 and "needs a 'step' on every line" in capsys.readouterr().err
