"""Property tests: every answer to an escalation is applied exactly once or rejected without a trace.

Generated answers: the four `test_answer_property_*` tests run 140 + 140 + 120 + 110 = 510
examples; each example feeds one generated answer (valid, near-valid or junk) through
`parse_answer`, `answer_escalations` and a raw `Command(resume=...)` on fresh threads (plus a
generated stale re-answer). `ANSWERS_FED` counts the answers that went through the whole check,
and `test_zz_at_least_500_generated_answers` asserts the total is >= 500.

The graph: START -> step (a `reliable_step` whose evaluator never passes, so it always escalates)
-> downstream (counts its runs: the side effect that must happen exactly once) -> END, plus a
`HumanEscalation` node. Four variants: the library's own format with every decision allowed, the
Agent Inbox format allowing only approve/edit/terminate, the HITL format without terminate, and
the HITL format on a real SQLite file.

Bugs this file found, now fixed in the library and kept as regression tests at the end of the file:
  A. a rejected answer that only fails validation because it holds a tuple is replayed, as valid, on
     the node's next run (LangGraph's checkpoint serializer turns tuples into lists), so
     `invoke(None)` applies an answer that was rejected, and the reviewer's next answer is ignored
     (raw `({"type": "ignore"},)`, rejected, then a valid edit: the run ends `terminated`).
  B. `parse_answer` accepts an edit that the checkpointer cannot store (an int outside
     [-2**63, 2**64 - 1], or JSON nested ~251-254 deep): `answer_escalations` validates it, then
     `invoke` raises TypeError after the downstream node already ran; nothing is recorded, so the
     next answer runs the downstream side effect a second time.
  C. a context chunk given as `{"text": "  "}` is accepted although a blank string is rejected.
  D. `parse_answer` accepts text with a lone surrogate ("\\ud800"); the checkpointer stores it as
     "?", so the applied edit silently differs from the reviewer's answer.
  E. when the node replays a rejected `Decision` instance holding `ChunkInput` context (rebuilt by
     LangGraph's serializer without validation), `parse_answer` emits pydantic serializer warnings,
     which raise inside the node under warnings-as-errors.
The fixes: `HumanEscalation` judges a raw answer in the form the checkpointer stores and replays
(A, D for raw answers), `parse_answer` refuses values no checkpointer stores as given (B, D through
`answer_escalations`), blank chunk texts are refused (C), and a `Decision` holds only plain data (E).
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphs import State
from hypothesis import HealthCheck, Phase, assume, event, example, given, seed, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from reliable_graph import (
    AlreadyAnsweredError,
    Decision,
    HumanEscalation,
    InvalidAnswerError,
    NoPendingEscalationError,
    Predicate,
    ReliabilityState,
    answer_escalations,
    escalation_of,
    parse_answer,
    pending_escalations,
    reliable_step,
    run_outcome,
    step_outcomes,
    task_records,
)
from reliable_graph.escalation import ChunkInput

DECISIONS = ("approve", "edit", "provide_context", "retry", "terminate")
INVALID = "<invalid>"
"""Expected verdict of an answer broken on purpose."""
INVALID_UNLESS_TEXT_ORIGINAL = "<invalid unless the original output is text>"
"""An edit sent as text that is not JSON: only an output that was text itself may take it."""

ANSWERS_FED: Counter[str] = Counter()
"""Generated answers that went through the whole check, by variant."""
PROPERTY_TESTS_RUN: set[str] = set()
VERDICTS: Counter[tuple[str, str, str]] = Counter()
"""(variant, answer format, applied action or "rejected") of the answers counted in ANSWERS_FED."""

# --------------------------------------------------------------------------------------------
# The graph and its side-effect counters


CALLS: defaultdict[str, list[list[str]]] = defaultdict(list)
"""Per thread: the context texts the step function saw, one entry per call."""
DOWNSTREAM: Counter[str] = Counter()
"""Per thread: runs of the node after the step (the side effect that must happen once)."""
NEVER = Predicate(fn=lambda output: False, name="never", reason="the output is never good enough")
_IDS = itertools.count()


@dataclass(frozen=True)
class Spec:
    name: str
    format: str
    allowed: tuple[str, ...]
    original: Any
    """The output the step returns (and escalates) on every call."""
    saver: str


SPECS = {
    "reliable": Spec("reliable", "reliable", DECISIONS, {"text": "bad", "n": 1}, "memory"),
    "agent_inbox": Spec("agent_inbox", "agent_inbox", ("approve", "edit", "terminate"), "bad", "memory"),
    "hitl": Spec("hitl", "hitl", ("approve", "edit", "provide_context", "retry"), [1, "bad", {"k": None}], "memory"),
    "sqlite": Spec("sqlite", "hitl", DECISIONS, {"text": "bad", "n": 1}, "sqlite"),
}


def _texts(context: Any) -> list[str]:
    return [c["text"] if isinstance(c, dict) else str(c) for c in context or ()]


def _step_fn(original: Any) -> Any:
    def step(state: Any) -> dict[str, Any]:
        CALLS[state["question"]].append(_texts(state.get("context")))
        return {"output": json.loads(json.dumps(original))}

    return step


def _downstream(state: Any) -> dict[str, Any]:
    DOWNSTREAM[state["question"]] += 1
    return {"log": ["downstream ran"]}


def _build(spec: Spec, checkpointer: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node(
        reliable_step(
            _step_fn(spec.original),
            name="step",
            evaluator=NEVER,
            threshold=1.0,
            max_retries=0,
            pass_to="downstream",
        )
    )
    builder.add_node("downstream", _downstream)
    builder.add_node(HumanEscalation(allowed=list(spec.allowed), format=spec.format))  # type: ignore[arg-type]
    builder.add_edge(START, "step")
    builder.add_edge("downstream", END)
    return builder.compile(checkpointer=checkpointer)


@dataclass
class Bench:
    spec: Spec
    graph: Any


@pytest.fixture(scope="module")
def benches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Bench]]:
    path = tmp_path_factory.mktemp("answers") / "checkpoints.sqlite"
    conn = sqlite3.connect(path, check_same_thread=False)
    built = {
        spec.name: Bench(spec, _build(spec, SqliteSaver(conn) if spec.saver == "sqlite" else InMemorySaver()))
        for spec in SPECS.values()
    }
    yield built
    conn.close()


class Run:
    """One fresh thread, paused on the step's escalation."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.graph = bench.graph
        self.original = bench.spec.original
        self.tid = f"{bench.spec.name}-{next(_IDS)}"
        self.config: Any = {"configurable": {"thread_id": self.tid}}
        out = self.graph.invoke({"question": self.tid, "context": ["c0"]}, self.config)
        [self.interrupt] = out["__interrupt__"]
        escalation = escalation_of(self.interrupt.value)
        assert escalation is not None
        self.escalation = escalation
        assert self.counts() == (1, 0)

    def counts(self) -> tuple[int, int]:
        """(step function calls, downstream runs) on this thread."""
        return len(CALLS[self.tid]), DOWNSTREAM[self.tid]

    def snapshot(self) -> Any:
        return self.graph.get_state(self.config)

    def pending(self) -> list[Any]:
        return pending_escalations(self.graph, self.config)

    def resume(self, interrupt_id: str, answer: Any) -> Any:
        return self.graph.invoke(Command(resume={interrupt_id: answer}), self.config)


