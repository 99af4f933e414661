"""The plain-data boundary between the candidate's and the checker's sandboxes.

In process: the wire format (every supported type round-trips with its exact type; subclasses arrive as their
base type; anything else is refused on both sides). Across the sandboxes: HumanEval/MBPP-style tests with
arguments and returns of every supported type, exceptions the test expects, the builtin ``coding_simple`` items,
and prompt helpers the candidate cannot replace.
"""

from __future__ import annotations

import collections
import enum
import json
import math
import numbers
import random
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction

import pytest

from mocoflow.data.schema import Item
from mocoflow.scoring import sandbox_harness as wire
from mocoflow.scoring import score_item
from mocoflow.scoring.sandbox import run_check

SHORT = 5.0


def across(value: object) -> object:
    """``value`` sent over the wire as the sandbox does (encode, JSON line, decode)."""
    return wire.decode(wire.loads(wire.dumps({"v": wire.encode(value)}))["v"])


def same(a: object, b: object) -> bool:
    """Equal with the same types all the way down (floats by repr: nan, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


ROUND_TRIP = [
    None, True, False, 0, -7, 2**5000, -(2**4001) + 1, 1.5, float("inf"), float("-inf"), float("nan"), -0.0,
    "", "héllo\n\u2603\x00", "\ud800", [], [1, [2, [3, []]]], (), (1,), (1, (2, "x"), [None]),
    {}, {"a": 1, 2: [None], (1, 2): {3: 4.5}, frozenset({1}): "f", None: 0},
    set(), {1, "a", (2, 3)}, frozenset({1, 2}), b"", b"\x00\xff", bytearray(b"ab"), 1 + 2j, complex(0, -0.0),
    range(0), range(1, 10, 3), Fraction(1, 3), Decimal("1.10"), Decimal("-0"),
    [{"k": (1, {2.5, "s"})}, ({"nested": [b"x", bytearray(), 3j]},)],
]


@pytest.mark.parametrize("value", ROUND_TRIP, ids=lambda v: type(v).__name__)
def test_supported_values_round_trip_with_their_types(value: object) -> None:
    assert same(across(value), value)


class Color(enum.IntEnum):
    RED = 3


class Text(str):
    pass


class Items(list):
    pass


class Registered:
    """Not an int, but registered as numbers.Integral (as numpy's integer scalars are)."""

    def __int__(self) -> int:
        return 42


numbers.Integral.register(Registered)


@pytest.mark.parametrize(("value", "expected"), [
    (collections.namedtuple("P", "a b")(1, 2), (1, 2)),
    (collections.Counter("aab"), {"a": 2, "b": 1}),
    (collections.OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
    (collections.defaultdict(list, {"x": [1]}), {"x": [1]}),
    (Color.RED, 3),
    (Text("hi"), "hi"),
    (Items([1, 2]), [1, 2]),
    (Registered(), 42),
])
def test_subclasses_and_registered_numbers_arrive_as_the_base_type(value: object, expected: object) -> None:
    assert same(across(value), expected)


def test_iterators_arrive_as_iterators_over_their_items() -> None:
    for value in ((i * i for i in range(4)), map(str, [1, 2]), iter([]), zip("ab", [1, 2], strict=True)):
        items = list(value)
        back = across(iter(items))
        assert iter(back) is back and list(back) == items


class Liar(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


def test_a_subclass_lying_in_eq_arrives_as_its_real_value() -> None:
    back = across(Liar(0))
    assert type(back) is int and back == 0 and back != 5


@pytest.mark.parametrize("value", [object(), lambda: 1, print, math, {1: object()}, {}.keys(), Exception("x")],
                         ids=["object", "lambda", "builtin", "module", "nested object", "dict_keys", "exception"])
def test_other_types_are_refused_by_name(value: object) -> None:
    with pytest.raises(wire.Unsupported, match=r"\w"):
        wire.encode(value)


def test_nesting_and_self_reference_are_refused() -> None:
    deep: list = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    loop: list = []
    loop.append(loop)
    for value in (deep, loop):
        with pytest.raises(wire.Unsupported, match="nesting"):
            wire.encode(value)


@pytest.mark.parametrize("bad", [
    {"$": "any", "v": 1}, {"$": "tuple", "v": [], "x": 1}, {"a": 1}, {"$": "set", "v": [[1, 2]]},
    {"$": "dict", "v": [[1]]}, {"$": "dict", "v": [[[1], 2]]}, {"$": "complex", "v": ["a", 1]},
    {"$": "range", "v": [1.5, 2, 1]}, {"$": "range", "v": [0, 1, 0]}, {"$": "bytes", "v": "zz"},
    {"$": "fraction", "v": [1, 0]}, {"$": "decimal", "v": "one"}, {"$": "int", "v": "0xg"}, {"$": "tuple", "v": 3},
])
def test_the_decoder_refuses_anything_but_wire_values(bad: object) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(bad)


def test_messages_must_be_one_bounded_json_object_line() -> None:
    for line in (b'{"ok": 1}', b"[1]\n", b"not json\n", b"[" * 100_000 + b"]" * 100_000 + b"\n",
                 b'{"v": "' + b"x" * (wire.MAX_LINE + 1) + b'"}\n'):
        with pytest.raises(wire.WireError):
            wire.loads(line)
    with pytest.raises(wire.WireError):
        wire.decode(json.loads("[" * (wire.MAX_DEPTH + 5) + "]" * (wire.MAX_DEPTH + 5)))


# -- across the two sandboxes ---------------

ECHO = "def f(*args, **kwargs):\n    return [args, kwargs]\n"
ECHO_TEST = '''
import math

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b

def check(candidate):
    values = ([1, (2, 3)], {"a": None, (1,): {2.5, "x"}}, float("inf"), -0.0, float("nan"), b"\\x00",
              bytearray(b"a"), 1 + 2j, 10 ** 5000, frozenset({1}), range(3), None, True, "s\\u2603",
              ((), [], {}, set()), {"deep": [[[[{"k": (1,)}]]]]})
    args, kwargs = candidate(*values, key=[None], other={"x": (1.5,)})
    assert same(args, values), args
    assert same(kwargs, {"key": [None], "other": {"x": (1.5,)}}), kwargs
    for v in values:
        assert same(candidate(v)[0][0], v), v
    for _ in range(200):
        assert candidate(1)[0] == (1,)
'''


def test_arguments_and_returns_of_every_type_cross_intact() -> None:
    result = run_check(ECHO, ECHO_TEST, "f", timeout_s=SHORT)
    assert result.passed, result
    assert result.calls == 1 + 16 + 200


def check_with(solution: str, test: str, entry: str = "f") -> tuple[bool, str, str]:
    r = run_check(solution, test, entry, timeout_s=SHORT)
    return r.passed, r.kind, r.detail


EXCEPTION_CASES = {
    "expected ValueError with its args": (
        "def f(x):\n    if x < 0:\n        raise ValueError('negative', x)\n    return x\n",
        "def check(candidate):\n    try:\n        candidate(-1)\n        assert False, 'no exception'\n"
        "    except ValueError as e:\n        assert e.args == ('negative', -1)\n    assert candidate(2) == 2\n",
        (True, "passed")),
    "custom subclass caught as its built-in base": (
        "class Missing(KeyError):\n    pass\ndef f(x):\n    raise Missing(x)\n",
        "def check(candidate):\n    try:\n        candidate(1)\n    except KeyError:\n        return\n"
        "    assert False\n",
        (True, "passed")),
    "assertRaises from unittest": (
        "def f(a, b):\n    return a // b\n",
        "import unittest\ndef check(candidate):\n"
        "    unittest.TestCase().assertRaises(ZeroDivisionError, candidate, 1, 0)\n"
        "    assert candidate(7, 2) == 3\n",
        (True, "passed")),
    "multi-argument built-in exception": (
        "def f(b):\n    return b.decode('utf-8')\n",
        "def check(candidate):\n    try:\n        candidate(b'\\xff')\n    except UnicodeDecodeError as e:\n"
        "        assert e.start == 0\n        return\n    assert False\n",
        (True, "passed")),
    "exception expected but none raised": (
        "def f(x):\n    return x\n",
        "def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError:\n        return\n"
        "    assert False, 'expected ValueError'\n",
        (False, "assertion")),
    "unexpected exception fails": (
        "def f(x):\n    raise RuntimeError('boom')\n",
        "def check(candidate):\n    assert candidate(1) == 1\n",
        (False, "candidate_raised")),
    "exit during a call is not an exception the test can catch": (
        "import sys\ndef f(x):\n    sys.exit(0)\n",
        "def check(candidate):\n    try:\n        candidate(1)\n    except Exception:\n        pass\n",
        (False, "candidate_failed")),
    "a bare except in the test cannot hide a crash": (
        "import os\ndef f(x):\n    os._exit(0)\n",
        "def check(candidate):\n    try:\n        candidate(1)\n    except:\n        pass\n",
        (False, "candidate_failed")),
    "unsupported return type": (
        "def f(x):\n    return object()\n",
        "def check(candidate):\n    assert candidate(1) is not None\n",
        (False, "candidate_failed")),
    "argument the boundary cannot carry": (
        "def f(g):\n    return g()\n",
        "def check(candidate):\n    assert candidate(lambda: 1) == 1\n",
        (False, "harness_error")),
    "test using a name only the solution defines": (
        "def helper():\n    return 1\ndef f():\n    return helper()\n",
        "def check(candidate):\n    assert candidate() == helper()\n",
        (False, "harness_error")),
    "entry point called by name in the test": (
        "def f(x):\n    return x + 1\n",
        "def check(candidate):\n    assert f(1) == 2 and candidate(2) == 3\n",
        (True, "passed")),
    "a test that never calls still needs a loadable solution": (
        "def f(x):\n    return x +\n",
        "def check(candidate):\n    assert True\n",
        (False, "candidate_failed")),
    "missing entry point": (
        "def g(x):\n    return x\n",
        "def check(candidate):\n    assert True\n",
        (False, "candidate_failed")),
    "in-place mutation is not seen by the test (documented)": (
        "def f(xs):\n    xs.sort()\n",
        "def check(candidate):\n    xs = [3, 1]\n    candidate(xs)\n    assert xs == [1, 3]\n",
        (False, "assertion")),
}


@pytest.fixture(scope="module")
def exception_outcomes() -> dict[str, tuple[bool, str, str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(check_with, sol, test) for name, (sol, test, _) in EXCEPTION_CASES.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(EXCEPTION_CASES))
def test_exceptions_and_edge_cases_across_the_boundary(name: str, exception_outcomes: dict) -> None:
    passed, kind, detail = exception_outcomes[name]
    assert (passed, kind) == EXCEPTION_CASES[name][2], detail


def test_scorer_statuses_for_harness_errors_and_unsupported_returns() -> None:
    def item(test: str) -> Item:
        return Item(id="i", task="t", split="test", task_type="coding", question="q", gold=test,
                    metadata={"entry_point": "f"})

    harness = score_item(item("def check(candidate):\n    assert candidate(lambda: 1) == 1\n"),
                         "def f(g):\n    return 1\n")
    assert harness.status == "error" and not harness.correct and "cannot cross" in harness.detail
    unsupported = score_item(item("def check(candidate):\n    assert candidate(1)\n"),
                             "def f(x):\n    return object()\n")
    assert unsupported.status == "ok" and not unsupported.correct and "unsupported return type" in unsupported.detail


def test_big_returns_cross_and_oversized_ones_fail() -> None:
    ok = run_check("def f(n):\n    return list(range(n))\n",
                   "def check(candidate):\n    assert candidate(100000) == list(range(100000))\n", "f", timeout_s=SHORT)
    assert ok.passed, ok
    big = run_check("def f(n):\n    return 'x' * n\n", "def check(candidate):\n    assert candidate(20 << 20)\n", "f",
                    timeout_s=SHORT)
    assert not big.passed and big.kind == "candidate_failed" and "over" in big.detail


# -- HumanEval-style prompts and the builtin coding items ---------------

CYCLIC_PROMPT = '''
def encode_cyclic(s: str):
    """Cycle each group of three characters."""
    groups = [s[(3 * i):min((3 * i + 3), len(s))] for i in range((len(s) + 2) // 3)]
    groups = [(group[1:] + group[0]) if len(group) == 3 else group for group in groups]
    return "".join(groups)


def decode_cyclic(s: str):
    """Takes a string encoded with encode_cyclic and returns the decoded string."""
'''
CYCLIC_TEST = '''
def check(candidate):
    from random import randint, choice
    import string
    letters = string.ascii_lowercase
    for _ in range(100):
        s = ''.join(choice(letters) for i in range(randint(10, 20)))
        assert candidate(encode_cyclic(s)) == s
'''


def cyclic_item() -> Item:
    return Item(id="HumanEval/38-like", task="t", split="test", task_type="coding",
                question="Complete the following code\n" + CYCLIC_PROMPT, gold=CYCLIC_TEST,
                metadata={"entry_point": "decode_cyclic", "prompt_code": CYCLIC_PROMPT})


def test_prompt_helpers_run_on_the_checker_side() -> None:
    good = "    return encode_cyclic(encode_cyclic(s))\n"  # a continuation of the prompt's function body
    assert score_item(cyclic_item(), good).correct


def test_the_candidate_cannot_replace_a_prompt_helper_the_test_uses() -> None:
    """Redefining encode_cyclic as the identity makes an identity decode_cyclic pass a single-program check."""
    forged = "```python\ndef encode_cyclic(s):\n    return s\n\ndef decode_cyclic(s):\n    return s\n```"
    result = score_item(cyclic_item(), forged)
    assert not result.correct and result.status == "ok", result


POLY_PROMPT = '''
import math


def poly(xs: list, x: float):
    """Evaluates a polynomial with coefficients xs at x."""
    return sum([coeff * math.pow(x, i) for i, coeff in enumerate(xs)])


def find_zero(xs: list):
    """Returns one zero of the polynomial xs (odd number of coefficients... here: any odd degree)."""
'''
POLY_TEST = '''
def check(candidate):
    import math
    import random
    import copy
    rng = random.Random(42)
    for _ in range(60):
        ncoeff = 2 * rng.randint(1, 4)
        coeffs = []
        for _ in range(ncoeff):
            coeff = rng.randint(-10, 10)
            coeffs.append(coeff if coeff != 0 else 1)
        solution = candidate(copy.deepcopy(coeffs))
        assert math.fabs(poly(coeffs, solution)) < 1e-4
'''
POLY_SOLUTION = '''
def find_zero(xs: list):
    lo, hi = -1.0, 1.0
    while poly(xs, lo) * poly(xs, hi) > 0:
        lo *= 2.0
        hi *= 2.0
    while hi - lo > 1e-10:
        mid = (lo + hi) / 2.0
        if poly(xs, mid) * poly(xs, lo) > 0:
            lo = mid
        else:
            hi = mid
    return lo
'''


def test_humaneval_style_floats_with_prompt_helpers_and_many_calls() -> None:
    item = Item(id="HumanEval/32-like", task="t", split="test", task_type="coding", question=POLY_PROMPT,
                gold=POLY_TEST, metadata={"entry_point": "find_zero", "prompt_code": POLY_PROMPT})
    assert score_item(item, f"```python\n{POLY_SOLUTION}\n```").correct
    assert not score_item(item, "```python\ndef find_zero(xs):\n    return 0.0\n```").correct


def test_builtin_coding_items_pass_with_their_reference_and_fail_without() -> None:
    from mocoflow.data.builtin import coding_simple

    items = []
    for seed in range(8):
        row = coding_simple(random.Random(seed))
        items.append(Item(id=str(seed), task="code_simple", split="test", task_type="coding",
                          question=row["question"], gold=row["gold"], metadata=row["metadata"]))
    pairs = [(i, i.metadata["reference_solution"], True) for i in items]
    pairs += [(i, f"def {i.metadata['entry_point']}(*args):\n    return None\n", False) for i in items]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda p: score_item(p[0], p[1]), pairs))
    assert [r.correct for r in results] == [want for _, _, want in pairs], [r.detail for r in results]
    assert {r.status for r in results} == {"ok"}
