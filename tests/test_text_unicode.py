"""Lexical evaluators on text that is not only English, and Freshness on any timestamp."""

from __future__ import annotations

import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import snowballstemmer
from hypothesis import given, settings
from hypothesis import strategies as st

from reliable_graph import Completeness, EvalInput, Freshness, LexicalRelevance, Score
from reliable_graph.evaluators._text import _raw_words, _stems, stem, terms, tokens
from reliable_graph.evaluators.freshness import parse_timestamp

# -- tokenising ----------------------------------------------------------------------------------


def test_tokens_are_normalised_casefolded_and_cjk_bigrams() -> None:
    assert tokens("ÉLECTIONS, Straße ２０２５") == (["élections", "strasse", "2025"], [])
    assert tokens("東京の天気") == ([], ["東京", "京の", "の天", "天気"])
    assert tokens("水") == ([], ["水"])  # a lone character stays a unigram
    assert tokens("東京tower") == (["tower"], ["東京"])  # scripts are split apart
    assert tokens("ｶﾀｶﾅ") == ([], ["カタ", "タカ", "カナ"])  # half-width kana, NFKC
    assert tokens("서울 날씨") == ([], ["서울", "날씨"])
    assert tokens("tide_tables") == (["tide", "tables"], [])  # as the ASCII tokenizer did
    assert tokens("café_crème") == (["café", "crème"], [])


def test_combining_marks_stay_inside_their_word() -> None:
    assert tokens("हिन्दी भाषा, देवनागरी") == (["हिन्दी", "भाषा", "देवनागरी"], [])
    assert tokens("a\u0301b c\u0301 \u0301d") == (["áb", "ć", "d"], [])  # NFKC composes; a stray mark starts nothing
    assert tokens("x\u20dd y") == (["x\u20dd", "y"], [])  # an enclosing mark with no composed form stays
    decomposed = "E\u0301lection"
    assert unicodedata.normalize("NFC", decomposed) != decomposed
    assert terms(decomposed) == terms("élection") == terms("ÉLECTIONS")


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(max_codepoint=127)))
def test_the_ascii_fast_path_agrees_with_the_unicode_path(text: str) -> None:
    assert tokens(text)[0] == list(_raw_words(unicodedata.normalize("NFKC", text).casefold()))


def test_english_stems_meet() -> None:
    assert stem("prices") == stem("price") and stem("running") == stem("run")
    assert terms("The prices are running") == terms("price run")
    assert terms("?!…") == set() and terms("") == set() and terms("the of and") == set()


def test_stemming_is_thread_safe() -> None:
    vocabulary = [f"{w}{suffix}" for w in ("connect", "run", "price", "nation", "happi") for suffix in "abcdefgh"]
    vocabulary += ["connections", "running", "generously", "hopefulness", "relational"] * 20
    expected = {w: snowballstemmer.stemmer("english").stemWord(w) for w in vocabulary}

    def uncached(word: str) -> tuple[str, str]:
        _stems.pop("english", None)
        return word, stem(word)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(uncached, vocabulary * 50))
    assert all(expected[w] == s for w, s in results)
    assert terms("connections running") == {"connect", "run"}


# -- LexicalRelevance ------------------------------------------------------------------------------

JA_QUERY = "東京の天気予報を教えてください"
JA_WEATHER = "明日の東京の天気予報：晴れのち曇り、最高気温は18度です。"
JA_RAMEN = "ラーメンのスープは豚骨を長時間煮込んで作ります。"


def test_japanese_query_ranks_the_chunk_on_its_topic_first() -> None:
    score = LexicalRelevance().evaluate(EvalInput(query=JA_QUERY, contexts=[JA_RAMEN, JA_WEATHER]))
    weather, ramen = score.details["per_chunk"][1], score.details["per_chunk"][0]
    assert weather > ramen and weather > 0.3
    assert score.details["relevant"] == [1] and score.value == 0.5
    assert "has no content words" not in score.reason


def test_chinese_and_korean_queries_match() -> None:
    zh = LexicalRelevance().evaluate(EvalInput(query="北京的天气", contexts=["北京今天天气很好", "我喜欢吃苹果"]))
    assert zh.details["relevant"] == [0] and zh.details["per_chunk"][0] > 0
    ko = LexicalRelevance().evaluate(EvalInput(query="서울 날씨", contexts=["오늘 서울 날씨는 맑음", "김치 만드는 법"]))
    assert ko.details["relevant"] == [0]


