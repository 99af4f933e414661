"""Where a response states its final answer, and text normalisation shared by the exact-match rules.

Explicit answers are ``\\boxed{...}`` / ``\\box{...}`` / ``\\fbox{...}`` contents (balanced braces; MoCo's
prompts ask for ``\\box{ANSWER}``) and answer markers. The **last explicit answer in the text wins**, by
position, even when two markers share a line ("The answer is 12. Wait, I made an error: the answer is 13."
-> "13"). A marker's answer runs to the end of its line (or, after a bare ``Answer:``, the next non-empty
line) and stops at the first sentence break (". " before a capital), so trailing commentary is not part of
it; neither is a leading adverb ("the answer is indeed D", "... is probably 12"). A negated marker ("the
answer is not 12, it is 13") states no answer.

Markers: ``Answer: X``, ``the (final) answer is X``, ``#### X``; a markdown header line ``## Final Answer`` or
``**Answer**`` (its answer is the next non-empty line); and a *commitment* -- ``I'd say X``, ``I'll go with
X``, ``I would choose X``, ``I think it's X`` -- whose answer ends at a clause break (", but ...") and
counts only when it is short (at most :data:`SHORT_WORDS` words), so "I'd say this problem is hard" states
nothing. A hedge before a commitment does not matter ("it could be 11 or 13, but I'd say 12" is 12). Two
explicit answers on one line joined by "or" (``\\boxed{12} or \\boxed{13}``) are one hedged answer,
``12 or 13``, which the scorers do not credit.

Responses are read after :func:`canonical_text`: fullwidth forms (``１２``, ``：``), the Unicode minus and
typographic apostrophes become ASCII.
"""

from __future__ import annotations

import re

SHORT_WORDS = 6
"""A response (or its last line) of at most this many words counts as a bare answer when it has no marker."""

_BOX = re.compile(r"\\(?:boxed|fbox|box)\s*\{", re.IGNORECASE)
_MARKER = re.compile(
    r"(?P<hard>(?:\b(?:final\s+)?answer\s*(?:is|was|would\s+be|should\s+be|will\s+be|=|:)(?!\w)"
    r"|(?:^|(?<=\s))####)\s*:?[ \t]*)"
    # a markdown header line: "## Final Answer", "**Answer**", "### Answer:" (the answer is on the next line)
    r"|(?P<header>^[ \t]*(?:\#{1,6}[ \t]*(?:\*\*)?|\*\*)[ \t]*(?:final[ \t]+)?answer[ \t]*:?[ \t]*(?:\*\*)?"
    r"[ \t]*:?[ \t]*$)"
    # a commitment: "I'd say C", "I will go with 12", "I would choose (B)", "I think it's Paris"
    r"|(?P<soft>(?:\bI(?:'d|'ll|\s+would|\s+will)?\s+(?:say|go\s+with|choose|pick|select)\b"
    r"(?:\s+(?:that\s+)?it(?:'s|\s+is)\b)?"
    r"|\bI\s+(?:think|believe|guess|reckon)\s+(?:that\s+)?it(?:'s|\s+is)\b)[ \t]*:?[ \t]*)",
    re.IGNORECASE | re.MULTILINE,
)
_ADVERB = re.compile(r"^(?:indeed|clearly|definitely|certainly|surely|obviously|actually|probably|likely|most\s+likely"
                     r"|therefore|thus|hence|so)\b[\s,:]*", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"\s*(?:[,;]\s+|\s+(?:but|though|although|because|since)\b)", re.IGNORECASE)
_DISJUNCTION = re.compile(r"^[\s,;]*(?:or|and/or|either)\b[\s,;]*$", re.IGNORECASE)
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_CANONICAL = str.maketrans({**_FULLWIDTH, 0x3000: " ", 0x2212: "-", 0xFE63: "-", 0x2018: "'", 0x2019: "'",
                            0x2032: "'", 0x201C: '"', 0x201D: '"'})
_NEGATED = re.compile(r"(?:not|never|neither)\b", re.IGNORECASE)  # "the answer is not 12, it is 13"
_SENTENCE_BREAK = re.compile(r"[.!?;]\s+(?=[A-Z])")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "^\\circ", "^{\\circ}", "\\circ", "\u00b0",
                "\\%", "\\$", "\\displaystyle")
_FRAC_SHORT = re.compile(r"\\frac\s*(?:(\d)|\{([^{}]*)\})\s*(?:(\d)|\{([^{}]*)\})")


def canonical_text(text: str) -> str:
    """``text`` with fullwidth forms as ASCII (``１２`` -> ``12``, ``：`` -> ``:``), the Unicode minus as ``-``
    and typographic quotes as ASCII quotes; everything else unchanged (superscripts stay, so ``m²`` is not
    ``m2``)."""
    return text.translate(_CANONICAL)


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index just past its matching ``}`` (escaped ``\\{``/``\\}`` skipped); one pass."""
    out: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            out[stack.pop()] = i + 1
        i += 1
    return out


def boxed_spans(text: str) -> list[tuple[int, str]]:
    """(position, content) of every balanced ``\\boxed{...}`` / ``\\box{...}`` / ``\\fbox{...}``."""
    matches = list(_BOX.finditer(text))
    if not matches:
        return []
    closing = _closing_braces(text)
    out = []
    for m in matches:
        end = closing.get(m.end() - 1)
        if end is not None:
            out.append((m.start(), text[m.end() : end - 1]))
    return out


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces (nested braces kept), in order."""
    return [content for _, content in boxed_spans(text)]