# --------------------------------------------------------------------------------------------
# What the checkpointer can store, and what it gives back

_SERDE = JsonPlusSerializer()


def _round_trip(value: Any) -> tuple[bool, Any]:
    """(storable, the value as the checkpointer gives it back)."""
    try:
        return True, _SERDE.loads_typed(_SERDE.dumps_typed(value))
    except (TypeError, ValueError, RecursionError, OverflowError):
        return False, None


def _verdict(answer: Any, spec: Spec) -> Decision | None:
    try:
        return parse_answer(answer, allowed=spec.allowed, kind="output", original=spec.original)
    except InvalidAnswerError:
        return None


def _replayed_verdict(stored: Any, spec: Spec) -> tuple[bool, bool]:
    """(valid, warned) for an answer as the node reads it back from the checkpoint on its next run."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return _verdict(stored, spec) is not None, False
        except UserWarning:
            return False, True


# --------------------------------------------------------------------------------------------
# Strategies: each case is (answer, expected verdict): an action when valid by construction
# (invalid if the variant does not allow it), INVALID when broken on purpose, None for junk.

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
ODD_TEXT = st.sampled_from(
    ["", " ", "\t\n ", "\x00", "approve", "null", "NaN", "Infinity", "[]", "{}", '{"a": 1}', "1e400", "\ud800x", "é✓🙂"]
)
TEXT = st.text(max_size=12) | ODD_TEXT
HUGE = st.sampled_from([20_000, 200_000]).flatmap(lambda n: st.sampled_from(["x" * n, "é🙂" * (n // 2)]))
SCALARS = st.none() | st.booleans() | INT64 | FINITE | TEXT
JSON = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(TEXT, kids, max_size=4), max_leaves=10
)
JSON_NOT_TEXT = JSON.filter(lambda v: not isinstance(v, str))
JSON_OBJECT = st.dictionaries(TEXT, JSON, max_size=3)
NONBLANK = st.text(min_size=1, max_size=30).filter(str.strip) | st.sampled_from(["x", " padded ", "é🙂", "\x00"])
BLANK = st.sampled_from(["", " ", "  ", "\t", "\n \r", "\u3000", "\u00a0"])
WRONG_TEXT_TYPE = INT64 | FINITE | st.booleans() | st.lists(TEXT, min_size=1, max_size=2) | JSON_OBJECT.filter(bool)


class Opaque:
    """An object no serializer knows."""

    def __repr__(self) -> str:
        return "Opaque()"


NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])
PY_SCALARS = (
    SCALARS
    | st.binary(max_size=8)
    | st.integers()
    | st.floats()
    | NAN_INF
    | st.complex_numbers(max_magnitude=10)
    | st.builds(Opaque)
    | st.just(Ellipsis)
    | st.binary(max_size=4).map(bytearray)
    | st.just(range(3))
)
PY_JUNK = st.recursive(
    PY_SCALARS,
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.tuples(kids, kids)
        | st.frozensets(INT64 | TEXT | st.binary(max_size=4), max_size=3)
        | st.sets(INT64, max_size=3)
        | st.dictionaries(TEXT | INT64 | st.tuples(INT64), kids, max_size=3)
    ),
    max_leaves=10,
)
NOT_JSON = (
    st.binary(max_size=8)
    | st.sets(INT64, min_size=1, max_size=3)
    | st.frozensets(TEXT, max_size=3)
    | st.builds(Opaque)
    | NAN_INF
    | st.complex_numbers(max_magnitude=10)
    | st.dictionaries(INT64, JSON, min_size=1, max_size=2)
    | st.lists(NAN_INF | st.binary(max_size=2), min_size=1, max_size=2).map(lambda xs: [1, {"deep": xs}])
)
"""Outputs an edit must refuse (strict JSON only). Tuples are drawn separately (bug A)."""


def _nested(depth: int, shape: str) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value} if shape == "dict" else (value,) if shape == "tuple" else [value]
    return value


DEEP = st.builds(_nested, st.sampled_from([5, 60, 200, 300, 700]), st.sampled_from(["list", "dict", "tuple"]))
SPECIAL_JUNK = st.sampled_from(
    [None, {}, [], (), 0, -1, 1.5, math.nan, math.inf, b"", b"approve", frozenset(), set(), "approve", "", [[]], [None]]
    + [{"decisions": None}, {"decisions": "approve"}, {"action": None}, [{}], {"type": None}, {"": ""}]
)

CHUNK = NONBLANK | st.fixed_dictionaries({"text": NONBLANK}, optional={"metadata": JSON_OBJECT})


@st.composite
def decision_dicts(draw: Any, action: str | None = None) -> dict[str, Any]:
    """A valid `Decision` as a dict."""
    action = action or draw(st.sampled_from(DECISIONS))
    answer: dict[str, Any] = {"action": action}
    if action == "edit":
        answer["output"] = draw(JSON | HUGE)
    if action == "provide_context":
        answer["context"] = draw(st.lists(CHUNK, min_size=1, max_size=3))
    for field in ("reason", "reviewer"):
        if draw(st.booleans()):
            answer[field] = draw(st.none() | TEXT | HUGE)
    return answer


@st.composite
def valid_own(draw: Any) -> tuple[Any, Any]:
    answer = draw(decision_dicts())
    if draw(st.integers(0, 5)) == 0:
        return Decision.model_validate(answer), answer["action"]
    return answer, answer["action"]


def _edited_output(draw: Any) -> Any:
    """An edited output as a UI sends it: a JSON value, or its JSON text."""
    if draw(st.booleans()):
        return json.dumps(draw(JSON))
    return draw(JSON_NOT_TEXT)


@st.composite
def inbox_items(draw: Any) -> tuple[dict[str, Any], str]:
    kind = draw(st.sampled_from(["accept", "ignore", "response", "edit"]))
    item: dict[str, Any] = {"type": kind}
    if kind in ("accept", "ignore") and draw(st.booleans()):
        item["args"] = draw(JSON)
    elif kind == "response":
        item["args"] = draw(NONBLANK)
    elif kind == "edit":
        inner = {"output": _edited_output(draw), **draw(st.dictionaries(st.sampled_from(["note", "x"]), JSON))}
        item["args"] = {"action": "step", "args": inner} if draw(st.booleans()) else inner
    action = {"accept": "approve", "ignore": "terminate", "response": "provide_context", "edit": "edit"}[kind]
    return item, action


@st.composite
def hitl_items(draw: Any) -> tuple[dict[str, Any], str]:
    kind = draw(st.sampled_from(["approve", "reject", "respond", "edit"]))
    item: dict[str, Any] = {"type": kind}
    if kind == "reject" and draw(st.booleans()):
        item["message"] = draw(st.none() | TEXT | INT64)
    elif kind == "respond":
        item["message"] = draw(NONBLANK)
    elif kind == "edit":
        item["edited_action"] = {"name": "step", "args": {"output": _edited_output(draw)}}
    action = {"approve": "approve", "reject": "terminate", "respond": "provide_context", "edit": "edit"}[kind]
    return item, action


VALID = st.one_of(
    valid_own(),
    inbox_items().map(lambda p: ([p[0]], p[1])),
    hitl_items().map(lambda p: ({"decisions": [p[0]]}, p[1])),
)

FIELDS = {"action", "output", "context", "reason", "reviewer"}


@st.composite
def broken_own(draw: Any) -> tuple[Any, Any]:
    """A `Decision` dict with one rule broken."""
    how = draw(
        st.sampled_from(
            [
                "unknown_action",
                "action_type",
                "no_action",
                "extra_field",
                "edit_without_output",
                "output_with_non_edit",
                "context_with_non_context",
                "context_missing",
                "context_blank",
                "context_not_chunks",
                "output_not_json",
                "reason_type",
            ]
        )
    )
    event(f"broken own: {how}")
    non_edit = st.sampled_from([a for a in DECISIONS if a != "edit"])
    if how == "unknown_action":
        answer = draw(decision_dicts())
        answer["action"] = draw(TEXT.filter(lambda s: s not in DECISIONS) | st.sampled_from(["Approve", " edit", "ok"]))
    elif how == "action_type":
        answer = draw(decision_dicts())
        answer["action"] = draw(INT64 | FINITE | st.none() | st.booleans() | st.just(["approve"]) | st.just({"a": 1}))
    elif how == "no_action":
        answer = draw(decision_dicts())
        del answer["action"]
    elif how == "extra_field":
        answer = draw(decision_dicts())
        answer[draw(TEXT.filter(lambda k: k not in FIELDS) | st.sampled_from(["type", "decisions", "args"]))] = draw(
            JSON
        )
    elif how == "edit_without_output":
        answer = draw(decision_dicts("edit"))
        del answer["output"]
    elif how == "output_with_non_edit":
        answer = draw(decision_dicts(draw(non_edit)))
        answer["output"] = draw(JSON)
    elif how == "context_with_non_context":
        answer = draw(decision_dicts(draw(st.sampled_from([a for a in DECISIONS if a != "provide_context"]))))
        answer["context"] = draw(st.none() | st.lists(CHUNK, max_size=2))
    elif how == "context_missing":
        answer = draw(decision_dicts("provide_context"))
        if draw(st.booleans()):
            del answer["context"]
        else:
            answer["context"] = draw(st.sampled_from([[], None, "", "text not a list", 0, {}]))
    elif how == "context_blank":
        answer = draw(decision_dicts("provide_context"))
        answer["context"].insert(draw(st.integers(0, len(answer["context"]))), draw(BLANK))
    elif how == "context_not_chunks":
        answer = draw(decision_dicts("provide_context"))
        bad = draw(
            INT64
            | FINITE
            | st.none()
            | st.booleans()
            | st.lists(NONBLANK, min_size=1, max_size=2)
            | st.fixed_dictionaries({"txt": NONBLANK})
            | st.just({"text": ""})
            | st.fixed_dictionaries({"text": NONBLANK, "source": JSON})
            | st.fixed_dictionaries({"text": WRONG_TEXT_TYPE})
            | st.fixed_dictionaries({"text": NONBLANK, "metadata": NOT_JSON | st.lists(JSON, min_size=1) | TEXT})
        )
        answer["context"].insert(draw(st.integers(0, len(answer["context"]))), bad)
    elif how == "output_not_json":
        answer = draw(decision_dicts("edit"))
        answer["output"] = draw(NOT_JSON)
    else:  # reason_type
        answer = draw(decision_dicts())
        answer[draw(st.sampled_from(["reason", "reviewer"]))] = draw(WRONG_TEXT_TYPE)
    return answer, INVALID


@st.composite
def broken_inbox(draw: Any) -> tuple[Any, Any]:
    """An Agent Inbox `HumanResponse` list with one rule broken."""
    how = draw(
        st.sampled_from(
            ["none", "several", "unknown_type", "extra_key", "response_args", "edit_args", "edit_text", "not_object"]
        )
    )
    event(f"broken inbox: {how}")
    expect: Any = INVALID
    if how == "none":
        return [], INVALID
    if how == "several":
        items = draw(st.lists(inbox_items().map(lambda p: p[0]) | JSON, min_size=2, max_size=3))
        return items, INVALID
    if how == "unknown_type":
        item: Any = {"type": draw(TEXT.filter(lambda s: s not in ("accept", "ignore", "response", "edit")) | INT64)}
        if draw(st.booleans()):
            del item["type"]
            item["args"] = draw(JSON)
    elif how == "extra_key":
        item = draw(inbox_items())[0]
        item[draw(TEXT.filter(lambda k: k not in ("type", "args")) | st.just("action"))] = draw(JSON)
    elif how == "response_args":
        item = {"type": "response", **({} if draw(st.booleans()) else {"args": draw(BLANK | WRONG_TEXT_TYPE)})}
    elif how == "edit_args":
        args = draw(
            st.none()
            | INT64
            | TEXT
            | st.lists(JSON, max_size=2)
            | st.fixed_dictionaries({"action": st.just("step"), "args": st.fixed_dictionaries({"outpt": JSON})})
            | st.fixed_dictionaries({"result": JSON})
        )
        item = {"type": "edit", **({} if args is None else {"args": args})}
    elif how == "edit_text":
        text = draw(st.sampled_from(["{not json", "NaN?", "undefined", "'single'", "[1,", "approve"]))
        item, expect = {"type": "edit", "args": {"output": text}}, INVALID_UNLESS_TEXT_ORIGINAL
    else:
        item = draw(SCALARS | st.lists(JSON, max_size=2))
    return [item], expect


@st.composite
def broken_hitl(draw: Any) -> tuple[Any, Any]:
    """A HumanInTheLoopMiddleware response with one rule broken."""
    how = draw(
        st.sampled_from(
            ["none", "several", "extra_key", "not_object", "unknown_type", "respond_message", "edit_action"]
        )
    )
    event(f"broken hitl: {how}")
    if how == "none":
        return {"decisions": []}, INVALID
    if how == "several":
        return {"decisions": draw(st.lists(hitl_items().map(lambda p: p[0]), min_size=2, max_size=3))}, INVALID
    if how == "extra_key":
        answer = {"decisions": [draw(hitl_items())[0]]}
        answer[draw(TEXT.filter(lambda k: k != "decisions") | st.just("action"))] = draw(JSON)  # type: ignore[index]
        return answer, INVALID
    if how == "not_object":
        return {"decisions": [draw(SCALARS | st.lists(JSON, max_size=2))]}, INVALID
    if how == "unknown_type":
        item: Any = {"type": draw(TEXT.filter(lambda s: s not in ("approve", "reject", "respond", "edit")))}
    elif how == "respond_message":
        item = {"type": "respond", **({} if draw(st.booleans()) else {"message": draw(BLANK | WRONG_TEXT_TYPE)})}
    else:
        edited = draw(
            st.none()
            | INT64
            | st.fixed_dictionaries({"name": st.just("step")})
            | st.fixed_dictionaries({"name": st.just("step"), "args": st.none() | TEXT | st.lists(JSON, max_size=1)})
            | st.fixed_dictionaries({"name": st.just("step"), "args": st.fixed_dictionaries({"outpt": JSON})})
        )
        item = {"type": "edit", **({} if edited is None else {"edited_action": edited})}
    return {"decisions": [item]}, INVALID


JUNK = st.one_of(JSON, PY_JUNK, DEEP, SPECIAL_JUNK, HUGE).map(lambda answer: (answer, None))

_BRANCHES = [valid_own(), valid_own(), inbox_items().map(lambda p: ([p[0]], p[1]))]
_BRANCHES += [hitl_items().map(lambda p: ({"decisions": [p[0]]}, p[1])), broken_own(), broken_own()]
_BRANCHES += [broken_inbox(), broken_hitl(), JUNK, JUNK]
CASES = st.integers(0, len(_BRANCHES) - 1).flatmap(lambda i: _BRANCHES[i])
"""4/10 valid by construction (some not allowed by the variant), 4/10 near-valid, 2/10 junk."""

APPROVALS = st.sampled_from([{"action": "approve"}, [{"type": "accept"}], {"decisions": [{"type": "approve"}]}])
STALE = st.one_of(VALID.map(lambda p: p[0]), JSON, SPECIAL_JUNK.filter(lambda v: _round_trip(v)[0]))


@dataclass
class Case:
    answer: Any
    expect: Any
    stale: Any
    """Sent afterwards on the answered interrupt's id: it must change nothing."""
    approval: Any
    """The valid approval that closes a thread."""
    approve_raw: bool


