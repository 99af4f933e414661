"""The program that runs inside each coding sandbox: standard library only, no mocoflow imports.

``sandbox.py`` copies this file into a sandbox and starts it as ``python -I -B harness.py ROLE ...``. Before it
reads any untrusted code it applies the run's resource limits to itself (they are inherited by everything the
code starts) and sets ``no_new_privs``. Three roles:

``run PROGRAM``
    run one Python program (``run_sandboxed``).
``serve SOLUTION ENTRY IN_FD OUT_FD``
    the candidate's sandbox: load the model-written solution, then answer calls of its entry point. Each
    request is one JSON line read from ``IN_FD``; each reply one JSON line written to ``OUT_FD``.
``check PROMPT TEST ENTRY IN_FD OUT_FD VERDICT_FD``
    the checker's sandbox: run the item's prompt code and test program (``def check(candidate)``), passing a
    proxy as the candidate; each call of the proxy is sent to the candidate's sandbox and its reply decoded.
    The verdict (one JSON object) goes to ``VERDICT_FD``, a pipe only the scorer reads.

The candidate never sees the test program, the expected values or the verdict pipe, and nothing it returns is
an object of its own: replies are decoded by ``decode`` into fresh built-in values (the plain-data boundary),
so trace hooks, patched builtins, a custom ``__eq__`` or a forged reply can only make the candidate's answers
wrong or missing, never make the checks pass.

Wire values (``encode``/``decode``): ``None``, ``bool``, ``int`` (any size), ``float`` (also nan, inf, -0.0),
``str``, ``list``, ``tuple``, ``dict`` (keys of any hashable wire type), ``set``, ``frozenset``, ``bytes``,
``bytearray``, ``complex``, ``range``, ``fractions.Fraction``, ``decimal.Decimal``, nested in any way. On the
candidate's side subclasses travel as their base type (``namedtuple`` -> tuple, ``Counter``/``OrderedDict``/
``defaultdict`` -> dict, ``IntEnum`` -> int), other ``numbers.Integral``/``Real``/``Complex`` values (e.g. numpy
scalars) as int/float/complex, and an iterator or generator as the list of its items, rebuilt as an iterator
(``iter(list)``). Any other return value (a class instance, a function, a numpy array) fails the item with
``unsupported return type``; an argument of another type fails it as a harness error (the test needs objects
the boundary cannot carry). Mutations of arguments are not seen by the test, and the test sees only the
prompt's code and the entry point, not other names the solution defines.

Exceptions: an ``Exception`` raised by the candidate is re-raised in the checker as its nearest built-in
exception class (a custom ``class E(ValueError)`` arrives as ``ValueError``) with the same arguments, so
``try/except`` and ``assertRaises``-style tests work. A candidate that exits or dies during a call, breaks the
protocol or returns an unsupported value raises ``CandidateFailure``, a ``BaseException`` that test code's
``except Exception`` does not swallow; the verdict also records it, so a bare ``except:`` cannot hide it.
"""

from __future__ import annotations

import builtins
import itertools
import json
import os
import resource
import sys

# Modules imported only when needed (the harness starts once per sandbox; each import costs milliseconds):
# numbers, collections.abc, decimal, fractions (wire values of those types), traceback, ctypes.

TAG = "$"
MAX_LINE = 16 << 20  # bytes of one JSON message
MAX_ITEMS = 1_000_000  # items taken from an iterator the candidate returns
MAX_DEPTH = 100  # nesting of a wire value
MAX_TEXT = 2000  # characters of a detail string
BIG_INT_BITS = 4000  # larger ints travel as hex (decimal strings over 4300 digits are refused by int())
_PR_SET_NO_NEW_PRIVS = 38


class Unsupported(Exception):
    """A value of a type the wire format does not carry."""


class WireError(Exception):
    """A message or wire value that is not well formed."""


class CandidateFailure(BaseException):
    """The candidate crashed, exited, broke the protocol or returned an unsupported value."""


class HarnessError(BaseException):
    """The test needs something the boundary cannot do (an argument type it cannot carry)."""


