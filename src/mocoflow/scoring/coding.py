"""Coding scoring: extract the program from a response and run the item's tests in the sandbox.

Program extraction: the last fenced code block (```python preferred, bare ``` accepted) that defines the
entry point, else the last python block, else the whole response (trimmed to its code lines if the prose
around it does not parse). HumanEval-style items keep the prompt's code (``metadata["prompt_code"]`` or
the code after "Complete the following code"): it is put before the solution, so helper functions and
imports from the prompt exist and a response that only continues the function body completes the prompt's
function.

Checking (``sandbox.run_check``): the solution runs in one sandbox that serves calls of the entry point; the
item's test (``def check(candidate)``, HumanEval/MBPP style) runs with the prompt's code in a second sandbox,
calling a proxy whose arguments and return values cross between the two as plain data (JSON of built-in types:
see ``sandbox_harness.py`` for the supported types). The item passes only if ``check`` returns normally in the
checker's sandbox, having reached a solution that loaded: nothing the solution does (``exit(0)``, trace hooks,
patched builtins, a custom ``__eq__``, reading its own source) can reach the test or the verdict. The function
under test is the entry point by name, never "the first def".

Statuses: a timeout is ``timeout``; a test that needs what the boundary cannot carry (an argument of another
type, a name the solution defines) or a checker without a verdict is ``error``; everything else is graded. With
no working bubblewrap and no ``sandbox: {allow_unisolated: true}``, scoring raises ``SandboxUnavailable``
(fail closed, the job stops with what to do).
"""

from __future__ import annotations

import ast
import re

from mocoflow.data.schema import Item
from mocoflow.scoring.base import SCORERS, Scorer, ScoreResult, graded, unparseable
from mocoflow.scoring.sandbox import SandboxPolicy, run_check

TIMEOUT_S = 10.0
"""Wall-clock seconds per test run (generous: HumanEval/MBPP reference solutions take milliseconds)."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_HUMANEVAL_PREFIX = re.compile(r"^\s*Complete the following code\s*:?\s*\n", re.IGNORECASE)
_TOP_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_ASSERT_CALL = re.compile(r"assert\s+(?:not\s+)?\(?\s*(?:math\.isclose\(\s*|set\(\s*)?([A-Za-z_]\w*)\s*\(")
_CODE_START = re.compile(r"^(?:def |class |import |from |@|async def )", re.MULTILINE)
_NOT_ENTRY = {
    "candidate",
    "isinstance",
    "abs",
    "set",
    "sorted",
    "len",
    "math",
    "round",
    "list",
    "tuple",
    "str",
}


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def prompt_code(item: Item) -> str | None:
    """The code part of a HumanEval-style prompt (a function stub), if any and if it parses."""
    code = item.metadata.get("prompt_code")
    if not code:
        text = _HUMANEVAL_PREFIX.sub("", item.question, count=1)
        code = text if _TOP_DEF.search(text) and _parses(text) else None
    return code if code and _parses(code) else None


def entry_point(item: Item) -> str | None:
    """The function under test: ``metadata["entry_point"]``, else the last top-level def of the prompt code
    (HumanEval: helpers come first), else the first ``assert NAME(`` in the prompt (MBPP) or the test."""
    entry = item.metadata.get("entry_point")
    if entry:
        return str(entry)
    code = prompt_code(item)
    if code:
        defs = _TOP_DEF.findall(code)
        if defs:
            return defs[-1]
    for text in (item.question, str(item.gold or "")):
        names = [n for n in _ASSERT_CALL.findall(text) if n not in _NOT_ENTRY]
        if names:
            return names[0]
    return None


def _defines(code: str, name: str) -> bool:
    return (
        re.search(
            rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(|^{re.escape(name)}\s*=", code, re.MULTILINE
        )
        is not None
    )


def _trim_to_code(text: str) -> str:
    """Drop prose around code: start at the first code-looking line, drop trailing lines until it parses."""
    m = _CODE_START.search(text)
    if not m:
        return text
    lines = text[m.start() :].splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end])
        if _parses(candidate):
            return candidate
    return text[m.start() :]


def extract_program(item: Item, output: str) -> str | None:
    """The solution program for ``item`` (prompt code included where needed), or None if there is none."""
    if not output.strip():
        return None
    entry = entry_point(item) or ""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(output) if body.strip()]
    code_blocks = [b for lang, b in blocks if lang in ("python", "py", "python3", "")]
    with_entry = [b for b in code_blocks if entry and _defines(b, entry)]
    if with_entry:
        solution = with_entry[-1]
    elif code_blocks:
        solution = code_blocks[-1]
    else:
        solution = output if _parses(output) else _trim_to_code(output)
    stub = prompt_code(item)
    if stub is None:
        return solution
    if entry and not _defines(solution, entry):
        # a continuation of the prompt's function body
        body = solution if solution.startswith((" ", "\t")) else _indent_if_body(solution)
        return stub.rstrip("\n") + "\n" + body
    return stub.rstrip("\n") + "\n\n" + solution


def _indent_if_body(solution: str) -> str:
    """A continuation whose first line lost its indentation (common after stripping) gets it back."""
    lines = solution.splitlines()
    if len(lines) > 1 and lines[1].startswith("    ") and not lines[0].startswith((" ", "\t")):
        return "    " + solution
    return solution


class CodingScorer(Scorer):
    """Runs each item's tests against the extracted program in two sandboxes (see the module docstring)."""

    def __init__(self, policy: SandboxPolicy | None = None) -> None:
        self.policy = policy or SandboxPolicy()

    def score(self, item: Item, output: str) -> ScoreResult:
        entry = entry_point(item)
        if not entry:
            return ScoreResult(False, 0.0, None, status="error", detail="item has no entry point")
        if not isinstance(item.gold, str) or "def check" not in item.gold:
            return ScoreResult(
                False, 0.0, None, status="error", detail="item gold is not a check() test program"
            )
        solution = extract_program(item, output)
        if solution is None:
            return unparseable("no code in the response")
        try:
            run = run_check(solution, item.gold, entry, prompt=prompt_code(item), timeout_s=TIMEOUT_S,
                            allow_unisolated=self.policy.allow_unisolated)
        except OSError as exc:
            return ScoreResult(False, 0.0, solution, status="error", detail=f"sandbox failed: {exc}")
        detail = f"{run.kind}: {run.detail} [{run.backend}]"
        if run.kind == "timeout":
            return ScoreResult(False, 0.0, solution, status="timeout", detail=detail)
        if run.kind in ("harness_error", "checker_failed"):
            return ScoreResult(False, 0.0, solution, status="error", detail=detail)
        return graded(run.passed, solution, detail=detail)

    def extract(self, item: Item, output: str) -> str | None:
        """Voting key: the extracted program with blank lines and trailing spaces removed."""
        program = extract_program(item, output)
        if program is None:
            return None
        return "\n".join(ln.rstrip() for ln in program.splitlines() if ln.strip()) or None


SCORERS.register("coding")(CodingScorer())