CASE = st.builds(
    lambda pair, stale, approval, raw: Case(pair[0], pair[1], stale, approval, raw),
    CASES,
    STALE,
    APPROVALS,
    st.booleans(),
)


# --------------------------------------------------------------------------------------------
# The checks


def assert_nothing_applied(run: Run, calls: int = 1) -> None:
    snap = run.snapshot()
    assert "output" not in snap.values, "a rejected answer wrote the output"
    assert step_outcomes(snap.values) == {"step": "escalate"}
    assert run_outcome(snap) == "escalated"
    assert run.counts() == (calls, 0), "a rejected answer re-ran the step or ran downstream"
    [pending] = run.pending()
    assert pending.escalation["id"] == run.escalation["id"], "the escalation asked again is not the same one"


def close_with_approval(run: Run, case: Case, calls: int) -> None:
    """A valid approval on the pending escalation applies exactly once and finishes the thread."""
    [pending] = run.pending()
    if case.approve_raw:
        out = run.resume(pending.interrupt_id, case.approval)
    else:
        out = answer_escalations(run.graph, run.config, case.approval)
    assert "__interrupt__" not in out
    assert out["output"] == run.original
    assert step_outcomes(out) == {"step": "approved"} and run_outcome(out) == "ok"
    assert run.counts() == (calls, 1), "approving re-ran the step or ran downstream other than once"
    snap = run.snapshot()
    assert snap.next == () and not run.pending()


