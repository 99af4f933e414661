"""Where a response states its final answer, and text normalisation shared by the exact-match rules.

Explicit answers are ``\\boxed{...}`` / ``\\box{...}`` / ``\\fbox{...}`` contents (balanced braces; MoCo's
prompts ask for ``\\box{ANSWER}``) and answer markers (``Answer: X``, ``the answer is X``, ``final answer =
X``, ``#### X``). The **last explicit answer in the text wins**, by position, even when two markers share a
line ("The answer is 12. Wait, I made an error: the answer is 13." -> "13"). A marker's answer runs to the
end of its line (or, after a bare ``Answer:``, the next non-empty line) and stops at the first sentence
break (". " before a capital), so trailing commentary is not part of it. A negated marker ("the answer is
not 12, it is 13") states no answer.
"""

from __future__ import annotations

import re

SHORT_WORDS = 6
"""A response (or its last line) of at most this many words counts as a bare answer when it has no marker."""

_BOX = re.compile(r"\\(?:boxed|fbox|box)\s*\{", re.IGNORECASE)
_MARKER = re.compile(
    r"(?:\b(?:final\s+)?answer\s*(?:is|was|would\s+be|should\s+be|will\s+be|=|:)(?!\w)"
    r"|(?:^|(?<=\s))####)\s*:?[ \t]*",
    re.IGNORECASE,
)
_NEGATED = re.compile(r"(?:not|never|neither)\b", re.IGNORECASE)  # "the answer is not 12, it is 13"
_SENTENCE_BREAK = re.compile(r"[.!?;]\s+(?=[A-Z])")
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_NOISE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "^\\circ", "^{\\circ}", "\\%", "\\$",
                "\\displaystyle")


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


def _marker_segment(text: str, end: int, bound: int) -> str:
    """A marker's answer: the rest of its line, else the next non-empty line; never past ``bound`` (the next
    marker), so each character is read once however many markers a line holds."""
    line, nxt = _line_at(text, end, bound)
    while not line.strip() and nxt < bound:  # "Answer:\n42": the answer is on the next non-empty line
        line, nxt = _line_at(text, nxt, bound)
    seg = _SENTENCE_BREAK.split(line.strip(), maxsplit=1)[0]
    return seg.strip().strip("*").strip().rstrip(".").strip()


def explicit_answers(text: str) -> list[tuple[int, str]]:
    """Every explicit answer (boxed content or marker segment) with its position, in text order."""
    found = [(pos, content.strip()) for pos, content in boxed_spans(text)]
    markers = list(_MARKER.finditer(text))
    bounds = [m.start() for m in markers[1:]] + [len(text)] * bool(markers)
    found += [(m.start(), _marker_segment(text, m.end(), bound)) for m, bound in zip(markers, bounds, strict=True)]
    return sorted((pos, seg) for pos, seg in found if seg and not _NEGATED.match(seg))


def final_answer(text: str) -> str | None:
    """The last explicit answer in ``text`` (see the module doc), or None when it states none."""
    answers = explicit_answers(text)
    if not answers:
        return None
    seg = answers[-1][1]
    inner = [content for _, content in boxed_spans(seg)]
    seg = inner[-1].strip() if inner else seg
    return seg.rstrip(".").strip() or seg


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
    """Drop math delimiters, ``\\text{}``-style wrappers and spacing commands; ``\\dfrac`` -> ``\\frac``;
    the Unicode minus becomes ``-``."""
    s = s.replace("\u2212", "-").strip().strip("$").strip()
    s = _TEXT_WRAP.sub(r"\1", s)
    for tok in _LATEX_NOISE:
        s = s.replace(tok, "")
    return s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").strip()


def normalise_text(s: str) -> str:
    """Whitespace collapsed, lower case, LaTeX wrappers and bold stripped, escaped braces unescaped, one pair
    of surrounding parentheses and a trailing period removed: ``"(A)" -> "a"``, ``"True." -> "true"``."""
    t = " ".join(strip_latex(s).replace("\\{", "{").replace("\\}", "}").split()).lower().strip("*").strip()
    t = t.rstrip(".").strip()
    if len(t) >= 2 and t[0] == "(" and t[-1] == ")" and "(" not in t[1:-1] and ")" not in t[1:-1]:
        t = t[1:-1].strip()
    return t