@pytest.mark.parametrize(
    ("query", "chunk", "language"),
    [
        ("Élection", "les élections municipales", "english"),
        ("Élection", "les élections municipales", "french"),
        ("ÉLECTION présidentielle", "Élections présidentielles", "french"),
        ("Straße", "die STRASSE ist gesperrt", "german"),
        ("Häuser", "das Haus am See", "german"),
        ("Über", "über alles", "english"),
    ],
)
def test_accented_words_match_across_case_and_inflection(query: str, chunk: str, language: str) -> None:
    score = LexicalRelevance(chunk_threshold=1.0, language=language).evaluate(EvalInput(query=query, contexts=[chunk]))
    assert score.value == 1.0, score


@pytest.mark.parametrize(("query", "chunk"), [("prices", "price list"), ("running", "run"), ("ran", "ran")])
def test_english_forms_still_meet(query: str, chunk: str) -> None:
    score = LexicalRelevance(chunk_threshold=1.0).evaluate(EvalInput(query=query, contexts=[chunk]))
    assert score.value == 1.0


@pytest.mark.parametrize("query", ["?!", "...", "— « » —", "、。！", "the of"])
def test_query_without_content_words_fails_clearly(query: str) -> None:
    score = LexicalRelevance().evaluate(EvalInput(query=query, contexts=["anything"]))
    assert score.value == 0.0 and "has no content words" in score.reason


def test_empty_or_punctuation_chunks_score_zero() -> None:
    ev = LexicalRelevance()
    assert "no query" in ev.evaluate(EvalInput(query="", contexts=["a"])).reason
    score = ev.evaluate(EvalInput(query="tide tables", contexts=["", "?!", "。"]))
    assert score.value == 0.0 and score.details["per_chunk"] == [0.0, 0.0, 0.0]
    assert "0 of 3 chunks" in score.reason


def test_language_is_validated() -> None:
    assert LexicalRelevance(language="French").language == "french"
    for make in (lambda: LexicalRelevance(language="klingon"), lambda: Completeness(topics=["x"], language="klingon")):
        with pytest.raises(ValueError, match="klingon") as info:
            make()
        assert "english" in str(info.value) and "french" in str(info.value)
    with pytest.raises(ValueError, match="choose one of"):
        LexicalRelevance(language=None)  # type: ignore[arg-type]


def test_french_stemmer_is_used() -> None:
    sample = EvalInput(query="les chevaux mangeaient", contexts=["Le cheval mange."])
    assert LexicalRelevance(chunk_threshold=1.0, language="french").evaluate(sample).value == 1.0


# -- Completeness ----------------------------------------------------------------------------------


def test_completeness_covers_unicode_topics() -> None:
    ev = Completeness(topics=["天気予報", "Élection", "prices"])
    score = ev.evaluate(EvalInput(contexts=[JA_WEATHER, "Les élections; the price of bread"]))
    assert score.value == 1.0, score.reason
    missing = ev.evaluate(EvalInput(contexts=[JA_RAMEN]))
    assert missing.details["missing"] == ["天気予報", "Élection", "prices"]


def test_completeness_on_empty_or_punctuation_context() -> None:
    ev = Completeness(topics=["revenue"])
    for contexts in ([], [""], ["?!", "…"]):
        score = ev.evaluate(EvalInput(contexts=contexts))
        assert score.value == 0.0 and "lacks 1 of 1 required topics: revenue" in score.reason
    with pytest.raises(ValueError, match="no content words"):
        Completeness(topics=["?!"])


def test_completeness_state_topics_without_words_or_of_the_wrong_type() -> None:
    ev = Completeness(topics_key="needs")
    score = ev.evaluate(EvalInput(contexts=["alpha"], state={"needs": ["alpha", "…"]}))
    assert score.value == 0.5 and score.details["missing"] == ["…"] and "no content words" in score.reason
    not_a_list = ev.evaluate(EvalInput(contexts=["alpha"], state={"needs": "alpha"}))
    assert not_a_list.value == 0.0 and "must be a list of topics" in not_a_list.reason
    not_strings = ev.evaluate(EvalInput(contexts=["alpha"], state={"needs": ["alpha", 3]}))
    assert not_strings.value == 0.0 and "not strings" in not_strings.reason


@settings(max_examples=200, deadline=None)
@given(query=st.text(), chunks=st.lists(st.text(), max_size=4), topic=st.text())
def test_lexical_evaluators_never_raise_on_any_text(query: str, chunks: list[str], topic: str) -> None:
    score = LexicalRelevance().evaluate(EvalInput(query=query, contexts=chunks))
    assert isinstance(score, Score) and 0.0 <= score.value <= 1.0
    completeness = Completeness(topics_key="t").evaluate(EvalInput(contexts=chunks, state={"t": [topic]}))
    assert 0.0 <= completeness.value <= 1.0