def check_applied(run: Run, decision: Decision, out: Any) -> None:
    """The decision applied exactly once, as its action says."""
    snap = run.snapshot()
    values = snap.values
    action = decision.action
    assert "__interrupt__" not in out or action in ("retry", "provide_context")
    record = task_records(values)["step"]
    assert record.get("decision") == decision.recorded()
    if action in ("approve", "edit"):
        expected = run.original if action == "approve" else decision.output
        assert values["output"] == expected and out["output"] == expected
        assert step_outcomes(values) == {"step": "approved" if action == "approve" else "edited"}
        assert run.counts() == (1, 1)
        assert snap.next == () and not run.pending()
    elif action == "terminate":
        assert "output" not in values
        assert step_outcomes(values) == {"step": "terminated"} and run_outcome(snap) == "terminated"
        assert run.counts() == (1, 0)
        assert snap.next == () and not run.pending()
    else:  # retry, provide_context: the step runs exactly once more, then (never passing) escalates anew
        assert run.counts() == (2, 0)
        if action == "provide_context":
            seen = CALLS[run.tid][1]
            assert all(text in seen for text in _texts(decision.context_chunks()))
        [pending] = run.pending()
        assert pending.escalation["id"] != run.escalation["id"]
        assert pending.escalation["round"] == 2 and pending.escalation["previous_decision"]["action"] == action
        assert step_outcomes(values) == {"step": "escalate"} and "output" not in values