def _line_at(text: str, start: int, bound: int) -> tuple[str, int]:
    """The text from ``start`` to the end of its line (at most to ``bound``), and where the next line starts."""
    stop = text.find("\n", start, bound)
    return (text[start:bound], bound) if stop < 0 else (text[start:stop], stop + 1)


def _marker_segment(text: str, end: int, bound: int, soft: bool = False) -> tuple[str, int]:
    """A marker's answer and where it ends: the rest of its line, else the next non-empty line; never past
    ``bound`` (the next marker), so each character is read once however many markers a line holds. A
    commitment's answer (``soft``) also stops at a clause break: "I'd say 12, but it could be 13" is 12."""
    line, nxt = _line_at(text, end, bound)
    while not line.strip() and nxt < bound:  # "Answer:\n42": the answer is on the next non-empty line
        line, nxt = _line_at(text, nxt, bound)
    seg = _SENTENCE_BREAK.split(line.strip(), maxsplit=1)[0]
    if soft:
        seg = _CLAUSE_BREAK.split(seg, maxsplit=1)[0]
    seg = _ADVERB.sub("", seg.strip().strip("*").strip())  # "the answer is indeed D"
    return seg.strip("*").strip().rstrip(".").strip(), nxt


def explicit_spans(text: str) -> list[tuple[int, int, str]]:
    """Every explicit answer -- boxed content or marker segment -- as (start, end, answer), in text order.

    A commitment marker's answer ("I'd say X") is kept only when it has at most :data:`SHORT_WORDS` words;
    an answer that starts with a negation ("not 12") is dropped."""
    closing = _closing_braces(text) if _BOX.search(text) else {}
    found = [(m.start(), closing[m.end() - 1], text[m.end():closing[m.end() - 1] - 1].strip())
             for m in _BOX.finditer(text) if m.end() - 1 in closing]
    markers = list(_MARKER.finditer(text))
    bounds = [m.start() for m in markers[1:]] + [len(text)] * bool(markers)
    for m, bound in zip(markers, bounds, strict=True):
        seg, stop = _marker_segment(text, m.end(), bound, soft=m.group("soft") is not None)
        if m.group("soft") is not None and len(seg.split()) > SHORT_WORDS:
            continue
        found.append((m.start(), stop, seg))
    return sorted((start, stop, seg) for start, stop, seg in found if seg and not _NEGATED.match(seg))


def explicit_answers(text: str) -> list[tuple[int, str]]:
    """Every explicit answer (boxed content or marker segment) with its position, in text order."""
    return [(start, seg) for start, _, seg in explicit_spans(text)]


def _unboxed(seg: str) -> str:
    inner = [content for _, content in boxed_spans(seg)]
    seg = inner[-1].strip() if inner else seg
    return seg.rstrip(".").strip() or seg


def final_answer_span(text: str) -> tuple[int, int, str] | None:
    """(start, end, answer) of the last explicit answer in ``text`` (see the module doc), or None.

    When the previous explicit answer sits on the same line and only "or" separates the two
    (``\\boxed{12} or \\boxed{13}``), the answer is the hedge ``"12 or 13"``."""
    spans = explicit_spans(text)
    if not spans:
        return None
    start, stop, seg = spans[-1]
    seg = _unboxed(seg)
    if len(spans) >= 2:
        p_start, p_stop, p_seg = spans[-2]
        between = text[p_stop:start].replace("$", "")
        if p_stop <= start and "\n" not in between and _DISJUNCTION.match(between):
            return p_start, stop, f"{_unboxed(p_seg)} or {seg}"
    return start, stop, seg


def final_answer(text: str) -> str | None:
    """The last explicit answer in ``text`` (see the module doc), or None when it states none."""
    span = final_answer_span(text)
    return span[2] if span else None


def short_response(text: str) -> str | None:
    """A marker-less response that is itself an answer: the whole text, else its last line, when short."""
    stripped = text.strip()
    if stripped and len(stripped.split()) <= SHORT_WORDS:
        return stripped
    lines = [ln.strip() for ln in stripped.split("\n") if ln.strip()]
    if lines and len(lines[-1].split()) <= SHORT_WORDS:
        return lines[-1]
    return None


def strip_latex(s: str) -> str:
    """Drop math delimiters, ``\\text{}``-style wrappers, spacing commands and degree signs; ``\\dfrac`` /
    ``\\tfrac`` -> ``\\frac`` and the brace-less ``\\frac34`` -> ``\\frac{3}{4}``; the Unicode minus becomes ``-``."""
    s = canonical_text(s).strip().strip("$").strip()
    s = _TEXT_WRAP.sub(r"\1", s)
    for tok in _LATEX_NOISE:
        s = s.replace(tok, "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    if "\\frac" in s:
        s = _FRAC_SHORT.sub(lambda m: f"\\frac{{{m.group(1) or m.group(2)}}}{{{m.group(3) or m.group(4)}}}", s)
    return s.strip()


def normalise_text(s: str) -> str:
    """Whitespace collapsed, lower case, LaTeX wrappers and bold stripped, escaped braces unescaped, one pair
    of surrounding parentheses and a trailing period removed: ``"(A)" -> "a"``, ``"True." -> "true"``."""
    t = " ".join(strip_latex(s).replace("\\{", "{").replace("\\}", "}").split()).lower().strip("*").strip()
    t = t.rstrip(".").strip()
    if len(t) >= 2 and t[0] == "(" and t[-1] == ")" and "(" not in t[1:-1] and ")" not in t[1:-1]:
        t = t[1:-1].strip()
    return t
