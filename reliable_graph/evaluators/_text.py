"""Tokenising shared by the offline lexical evaluators: Unicode words, Snowball stems, CJK bigrams.

A text is NFKC-normalised and casefolded, then cut into words: runs of letters, digits and
combining marks (so "Élection", "ÉLECTION" and a decomposed "E\u0301lection" are one word, and
Devanagari vowel signs stay inside their word). English stopwords are dropped and every other
word is reduced by a Snowball stemmer (English by default), so that "prices" meets "price" and
"running" meets "run". Scripts written without spaces (Han, Hiragana, Katakana, Hangul) are cut
into overlapping character bigrams instead, the usual approach for CJK retrieval: "東京の天気"
gives 東京, 京の, の天 and 天気, and a one-character run stays a unigram.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from typing import Any

import snowballstemmer  # type: ignore[import-untyped]

DEFAULT_LANGUAGE = "english"

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our ours out over own same she should so some such
    than that the their theirs them then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours""".split()
)

# Han (unified, extensions, compatibility, radicals, iteration marks), Hiragana, Katakana (with the
# phonetic extensions, the kana supplements and half-width forms) and Hangul (syllables and jamo).
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029\u3031-\u3035\u303b\u3040-\u30ff"
    "\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\uff66-\uffdc\U0001b000-\U0001b2ff\U00020000-\U0003ffff"
)


_ASCII_WORD = re.compile(r"[a-z0-9]+")
"""The words of an ASCII text once lowercased: what the Unicode path below gives it, several times faster."""
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
r"""Letters and digits. Combining marks are not `\w` (the Devanagari vowel signs, a decomposed
accent): `_raw_words` glues the marks that follow a word back onto it."""
_CJK_RUN = re.compile(f"([{_CJK}]+)")
_FIRST_CJK = "\u1100"
_FIRST_MARK = "\u0300"


def _is_mark(char: str) -> bool:
    return char >= _FIRST_MARK and unicodedata.category(char).startswith("M")


def _marks_at(text: str, pos: int) -> int:
    """The end of the run of combining marks starting at `pos`."""
    while pos < len(text) and _is_mark(text[pos]):
        pos += 1
    return pos


def _raw_words(normal: str) -> Iterator[str]:
    """Runs of letters, digits and combining marks in a normalised text (a mark never starts one)."""
    word = ""
    end = 0
    for match in _WORD.finditer(normal):
        start = match.start()
        if word:
            stop = _marks_at(normal, end)
            if start == stop:  # only marks in between: one word
                word += normal[end:start] + match.group()
                end = match.end()
                continue
            yield word + normal[end:stop]
        word, end = match.group(), match.end()
    if word:
        yield word + normal[end : _marks_at(normal, end)]


def check_language(language: object, *, owner: str) -> str:
    """The Snowball algorithm name for `language` (case-insensitive), or a ValueError naming the choices.

    Example:
        ```python
        from reliable_graph.evaluators._text import check_language

        assert check_language("French", owner="LexicalRelevance") == "french"
        ```
    """
    choices = sorted(snowballstemmer.algorithms())
    name = language.strip().lower() if isinstance(language, str) else None
    if name is None or name not in choices:
        msg = f"{owner}(language={language!r}) is not a Snowball stemmer; choose one of: {', '.join(choices)}"
        raise ValueError(msg)
    return name


_local = threading.local()
_CACHE_SIZE = 65536
_stems: dict[str, dict[str, str]] = {}
"""Stems already computed, per language (cleared when one grows past `_CACHE_SIZE`)."""


def _stemmer(language: str) -> Any:
    """This thread's Snowball stemmer for `language` (a stemmer object holds state while it works)."""
    stemmers: dict[str, Any] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    stemmer = stemmers.get(language)
    if stemmer is None:
        stemmer = stemmers[language] = snowballstemmer.stemmer(language)
    return stemmer


def stem(word: str, language: str = DEFAULT_LANGUAGE) -> str:
    """The Snowball stem of a casefolded `word`, for a checked `language`.

    Example:
        ```python
        from reliable_graph.evaluators._text import stem

        assert stem("prices") == stem("price") and stem("running") == stem("run")
        assert stem("élections", "french") == stem("élection", "french")
        ```
    """
    cache = _stems.get(language)
    if cache is None:
        cache = _stems.setdefault(language, {})
    stemmed = cache.get(word)
    if stemmed is None:
        stemmed = str(_stemmer(language).stemWord(word))
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[word] = stemmed
    return stemmed


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)] or [run]


def tokens(text: str) -> tuple[list[str], list[str]]:
    """The normalised words of `text` and, apart, its CJK character bigrams (lone characters kept).

    Example:
        ```python
        from reliable_graph.evaluators._text import tokens

        assert tokens("ÉLECTIONS, Straße: 東京の天気") == (["élections", "strasse"], ["東京", "京の", "の天", "天気"])
        ```
    """
    if text.isascii():
        return _ASCII_WORD.findall(text.lower()), []
    normal = unicodedata.normalize("NFKC", text).casefold()
    between = set(_WORD.sub("", normal))  # what separates the words: spaces, punctuation, marks
    raw = list(_raw_words(normal)) if any(_is_mark(c) for c in between) else _WORD.findall(normal)
    plain: list[str] = []
    grams: list[str] = []
    for word in raw:
        if word.isascii() or max(word) < _FIRST_CJK:
            plain.append(word)
            continue
        for i, part in enumerate(_CJK_RUN.split(word)):
            if i % 2:
                grams += _bigrams(part)
            elif part:
                plain.append(part)
    return plain, grams


def terms(text: str, language: str = DEFAULT_LANGUAGE) -> set[str]:
    """The stemmed content words of `text` (CJK as character bigrams), for a checked `language`.

    Example:
        ```python
        from reliable_graph.evaluators._text import terms

        assert terms("The prices are running") == terms("price run")
        assert terms("?!") == set() and terms("the of") == set()
        ```
    """
    plain, grams = tokens(text)
    found = set(grams)
    cache = _stems.get(language) or {}
    for word in plain:
        if word not in STOPWORDS:
            stemmed = cache.get(word)
            found.add(stem(word, language) if stemmed is None else stemmed)
    return found