def check_stale(run: Run, stale: Any) -> None:
    """Answering the answered interrupt again, raw or through the library, changes nothing."""
    before = run.snapshot()
    counts = run.counts()
    pending = [(p.interrupt_id, p.escalation["id"]) for p in run.pending()]
    run.resume(run.interrupt.id, stale)
    with pytest.raises((NoPendingEscalationError, AlreadyAnsweredError)):
        answer_escalations(run.graph, run.config, {run.interrupt.id: {"action": "approve"}})
    after = run.snapshot()
    assert after.values == before.values and after.next == before.next
    assert run.counts() == counts
    assert [(p.interrupt_id, p.escalation["id"]) for p in run.pending()] == pending


def finish(run: Run, case: Case) -> None:
    """Nothing wedges: the thread is finished, or waits on one escalation that a valid answer closes."""
    snap = run.snapshot()
    if not snap.next:
        assert not run.pending()
        return
    calls, downstream = run.counts()
    assert downstream == 0
    close_with_approval(run, case, calls)


def _lone_surrogate(value: Any) -> bool:
    """Text no checkpointer stores as given (a lone surrogate), anywhere: keys, values, items.

    Iterative: the junk strategies nest far deeper than Python's recursion limit.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def _edit_decodes_to_surrogate(answer: Any, original: Any) -> bool:
    """An edit sent as JSON text (a UI's) whose decoded value holds a lone surrogate (`"\\ud800"` escapes)."""
    if isinstance(original, str):
        return False  # a text output takes the text as it is
    texts: list[Any] = []
    stack = [answer]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("output",):
                if isinstance(item.get(key), str):
                    texts.append(item[key])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    for text in texts:
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            continue
        if _lone_surrogate(decoded):
            return True
    return False


def check_case(bench: Bench, case: Case) -> None:
    spec = bench.spec
    answer = case.answer
    # 1. classify: a Decision or InvalidAnswerError, never anything else
    try:
        decision: Decision | None = parse_answer(answer, allowed=spec.allowed, kind="output", original=spec.original)
    except InvalidAnswerError as err:
        decision = None
        assert isinstance(err.reason, str) and err.reason.strip()
    expect = case.expect
    if _lone_surrogate(answer) or _edit_decodes_to_surrogate(answer, spec.original):
        expect = INVALID  # D: refused wherever it stands, an object's key included, or in an edit's JSON text
    if expect in DECISIONS:
        if expect in spec.allowed:
            assert decision is not None, f"a valid {expect!r} answer was rejected"
            assert decision.action == expect
        else:
            assert decision is None, f"{expect!r} is not allowed here, yet it was accepted"
    elif expect == INVALID or (expect == INVALID_UNLESS_TEXT_ORIGINAL and not isinstance(spec.original, str)):
        assert decision is None, "an answer broken on purpose was accepted"
    event(f"{spec.name}: {'valid ' + decision.action if decision else 'invalid'}")

    storable, stored = _round_trip(answer)
    if decision is not None:
        # B and D (regressions below): parse_answer now refuses what a checkpointer cannot store as given
        sent = decision.model_dump(mode="json", exclude_unset=True)
        assume(_round_trip(sent) == (True, sent))
    elif storable:
        # A and E (regressions below): the node judges a raw answer as the checkpointer stores it, so
        # here keep the answers whose stored form is rejected too (the others are valid raw answers)
        assume(_replayed_verdict(stored, spec) == (False, False))

    # 2. answer_escalations: refuses exactly what parse_answer refuses, before anything is sent
    run = Run(bench)
    before = run.snapshot()
    if decision is None:
        with pytest.raises(InvalidAnswerError) as info:
            answer_escalations(run.graph, run.config, answer)
        assert info.value.reason.strip()
        after = run.snapshot()
        assert after.config == before.config and after.values == before.values
        assert run.counts() == (1, 0)
        check_rejected_raw(run, answer, storable)
        finish(run, case)
    else:
        out = answer_escalations(run.graph, run.config, answer)
        check_applied(run, decision, out)
        check_stale(run, case.stale)
        finish(run, case)
        # 3. the same answer raw, on a fresh thread
        if storable:
            raw = Run(bench)
            out = raw.resume(raw.interrupt.id, answer)
            check_applied(raw, decision, out)
            check_stale(raw, case.stale)
            finish(raw, case)
        else:
            event("valid but not storable raw: LangGraph cannot checkpoint the resume value (not sent raw)")
    ANSWERS_FED[spec.name] += 1
    VERDICTS[spec.name, _format_of(answer), decision.action if decision else "rejected"] += 1


def _format_of(answer: Any) -> str:
    if isinstance(answer, Decision) or (isinstance(answer, dict) and "action" in answer):
        return "own"
    if isinstance(answer, dict) and "decisions" in answer:
        return "hitl"
    if isinstance(answer, list) and answer and all(isinstance(a, dict) and "type" in a for a in answer):
        return "agent_inbox"
    return "other"


def check_rejected_raw(run: Run, answer: Any, storable: bool) -> None:
    """A rejected raw answer applies nothing, errors nothing, and is asked again; invoke(None) does not replay it."""
    before = run.snapshot().values
    if not storable:
        # LangGraph must write the resume value to the checkpointer before the library sees it: a
        # value its serializer refuses raises there (a LangGraph limitation); nothing is applied.
        event("invalid and not storable raw: TypeError from LangGraph's serializer")
        with pytest.raises(TypeError):
            run.resume(run.interrupt.id, answer)
        assert run.snapshot().values == before
        assert_nothing_applied(run)
        # The node's re-ask was stored but the answer before it was not: the next answer (to the
        # re-ask's id) is consumed by nothing, and the original question is asked once more.
        out = answer_escalations(run.graph, run.config, {"action": "approve"})
        if "__interrupt__" in out:
            event("after LangGraph failed to store a raw answer, the next (valid) answer was swallowed")
            assert_nothing_applied(run)
        return
    out = run.resume(run.interrupt.id, answer)
    [again] = out["__interrupt__"]
    shown = escalation_of(again.value)
    assert shown is not None and shown["id"] == run.escalation["id"]
    assert again.id != run.interrupt.id
    rejected = shown["rejected"]
    assert isinstance(rejected["reason"], str) and rejected["reason"].strip() and rejected["count"] >= 1
    assert "output" not in out and run_outcome(out) == "escalated"
    assert run.snapshot().values == before
    assert_nothing_applied(run)
    replay = run.graph.invoke(None, run.config)
    assert len(replay["__interrupt__"]) == 1
    assert run.snapshot().values == before
    assert_nothing_applied(run)


# --------------------------------------------------------------------------------------------
# The properties: 140 + 140 + 120 + 110 = 510 generated answers

SETTINGS = settings(
    database=None,
    deadline=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


def _property(name: str, examples: int, fixed_seed: int) -> Any:
    @seed(fixed_seed)
    @settings(SETTINGS, max_examples=examples)
    @given(case=CASE)
    def test(benches: dict[str, Bench], case: Case) -> None:
        PROPERTY_TESTS_RUN.add(name)
        check_case(benches[name], case)

    test.__name__ = f"test_answer_property_{name}"
    return test


test_answer_property_reliable = _property("reliable", 140, 20261125)
test_answer_property_agent_inbox = _property("agent_inbox", 140, 20261126)
test_answer_property_hitl = _property("hitl", 120, 20261127)
test_answer_property_sqlite = _property("sqlite", 110, 20261128)


# --------------------------------------------------------------------------------------------
# Plain tests


@pytest.fixture
def bench(benches: dict[str, Bench]) -> Bench:
    return benches["reliable"]


def test_answer_escalations_none_and_empty_are_clear_errors(bench: Bench) -> None:
    run = Run(bench)
    before = run.snapshot()
    for answer in (None, {}):
        with pytest.raises(InvalidAnswerError, match="no answer") as info:
            answer_escalations(run.graph, run.config, answer)
        assert "interrupt_id" in info.value.reason and "decision" in info.value.reason
        after = run.snapshot()
        assert after.config == before.config and after.values == before.values
    assert run.counts() == (1, 0) and run_outcome(run.snapshot()) == "escalated"


def test_answer_escalations_unknown_interrupt_id(bench: Bench) -> None:
    run = Run(bench)
    other = Run(bench)
    before = run.snapshot()
    for unknown in ("0" * 32, other.interrupt.id):
        with pytest.raises(NoPendingEscalationError) as info:
            answer_escalations(run.graph, run.config, {unknown: {"action": "approve"}})
        assert info.value.interrupt_ids == [unknown] and info.value.pending == [run.interrupt.id]
    assert run.snapshot().config == before.config and run.counts() == (1, 0)
    assert other.counts() == (1, 0)


class TwoState(ReliabilityState, total=False):
    question: str
    left: Any
    right: Any


def test_two_pending_escalations_need_interrupt_ids() -> None:
    builder = StateGraph(TwoState)
    for name in ("left", "right"):
        builder.add_node(
            reliable_step(
                lambda state, name=name: {name: f"{name} bad"},
                name=name,
                output_key=name,
                evaluator=NEVER,
                threshold=1.0,
                max_retries=0,
                pass_to=END,
            )
        )
        builder.add_edge(START, name)
    builder.add_node(HumanEscalation())
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "two"}}
    out = graph.invoke({"question": "q"}, config)
    ids = sorted(i.id for i in out["__interrupt__"])
    assert len(ids) == 2
    before = graph.get_state(config)
    for bare in ({"action": "approve"}, [{"type": "accept"}], {"decisions": [{"type": "approve"}]}):
        with pytest.raises(InvalidAnswerError, match="2 escalations are pending") as info:
            answer_escalations(graph, config, bare)
        assert all(i in info.value.reason for i in ids) and "interrupt id" in info.value.reason
        assert graph.get_state(config).config == before.config
    by_step = {escalation_of(i.value)["step"]: i.id for i in out["__interrupt__"]}  # type: ignore[index]
    out = answer_escalations(graph, config, {by_step["left"]: {"action": "edit", "output": "fixed"}})
    # LangGraph applies an answered task's decision once every interrupt of its superstep is answered
    assert [i.id for i in out["__interrupt__"]] == [by_step["right"]]
    assert [p.interrupt_id for p in pending_escalations(graph, config)] == [by_step["right"]]
    out = answer_escalations(graph, config, {"action": "approve"})  # one left: a bare answer will do
    assert step_outcomes(out) == {"left": "edited", "right": "approved"} and "__interrupt__" not in out
    assert out["left"] == "fixed" and out["right"] == "right bad"
    assert graph.get_state(config).next == ()