# --------------------------------------------------------------------------- the wire format


def encode(value: object, depth: int = 0) -> object:
    """A JSON-ready form of ``value``; raises ``Unsupported`` for types the wire does not carry."""
    if depth > MAX_DEPTH:
        raise Unsupported(f"nesting deeper than {MAX_DEPTH}")
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str or kind is float:
        return value
    if kind is int:
        return value if value.bit_length() <= BIG_INT_BITS else {TAG: "int", "v": hex(value)}
    if kind is list:
        return [encode(v, depth + 1) for v in value]
    if kind is tuple:
        return {TAG: "tuple", "v": [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {TAG: "dict", "v": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is set or kind is frozenset:
        return {TAG: kind.__name__, "v": [encode(v, depth + 1) for v in value]}
    if kind is bytes or kind is bytearray:
        return {TAG: kind.__name__, "v": bytes(value).hex()}
    if kind is complex:
        return {TAG: "complex", "v": [value.real, value.imag]}
    if kind is range:
        return {TAG: "range", "v": [value.start, value.stop, value.step]}
    return _encode_other(value, depth)


def _encode_other(value: object, depth: int) -> object:
    """Subclasses and value types as their base type; iterators as their items."""
    import collections.abc
    import numbers

    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")  # loaded if value is one
    if fractions is not None and isinstance(value, fractions.Fraction):
        return {TAG: "fraction", "v": [encode(int(value.numerator)), encode(int(value.denominator))]}
    if decimal is not None and isinstance(value, decimal.Decimal):
        return {TAG: "decimal", "v": str(decimal.Decimal(value))}
    for base, convert in ((numbers.Integral, int), (numbers.Real, float), (numbers.Complex, complex)):
        if isinstance(value, base):
            return encode(convert(value), depth)
    for base in (str, list, tuple, dict, frozenset, set, bytes, bytearray):
        if isinstance(value, base):
            return encode(str.__str__(value) if base is str else base(value), depth)
    if isinstance(value, collections.abc.Iterator):
        items = list(itertools.islice(value, MAX_ITEMS + 1))
        if len(items) > MAX_ITEMS:
            raise Unsupported(f"iterator longer than {MAX_ITEMS} items")
        return {TAG: "iter", "v": [encode(v, depth + 1) for v in items]}
    kind = type(value)
    raise Unsupported(f"{kind.__module__}.{kind.__qualname__}")


def _items(body: object, depth: int) -> list:
    if type(body) is not list:
        raise WireError("a tagged value needs a list body")
    return [decode(v, depth + 1) for v in body]


def _ints(body: object, count: int) -> list:
    values = [decode(v) for v in body] if type(body) is list else []
    if len(values) != count or any(type(v) is not int for v in values):
        raise WireError(f"expected {count} ints, got {body!r:.100}")
    return values


def decode(wire: object, depth: int = 0) -> object:
    """The value ``wire`` stands for, built only from built-in types; raises ``WireError`` otherwise."""
    if depth > MAX_DEPTH:
        raise WireError(f"nesting deeper than {MAX_DEPTH}")
    if wire is None or wire is True or wire is False:
        return wire
    kind = type(wire)
    if kind is str or kind is int or kind is float:
        return wire
    if kind is list:
        return [decode(v, depth + 1) for v in wire]
    if kind is not dict or set(wire) != {TAG, "v"}:
        raise WireError(f"not a wire value: {wire!r:.100}")
    tag, body = wire[TAG], wire["v"]
    try:
        return _decode_tagged(tag, body, depth)
    except (TypeError, ValueError, ArithmeticError) as exc:  # decimal.InvalidOperation is an ArithmeticError
        raise WireError(f"bad {tag!r} value: {exc}") from None


def _decode_tagged(tag: object, body: object, depth: int) -> object:
    if tag == "tuple":
        return tuple(_items(body, depth))
    if tag == "list":
        return _items(body, depth)
    if tag == "iter":
        return iter(_items(body, depth))
    if tag == "set":
        return set(_items(body, depth))
    if tag == "frozenset":
        return frozenset(_items(body, depth))
    if tag == "dict":
        pairs = _items(body, depth)
        if any(type(p) is not list or len(p) != 2 for p in pairs):
            raise WireError("dict items must be [key, value] pairs")
        return {k: v for k, v in pairs}
    if tag in ("bytes", "bytearray") and type(body) is str:
        raw = bytes.fromhex(body)
        return raw if tag == "bytes" else bytearray(raw)
    if tag == "complex":
        parts = _items(body, depth)
        if len(parts) != 2 or any(type(p) not in (int, float) for p in parts):
            raise WireError("complex needs [real, imag]")
        return complex(parts[0], parts[1])
    if tag == "range":
        return range(*_ints(body, 3))
    if tag == "fraction":
        import fractions

        return fractions.Fraction(*_ints(body, 2))
    if tag == "decimal" and type(body) is str:
        import decimal

        return decimal.Decimal(body)
    if tag == "int" and type(body) is str:
        return int(body, 16)
    raise WireError(f"unknown wire tag {tag!r:.50}")


def dumps(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=True).encode("ascii") + b"\n"


def loads(line: bytes) -> dict:
    """One protocol message; ``WireError`` for anything but a well-formed JSON object line."""
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise WireError(f"message over {MAX_LINE} bytes or cut short")
    try:
        message = json.loads(line)
    except (ValueError, RecursionError, MemoryError) as exc:
        raise WireError(f"malformed message: {str(exc)[:200]}") from None
    if type(message) is not dict:
        raise WireError("a message must be a JSON object")
    return message


def _text(exc: BaseException) -> str:
    message = str(exc)
    return (f"{type(exc).__name__}: {message}" if message else type(exc).__name__)[:MAX_TEXT]


# --------------------------------------------------------------------------- limits


def apply_limits(spec: str) -> None:
    """Apply ``cpu,as,fsize,nofile,nproc,nnp`` (0 = leave as is) as soft = hard limits, no core dumps, and
    ``no_new_privs`` when ``nnp`` is 1 (bubblewrap sets it itself)."""
    kinds = (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE,
             resource.RLIMIT_NPROC)
    values = [int(v) for v in spec.split(",")]
    for kind, value in zip(kinds, values[:5]):  # noqa: B905 - runs on the sandbox's Python, maybe < 3.10
        if value > 0:
            _, hard = resource.getrlimit(kind)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(kind, (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if values[5:] != [1]:
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - bwrap sets it anyway
        pass


# --------------------------------------------------------------------------- roles


def run(program: str) -> None:
    with open(program, encoding="utf-8") as fh:
        source = fh.read()
    sys.argv = [program]
    exec(compile(source, program, "exec"), {"__name__": "__main__", "__file__": program, "__builtins__": builtins})  # noqa: S102


def serve(solution: str, entry: str, in_fd: int, out_fd: int) -> None:
    """Load the solution, then answer calls of ``entry`` until the checker closes the pipe."""
    requests = os.fdopen(in_fd, "rb")
    replies = os.fdopen(out_fd, "wb")

    def send(message: dict) -> None:
        replies.write(dumps(message))
        replies.flush()

    namespace = {"__name__": "__main__", "__file__": solution, "__builtins__": builtins}
    try:
        with open(solution, encoding="utf-8") as fh:
            source = fh.read()
        exec(compile(source, solution, "exec"), namespace)  # noqa: S102 - sandboxed model-written code
    except BaseException as exc:  # noqa: BLE001 - any failure to load is reported, SystemExit included
        import traceback

        send({"load_error": _text(exc), "traceback": traceback.format_exc()[-MAX_TEXT:]})
        return
    function = namespace.get(entry)
    if not callable(function):
        send({"load_error": f"the solution does not define a function {entry!r}"})
        return
    send({"ready": True})
    for line in requests:
        request = loads(line)
        ident = request.get("id")
        args = decode(request.get("args"))
        kwargs = dict(decode(request.get("kwargs")))
        try:
            result = function(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - forwarded to the test
            send({"id": ident, "raise": _exception_reply(exc)})
            continue
        except BaseException as exc:  # SystemExit, KeyboardInterrupt: the candidate stopped mid-call
            send({"id": ident, "abort": _text(exc)})
            return
        try:
            send({"id": ident, "return": encode(result)})
        except Unsupported as exc:
            send({"id": ident, "unsupported": str(exc)[:MAX_TEXT]})


def _exception_reply(exc: Exception) -> dict:
    names = [cls.__name__ for cls in type(exc).__mro__]
    try:
        args = [encode(a) for a in exc.args]
    except Unsupported:
        args = None
    return {"mro": names, "args": args, "text": _text(exc)}


class Candidate:
    """The checker's stand-in for the candidate function: each call is a request to the candidate's sandbox."""

    def __init__(self, name: str, replies: object, requests: object) -> None:
        self.__name__ = self.__qualname__ = name
        self._replies = replies
        self._requests = requests
        self._next_id = 0
        self.ready = False
        self.failure: str | None = None
        self.harness_error: str | None = None
        self.calls = 0

    def __repr__(self) -> str:
        return f"<sandboxed candidate {self.__name__}>"

    def _fail(self, reason: str) -> CandidateFailure:
        self.failure = self.failure or reason[:MAX_TEXT]
        return CandidateFailure(self.failure)

    def _receive(self) -> dict:
        try:
            line = self._replies.readline(MAX_LINE + 1)
        except OSError as exc:
            raise self._fail(f"reading the candidate's reply failed: {exc}") from None
        if not line:
            raise self._fail("the candidate's process exited or closed its pipe")
        try:
            return loads(line)
        except WireError as exc:
            raise self._fail(f"protocol violation: {exc}") from None

    def await_ready(self) -> None:
        if self.failure:
            raise CandidateFailure(self.failure)
        if self.ready:
            return
        message = self._receive()
        if message.get("ready") is True and len(message) == 1:
            self.ready = True
            return
        if "load_error" in message:
            raise self._fail(f"the solution failed to load: {str(message['load_error'])[:MAX_TEXT]}")
        raise self._fail(f"protocol violation: expected the ready message, got {str(message)[:200]}")

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.await_ready()
        try:
            request = {"id": self._next_id, "args": encode(list(args)), "kwargs": encode(kwargs)}
        except Unsupported as exc:
            self.harness_error = self.harness_error or f"an argument of type {exc} cannot cross the sandbox boundary"
            raise HarnessError(self.harness_error) from None
        try:
            self._requests.write(dumps(request))
            self._requests.flush()
        except OSError as exc:
            raise self._fail(f"sending the call failed (candidate gone?): {exc}") from None
        self.calls += 1
        reply = self._receive()
        if reply.get("id") != self._next_id:
            raise self._fail("protocol violation: reply for another call")
        self._next_id += 1
        if "return" in reply:
            try:
                return decode(reply["return"])
            except WireError as exc:
                raise self._fail(f"protocol violation: {exc}") from None
        if "raise" in reply:
            raise _rebuild_exception(reply["raise"])
        if "unsupported" in reply:
            raise self._fail(f"unsupported return type {str(reply['unsupported'])[:200]}")
        if "abort" in reply:
            raise self._fail(f"the candidate stopped during a call: {str(reply['abort'])[:200]}")
        raise self._fail("protocol violation: unknown reply")


def _rebuild_exception(spec: object) -> BaseException:
    """The nearest built-in ``Exception`` class of what the candidate raised, with its arguments."""
    if type(spec) is not dict:
        return CandidateFailure("protocol violation: bad exception reply")
    names = [n for n in (spec.get("mro") if type(spec.get("mro")) is list else []) if type(n) is str]
    text = str(spec.get("text", ""))[:MAX_TEXT]
    try:
        args = tuple(decode(spec["args"])) if type(spec.get("args")) is list else (text,)
    except WireError:
        args = (text,)
    exc: BaseException = Exception(text)
    for cls in [getattr(builtins, n) for n in names if _builtin_exception(n)]:
        try:  # the first built-in class in the MRO that accepts the arguments (else the text)
            exc = cls(*args)
        except (TypeError, ValueError):
            try:
                exc = cls(text)
            except (TypeError, ValueError):
                continue
        break
    exc._mocoflow_from_candidate = text  # type: ignore[attr-defined]
    return exc


def _builtin_exception(name: str) -> bool:
    cls = getattr(builtins, name, None)
    return isinstance(cls, type) and issubclass(cls, Exception)


def check(prompt: str, test: str, entry: str, in_fd: int, out_fd: int, verdict_fd: int) -> None:
    """Run ``check(candidate)`` from the test program; write the verdict to ``verdict_fd``."""
    verdict_out = os.fdopen(verdict_fd, "wb")
    candidate = Candidate(entry, os.fdopen(in_fd, "rb"), os.fdopen(out_fd, "wb"))
    verdict = _judge(prompt, test, entry, candidate)
    verdict["calls"] = candidate.calls
    verdict_out.write(dumps(verdict))
    verdict_out.flush()


def _exec_file(path: str, namespace: dict) -> None:
    with open(path, encoding="utf-8") as fh:
        source = fh.read()
    exec(compile(source, path, "exec"), namespace)  # noqa: S102 - the item's own code


def _judge(prompt: str, test: str, entry: str, candidate: Candidate) -> dict:
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    try:
        if prompt != "-":
            _exec_file(prompt, namespace)
        namespace[entry] = candidate  # the test may call the entry point by name as well
        _exec_file(test, namespace)
    except BaseException as exc:  # noqa: BLE001
        return {"passed": False, "kind": "harness_error", "detail": f"the test program failed to load: {_text(exc)}"}
    check_fn = namespace.get("check")
    if not callable(check_fn) or check_fn is candidate:
        return {"passed": False, "kind": "harness_error", "detail": "the test program defines no check()"}
    try:
        check_fn(candidate)
        candidate.await_ready()  # a pass needs a solution that loaded, even if the test never calls it
    except HarnessError as exc:
        return {"passed": False, "kind": "harness_error", "detail": str(exc)}
    except CandidateFailure as exc:
        return {"passed": False, "kind": "candidate_failed", "detail": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - any exception fails the check
        return _classify(exc, candidate)
    if candidate.harness_error:
        return {"passed": False, "kind": "harness_error", "detail": candidate.harness_error}
    if candidate.failure:
        return {"passed": False, "kind": "candidate_failed", "detail": candidate.failure}
    return {"passed": True, "kind": "passed", "detail": "passed"}


def _classify(exc: BaseException, candidate: Candidate) -> dict:
    if candidate.harness_error or candidate.failure:
        kind = "harness_error" if candidate.harness_error else "candidate_failed"
        return {"passed": False, "kind": kind, "detail": candidate.harness_error or candidate.failure}
    from_candidate = getattr(exc, "_mocoflow_from_candidate", None)
    if from_candidate is not None:
        return {"passed": False, "kind": "candidate_raised", "detail": f"the candidate raised {from_candidate}"}
    import traceback

    where = ""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.basename(f.filename) in ("test.py", "prompt.py")]
    if frames:
        name = os.path.basename(frames[-1].filename)
        where = f" at {name}:{frames[-1].lineno}: {(frames[-1].line or '').strip()[:300]}"
    if isinstance(exc, NameError) and not isinstance(exc, UnboundLocalError):
        detail = f"{_text(exc)}{where} (the test sees the prompt's code and the entry point only)"
        return {"passed": False, "kind": "harness_error", "detail": detail[:MAX_TEXT]}
    kind = "assertion" if isinstance(exc, AssertionError) else "test_raised"
    return {"passed": False, "kind": kind, "detail": f"{_text(exc)}{where}"[:MAX_TEXT]}


def main(argv: list) -> None:
    limits, role, *rest = argv
    apply_limits(limits)
    if role == "run":
        run(rest[0])
    elif role == "serve":
        serve(rest[0], rest[1], int(rest[2]), int(rest[3]))
    elif role == "check":
        check(rest[0], rest[1], rest[2], int(rest[3]), int(rest[4]), int(rest[5]))
    else:
        raise SystemExit(f"unknown harness role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
