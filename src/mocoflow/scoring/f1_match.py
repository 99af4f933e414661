"""SQuAD-style token F1 against a list of gold aliases.

Answer segments: the final explicit answer (the last ``\\boxed{}`` -- MoCo's prompts ask for ``\\box{ANSWER}``
-- answer marker, "Final Answer" header or short commitment such as "I'd say X", cut at the first sentence
break; see :mod:`mocoflow.scoring.answer_text`), and the marker's whole line and paragraph; without a
marker, the first non-empty line and the whole response (so an alias that spans lines, ``"New\\nYork"``,
can be answered as written) -- but when every line is short (a bare or bulleted list such as
"Paris\\nLondon\\nBerlin") the response is a list of candidates and only the whole response is a segment,
so listing candidates is never credited. ``score`` is the max F1 over segments and aliases.
Normalisation: fullwidth forms as ASCII, diacritics folded (``Böbel`` = ``Bobel``), lower case,
punctuation removed, articles (a/an/the) removed, whitespace (newlines included) collapsed. ``correct`` is
an exact normalised match with any alias, or ``score >= F1_CORRECT_THRESHOLD``.

Aliases: a list, or one string; a string holding a list literal (JSON or Python syntax, as MoCo's PopQA
stores them) is parsed into its aliases, never split on commas.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

from mocoflow.data.moco_values import parse_alias_literal
from mocoflow.data.schema import Item
from mocoflow.scoring.answer_text import SHORT_WORDS, canonical_text, final_answer
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable

F1_CORRECT_THRESHOLD = 0.8
"""Token F1 at or above which an f1_match answer counts as correct (exact alias matches always do)."""

_MARKER = re.compile(r"\b(?:final\s+)?answer\s*(?:is|was|:|=)\s*:?", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")


def normalise(s: str) -> str:
    folded = unicodedata.normalize("NFKD", canonical_text(s))
    s = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _is_candidate_list(lines: list[str]) -> bool:
    """Two or more non-empty lines that are all bullet or numbered items of at most :data:`SHORT_WORDS` words,
    or all bare names (at most 3 words, no sentence punctuation): candidates, not an answer and its reason
    ("Paris\\nIt is the capital." is an answer and its reason)."""
    if len(lines) < 2:
        return False
    if all(_BULLET.match(ln) and len(_BULLET.sub("", ln).split()) <= SHORT_WORDS for ln in lines):
        return True
    return all(len(ln.split()) <= 3 and not ln.rstrip().endswith((".", "!", "?", ":")) for ln in lines)


def aliases(gold: object) -> list[str]:
    """Gold aliases: a list, or a list literal inside a string (never split on commas), or one string."""
    if isinstance(gold, str):
        literal = parse_alias_literal(gold)
        if literal and all(isinstance(a, str) for a in literal):
            return [a for a in literal if a.strip()]
        return [gold]
    if isinstance(gold, list | tuple):
        return [str(a) for a in gold if a is not None and str(a).strip()]
    return [] if gold is None else [str(gold)]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalise(prediction).split(), normalise(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def answer_segments(output: str) -> list[str]:
    """Candidate answer segments, the primary one first (see the module doc); empty when there is no text."""
    out: list[str] = []
    output = canonical_text(output)
    primary = final_answer(output)
    if primary:
        out.append(primary)
    markers = list(_MARKER.finditer(output))
    if markers:
        rest = output[markers[-1].end():].strip()
        out += [rest.split("\n")[0], rest.split("\n\n")[0]]
    else:
        lines = [ln for ln in output.split("\n") if ln.strip()]
        out += [output] if _is_candidate_list(lines) else [lines[0] if lines else "", output]
    return [s.strip() for s in out if s.strip()]


def answer_segment(output: str) -> str:
    """The primary answer segment (the voting key's source)."""
    segments = answer_segments(output)
    return segments[0] if segments else ""


class F1Scorer(Scorer):
    def score(self, item: Item, output: str) -> ScoreResult:
        segments = [s for s in answer_segments(output) if normalise(s)]
        if not segments:
            return unparseable("empty answer")
        golds = aliases(item.gold)
        if not golds:
            return ScoreResult(False, 0.0, normalise(segments[0]), status="error",
                               detail="item has no gold aliases")
        exact = any(normalise(s) == normalise(g) for s in segments for g in golds)
        best = max(token_f1(s, g) for s in segments for g in golds)
        return graded(exact or best >= F1_CORRECT_THRESHOLD, normalise(segments[0]), detail=f"max F1 {best:.3f}",
                      score=best)

    def extract(self, item: Item, output: str) -> str | None:
        return normalise(answer_segment(output)) or None


SCORERS.register("f1_match")(F1Scorer())