# --------------------------------------------------------------------------------------------
# Regressions: the bugs this file found (A-E in the module docstring), fixed


def _tupled(value: Any) -> Any:
    """Every list in `value` as a tuple (what a Python client may well send)."""
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    if isinstance(value, dict):
        return {k: _tupled(v) for k, v in value.items()}
    return value


TUPLED = VALID.map(lambda p: _tupled(p[0]))


@settings(SETTINGS, max_examples=30)
@seed(1)
@example(answer=({"type": "accept"},))
@given(answer=TUPLED)
def test_bug_rejected_answer_is_not_replayed_after_a_checkpoint_round_trip(
    benches: dict[str, Bench], answer: Any
) -> None:
    # A: tuples are read as lists (what the checkpointer gives back), so a tupled answer gets the
    # same verdict before and after the round trip: valid -> applied once; invalid -> stays rejected.
    run = Run(benches["reliable"])
    storable, stored = _round_trip(answer)
    if not storable:  # LangGraph's serializer refuses it before the library sees it: nothing applies
        with pytest.raises(TypeError):
            run.resume(run.interrupt.id, answer)
        assert_nothing_applied(run)
        return
    # a raw answer is judged as the checkpointer stores it, on the first run and on every replay
    decision = _verdict(stored, SPECS["reliable"])
    run.resume(run.interrupt.id, answer)
    run.graph.invoke(None, run.config)  # the node reads the stored answer back: same verdict
    if decision is None:
        assert_nothing_applied(run)
        return
    outcome = {"approve": "approved", "edit": "edited", "terminate": "terminated"}.get(decision.action)
    if outcome is not None:
        assert step_outcomes(run.snapshot().values) == {"step": outcome}
        assert run.counts() == (1, 0 if outcome == "terminated" else 1)
    else:  # retry / provide_context: the step ran exactly once more and escalated again, round 2
        [again] = run.pending()
        assert run.counts() == (2, 0) and again.escalation["round"] == 2