# -- Freshness -------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
INSTANT = datetime(2026, 1, 2, 11, 0, tzinfo=timezone.utc)  # one hour before NOW


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-02T11:00:00Z",
        "2026-01-02T11:00:00+0000",
        "2026-01-02T11:00:00+00:00",
        "2026-01-02T05:30:00-0530",
        "2026-01-02T16:30:00+05:30",
        "2026-01-02 11:00:00Z",
        "2026-01-02T11:00:00",  # naive: UTC
        " 2026-01-02T11:00:00Z\n",
        "2026-01-02T11:00:00.000000+0000",
        INSTANT.timestamp(),
        int(INSTANT.timestamp()),
        str(int(INSTANT.timestamp())),
        int(INSTANT.timestamp()) * 1000,  # milliseconds, as pydantic reads large numbers
        INSTANT,
        INSTANT.replace(tzinfo=None),  # naive: UTC
        INSTANT.astimezone(timezone(timedelta(hours=-7))),
        b"2026-01-02T11:00:00Z",
    ],
)
def test_parse_timestamp_reads_every_common_form(value: Any) -> None:
    stamp = parse_timestamp(value)
    assert stamp == INSTANT and stamp.tzinfo is timezone.utc
    sample = EvalInput(contexts=[{"text": "t", "metadata": {"timestamp": value}}])
    fresh = Freshness(max_age=timedelta(hours=2), now=lambda: NOW).evaluate(sample)
    stale = Freshness(max_age=timedelta(minutes=30), now=lambda: NOW).evaluate(sample)
    assert (fresh.value, stale.value) == (1.0, 0.0) and stale.details["stale"] == [0]


def test_parse_timestamp_reads_a_date_as_utc_midnight() -> None:
    assert parse_timestamp(date(2026, 1, 2)) == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert parse_timestamp("2026-01-02") == datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert parse_timestamp(None) is None


@pytest.mark.parametrize(
    "value",
    ["junk", "", "   ", "last tuesday", "2026-13-01T00:00:00Z", "2026-01-02T25:00:00", True, [1], {"a": 1}, object()]
    + [float("nan"), float("inf"), 10**30],
)
def test_unreadable_timestamps_fail_with_a_clear_reason(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)
    sample = EvalInput(
        contexts=[
            "undated",
            {"text": "bad", "metadata": {"timestamp": value}},
            {"text": "ok", "metadata": {"timestamp": NOW}},
        ]
    )
    score = Freshness(max_age=timedelta(days=1), now=lambda: NOW).evaluate(sample)
    assert score.value == 0.0 and score.details["invalid"] == [1]
    assert score.reason.startswith("chunk 1 has an unreadable metadata['timestamp']: ")
    assert score.details["fresh"] == [2] and score.details["undated"] == [0]


def test_several_unreadable_timestamps_are_counted() -> None:
    sample = EvalInput(contexts=[{"text": str(i), "metadata": {"timestamp": "junk"}} for i in range(3)])
    score = Freshness(max_age=timedelta(days=1), now=lambda: NOW).evaluate(sample)
    assert score.details["invalid"] == [0, 1, 2] and "(and 2 more)" in score.reason


def test_a_broken_clock_fails_the_score() -> None:
    sample = EvalInput(contexts=[{"text": "x", "metadata": {"timestamp": NOW}}])
    for clock in (lambda: "not a time", lambda: None):
        score = Freshness(max_age=timedelta(days=1), now=clock).evaluate(sample)  # type: ignore[arg-type,return-value]
        assert score.value == 0.0 and "clock" in score.reason
    naive_clock = Freshness(max_age=timedelta(hours=2), now=lambda: NOW.replace(tzinfo=None))
    assert naive_clock.evaluate(EvalInput(contexts=[{"text": "x", "metadata": {"timestamp": INSTANT}}])).value == 1.0


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?\Z"),
)


@settings(max_examples=300, deadline=None)
@given(
    stamps=st.lists(JUNK, max_size=4),
    now=st.datetimes(timezones=st.none() | st.timezones()),
    hours=st.integers(min_value=1, max_value=10**6),
    missing=st.sampled_from(["stale", "fresh", "ignore"]),
)
def test_freshness_never_raises_on_junk(stamps: list[Any], now: datetime, hours: int, missing: Any) -> None:
    contexts = [{"text": str(i), "metadata": {"timestamp": s}} for i, s in enumerate(stamps)]
    ev = Freshness(max_age=timedelta(hours=hours), missing=missing, now=lambda: now)
    score = ev.evaluate(EvalInput(contexts=contexts))
    assert isinstance(score, Score) and 0.0 <= score.value <= 1.0 and score.reason