HUGE_INTS = st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1)
UNSTORABLE_EDITS = st.one_of(
    HUGE_INTS.map(lambda n: {"action": "edit", "output": n}),
    HUGE_INTS.map(lambda n: {"action": "edit", "output": {"total": [n]}}),
    HUGE_INTS.map(lambda n: [{"type": "edit", "args": {"output": json.dumps({"n": n})}}]),
    st.integers(251, 254).map(lambda depth: {"action": "edit", "output": _nested(depth, "list")}),
)


@settings(SETTINGS, max_examples=20)
@seed(2)
@example(answer={"action": "edit", "output": 2**64})
@given(answer=UNSTORABLE_EDITS)
def test_bug_an_accepted_answer_always_applies_exactly_once(benches: dict[str, Bench], answer: Any) -> None:
    run = Run(benches["reliable"])
    before = run.snapshot()
    try:
        answer_escalations(run.graph, run.config, answer)
    except InvalidAnswerError:  # refusing it up front would be right too
        assert run.snapshot().config == before.config and run.counts() == (1, 0)
        return
    except TypeError as exc:
        raise AssertionError(
            f"an accepted answer failed to apply ({exc}); downstream ran {run.counts()[1]} time(s), "
            f"thread outcome {run_outcome(run.snapshot())!r}"
        ) from exc
    assert step_outcomes(run.snapshot().values) == {"step": "edited"} and run.counts() == (1, 1)


@settings(SETTINGS, max_examples=10)
@seed(4)
@example(text="\ud800")
@given(text=st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3).map(lambda t: t + "x"))
def test_bug_an_accepted_edit_is_applied_as_given(benches: dict[str, Bench], text: str) -> None:
    run = Run(benches["reliable"])
    try:
        answer_escalations(run.graph, run.config, {"action": "edit", "output": text})
    except InvalidAnswerError:  # refusing it up front would be right too
        assert run.counts() == (1, 0)
        return
    assert run.snapshot().values["output"] == text
    assert run.counts() == (1, 1)


@settings(SETTINGS, max_examples=5)
@seed(5)
@example(texts=["0"])
@given(texts=st.lists(NONBLANK, min_size=1, max_size=2))
def test_bug_replaying_a_rejected_decision_instance_is_silent(benches: dict[str, Bench], texts: list[str]) -> None:
    # E: a Decision holds plain data only, so the copy LangGraph rebuilds from the checkpoint is
    # read (and re-serialised) without pydantic warnings
    run = Run(benches["agent_inbox"])  # provide_context is not allowed there: the answer is rejected
    answer = Decision(action="provide_context", context=[ChunkInput(text=t).model_dump() for t in texts])
    out = run.resume(run.interrupt.id, answer)
    assert escalation_of(out["__interrupt__"][0].value)["rejected"]["reason"]  # type: ignore[index]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.graph.invoke(None, run.config)
    assert_nothing_applied(run)


@settings(SETTINGS, max_examples=10)
@seed(3)
@example(blank=" ")
@given(blank=BLANK.filter(bool))
def test_bug_blank_context_chunks_are_rejected_in_every_shape(blank: str) -> None:
    for answer in (
        {"action": "provide_context", "context": [blank]},
        [{"type": "response", "args": blank}],
        {"decisions": [{"type": "respond", "message": blank}]},
        {"action": "provide_context", "context": [{"text": blank}]},
    ):
        try:
            parse_answer(answer)
        except InvalidAnswerError:
            continue
        raise AssertionError(f"accepted a blank context chunk: {answer!r}")


# --------------------------------------------------------------------------------------------


def test_zz_at_least_500_generated_answers() -> None:
    """Runs last (file order): the property tests above fed >= 500 generated answers."""
    expected = {"reliable", "agent_inbox", "hitl", "sqlite"}
    if PROPERTY_TESTS_RUN != expected:
        pytest.skip(f"only {sorted(PROPERTY_TESTS_RUN)} of the property tests ran in this session")
    total = sum(ANSWERS_FED.values())
    assert total >= 500, f"only {total} generated answers went through the whole check: {dict(ANSWERS_FED)}"
    applied = {(fmt, action) for (_, fmt, action), n in VERDICTS.items() if n}
    every_format_and_action = {("own", a) for a in DECISIONS} | {
        (fmt, a) for fmt in ("agent_inbox", "hitl") for a in ("approve", "edit", "provide_context", "terminate")
    }
    assert every_format_and_action <= applied, f"never applied: {sorted(every_format_and_action - applied)}"
    for name in SPECS:
        assert VERDICTS[name, "own", "rejected"] and sum(n for k, n in VERDICTS.items() if k[0] == name) >= 100
    print("answers fed:", dict(ANSWERS_FED), "total", total)
    for key, n in sorted(VERDICTS.items()):
        print(*key, n)
