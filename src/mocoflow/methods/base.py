"""The method interface: a small class with typed hyperparameters and a declared list of needs."""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import os
import sys
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mocoflow.data.schema import Item
from mocoflow.engines.base import DecodingConfig, Engine
from mocoflow.models import ModelRef
from mocoflow.registry import Registry

if TYPE_CHECKING:
    from mocoflow.scoring.sandbox import SandboxPolicy


class Need(enum.Enum):
    """What a method requires from the pipeline; the Snakefile wires inputs from these."""

    TEST_GENERATIONS = "test_generations"  # every pool model's shared generations on test
    DEV_GENERATIONS = "dev_generations"  # ... and on dev (implies the dev split)
    SAME_TOKENIZER = "same_tokenizer"  # logit-level: next-token distributions must align
    SAME_ARCHITECTURE = "same_architecture"  # weight-level: parameters must align
    MERGED_MODEL = "merged_model"  # weight-level: a merge rule builds a model first
    MODELS = "models"  # loads pool models itself (generates new text)
    # the gold answers of the TEST items (only reference rows such as oracle_router): every other method
    # gets test items with ``gold`` removed (dev keeps its gold), so no prediction can depend on test gold
    TEST_GOLD = "test_gold"
    LOGITS = "logits"  # steps through pool models' next-token distributions (token-level collaboration)
    WEIGHTS = "weights"  # trains or copies pool models' weights in process


Score = Callable[[Item, str], bool]  # (item, output) -> whether the output is correct


@dataclass(frozen=True)
class TaskScorer:
    """The task's scorer as a method uses it on dev (or, with ``Need.TEST_GOLD``, test) outputs:
    ``(item, output) -> correct``. Model-written code (coding items) runs under ``sandbox``, the study
    config's ``sandbox:`` policy that the collaborate and merge stages pass in; the default fails closed
    without bubblewrap (``SandboxUnavailable``), as the score stage does."""

    sandbox: SandboxPolicy | None = None

    def __call__(self, item: Item, output: str) -> bool:
        from mocoflow.scoring import score_item
        from mocoflow.scoring.coding import CodingScorer

        if item.task_type == "coding":
            return bool(CodingScorer(self.sandbox).score(item, output).correct)
        return bool(score_item(item, output).correct)


class MethodError(RuntimeError):
    """A method cannot run in this setting; the message names why."""


class HyperparameterError(MethodError, ValueError):
    """A hyperparameter is unknown, of the wrong type or out of range; the message names its config key."""


@dataclass
class RunContext:
    """Everything a method run may read. Built by the collaborate stage."""

    run: str
    pool_name: str
    pool: list[ModelRef]
    task: str
    items: dict[str, list[Item]]  # split -> items: "dev" with gold, "test" without (unless Need.TEST_GOLD)
    generations: dict[str, dict[str, dict[str, dict[str, Any]]]]  # model -> split -> id -> record
    decoding: DecodingConfig
    engines: EngineProvider
    workdir: Path
    seed: int = 0
    merged_model: ModelRef | None = None
    # how the run grades an output (dev selection, rewards, rejection sampling): the task's scorer under the
    # study's sandbox policy; every method scores through it (never a module-level scorer)
    score: Score = field(default_factory=TaskScorer)
    # what the run decided, written to decisions.json beside its predictions (see ``decide``)
    decisions: dict[str, Any] = field(default_factory=dict)

    def decide(self, **entries: Any) -> None:
        """Record the run's decisions (JSON-serialisable): e.g. ``reliance={model: share}`` (the share of the
        answer each pool model is responsible for: items routed to it, fusion or merge weights; a run whose
        reliance has one non-zero entry is *degenerate*: it reduced to one model), ``weights``, ``graph``,
        ``schedules``, ``defer_rate``. Later calls update earlier keys."""
        self.decisions.update(entries)

    def gen(self, model: str, split: str, item_id: str) -> dict[str, Any]:
        try:
            return self.generations[model][split][item_id]
        except KeyError:
            raise MethodError(f"no shared generation for model {model!r}, split {split!r}, item {item_id!r}"
                              ) from None


class EngineProvider:
    """Loads each model at most once per job and hands the same engine back on every call."""

    def __init__(self, factory: Any) -> None:
        self._factory = factory  # callable(ModelRef) -> Engine
        self._engines: dict[str, Engine] = {}

    def get(self, ref: ModelRef) -> Engine:
        if ref.name not in self._engines:
            self._engines[ref.name] = self._factory(ref)
        return self._engines[ref.name]

    def loaded(self) -> dict[str, Engine]:
        return dict(self._engines)


@dataclass(frozen=True)
class NoParams:
    """This method has no hyperparameters."""


class Method(ABC):
    """Base class: subclasses set ``name``, ``level``, ``needs``, ``Params`` and implement ``run``."""

    name: ClassVar[str]
    level: ClassVar[str]  # "api" | "text" | "logit" | "weight" | "baseline"
    needs: ClassVar[frozenset[Need]] = frozenset()
    Params: ClassVar[type] = NoParams
    # True when the method draws random numbers from ``ctx.seed`` (sampling, seeded choices, training), so
    # a study's ``seeds:`` repeat it even under greedy decoding; deterministic methods run once per job.
    stochastic: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = build_params(self.Params, params or {}, self.name)

    def check_pool(self, pool: list[ModelRef]) -> None:
        """Raise MethodError when the pool cannot support this method (called before any work)."""
        if Need.SAME_TOKENIZER in self.needs:
            check_same(pool, "tokenizer", f"{self.name} needs one tokenizer")
        if Need.SAME_ARCHITECTURE in self.needs:
            check_same(pool, "architecture", f"{self.name} needs one architecture")

    @abstractmethod
    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        """Return one prediction record per test item: ``id``, ``output`` and cost columns."""


METHODS: Registry[type[Method]] = Registry("method")


def register(cls: type[Method]) -> type[Method]:
    METHODS.register(cls.name)(cls)
    return cls


def build_params(params_cls: type, values: dict[str, Any], method: str, *, where: str | None = None) -> Any:
    """Build the typed hyperparameters from config values, refusing unknown keys (the valid ones listed)
    and values of the wrong type: every value is checked against its dataclass field's annotation (see
    :func:`check_value`), so ``lr: "0.01"`` fails here with "<where>.lr: expected float, got str '0.01'"
    instead of deep inside a job. ``where`` names the config block in messages (default: the method)."""
    where = where or method
    if not isinstance(values, dict):
        raise HyperparameterError(f"{where}: hyperparameters must be a mapping, got {_got(values)}")
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise HyperparameterError(f"{where}: unknown hyperparameter(s) {unknown}; valid: {sorted(fields) or 'none'}")
    hints = _field_types(params_cls)
    checked = {name: check_value(value, hints[name], f"{where}.{name}") if name in hints else value
               for name, value in values.items()}
    try:
        return params_cls(**checked)
    except (TypeError, ValueError) as err:  # __post_init__ range checks, missing required fields
        raise HyperparameterError(f"{where}: {err}") from None


def _field_types(params_cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (``from __future__ import annotations`` leaves strings); a field
    whose annotation cannot be resolved is left unchecked."""
    try:
        return typing.get_type_hints(params_cls)
    except Exception:  # an annotation names something only imported for type checking
        module = vars(sys.modules.get(params_cls.__module__, typing))
        out = {}
        for f in dataclasses.fields(params_cls):
            try:
                out[f.name] = eval(f.type, module) if isinstance(f.type, str) else f.type  # noqa: S307
            except Exception:
                continue
        return out


def check_value(value: Any, annotation: Any, where: str) -> Any:
    """``value`` checked against ``annotation`` and converted where YAML cannot say it: an int where a float
    is expected becomes a float, a list where a tuple is expected becomes a tuple, a string where a Path is
    expected becomes a Path, a mapping where a dataclass is expected is built like hyperparameters. Handles
    ``X | None``, unions, ``Literal``, ``list``/``tuple``/``dict`` and nested dataclasses; ``Any`` and
    annotations it does not know pass unchecked. Raises HyperparameterError "<where>: expected ..., got ...".
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is object:
        return value
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        if len(arms) == 1:  # "X | None": X's own message says what inside a value is wrong
            try:
                return check_value(value, arms[0], where)
            except HyperparameterError as err:
                if str(err).startswith(f"{where}: expected "):  # the value itself, not a part of it
                    raise HyperparameterError(f"{where}: expected {_describe(annotation)}, got {_got(value)}") from None
                raise
        for arm in args:
            if arm is type(None):
                continue
            try:
                return check_value(value, arm, where)
            except HyperparameterError:
                continue
        raise HyperparameterError(f"{where}: expected {_describe(annotation)}, got {_got(value)}")
    if annotation is type(None):
        if value is None:
            return None
    elif origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif annotation in (Path, os.PathLike):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
    elif origin in (list, collections.abc.Sequence, set, frozenset):
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            items = [check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
            return origin(items) if origin in (set, frozenset) else items
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(check_value(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
            if not args or len(args) == len(value):
                return tuple(check_value(v, a, f"{where}[{i}]") for i, (v, a) in
                             enumerate(zip(value, args or [Any] * len(value), strict=True)))
    elif origin in (dict, collections.abc.Mapping):
        if isinstance(value, dict):
            key_type, value_type = args if args else (Any, Any)
            return {check_value(k, key_type, f"{where} key {k!r}"): check_value(v, value_type, f"{where}.{k}")
                    for k, v in value.items()}
    elif dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, dict):
            return build_params(annotation, value, where, where=where)
        if isinstance(value, annotation):
            return value
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            pass
    elif isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
    else:  # a typing form this check does not know: leave it to the method
        return value
    raise HyperparameterError(f"{where}: expected {_describe(annotation)}, got {_got(value)}")


def _describe(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, collections.abc.Sequence, set, frozenset):
        return f"a list of {_describe(args[0])}" if args else "a list"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} ({', '.join(_describe(a) for a in args)})" if args else "a list"
    if origin in (dict, collections.abc.Mapping):
        return f"a mapping of {_describe(args[0])} to {_describe(args[1])}" if args else "a mapping"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in annotation)
    if dataclasses.is_dataclass(annotation):
        return f"a mapping ({annotation.__name__})"
    return getattr(annotation, "__name__", str(annotation))


def _got(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_same(pool: list[ModelRef], attribute: str, why: str) -> None:
    groups: dict[str, list[str]] = {}
    for ref in pool:
        groups.setdefault(str(ref.card.get(attribute)), []).append(ref.name)
    if len(groups) > 1:
        described = "; ".join(f"{', '.join(names)}" for names in groups.values())
        raise MethodError(f"{why}; pool has {len(groups)} different {attribute}s: {described}")


def prediction(item_id: str, output: str, *, prompt_tokens: int = 0, generated_tokens: int = 0,
               new_generated_tokens: int = 0, **extra: Any) -> dict[str, Any]:
    """One prediction record. ``prompt_tokens``/``generated_tokens`` count everything the answer relied
    on (including reused shared generations); ``new_generated_tokens`` only what this method generated."""
    return {"id": item_id, "output": output, "prompt_tokens": prompt_tokens,
            "generated_tokens": generated_tokens, "new_generated_tokens": new_generated_tokens, **extra}




@dataclass
class MergeContext:
    """What a merge that evaluates candidates on dev may use (built by the merge stage).

    dev_items: the task's dev split (only dev; never test).
    decoding: how candidates generate on dev (the study's decoding settings).
    engine_factory: ``path -> Engine`` without a response cache (candidate weights are swapped in place).
    score: ``(item, output) -> correct``: the task's scorer under the study's sandbox policy (``TaskScorer``;
    the merge stage builds it from the config's ``sandbox:``).
    seed: seed for stochastic merges (search, drop masks, swarms).
    decisions: what the merge decided (coefficients, ``reliance``; see ``RunContext.decide``); the merge
    stage writes them into the merged model's card and the collaborate stage into the run's decisions.json.
    """

    dev_items: list[Item] = field(default_factory=list)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    engine_factory: Any = None
    score: Score = field(default_factory=TaskScorer)
    seed: int = 0
    decisions: dict[str, Any] = field(default_factory=dict)

    def decide(self, **entries: Any) -> None:
        """Record the merge's decisions (JSON-serialisable); later calls update earlier keys."""
        self.decisions.update(entries)


RECIPE_VERSION = 1  # bump when a merge formula changes what a recipe materialises to (new fingerprints)


def recipe_fingerprint(recipe: dict[str, Any]) -> str:
    """The merged model's fingerprint: a hash of its recipe (method, hyperparameters, what the merge chose,
    the pool members' fingerprints), so the response cache never mixes two different merges."""
    import hashlib
    import json

    payload = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return "recipe-" + hashlib.sha256(payload.encode()).hexdigest()


class MergeMethod(Method):
    """Weight-level method. ``plan`` decides the merge (the merge rule runs it once per pool, or per pool and
    task when it chooses on dev) and returns what the merged weights follow from besides the pool: member
    names, coefficients, thresholds, seeds (JSON, a few KB; never weights). :meth:`recipe` adds the method,
    its hyperparameters and the pool members' fingerprints; the merge stage stores it in the merged model's
    card. ``run`` generates from the merged model, which its engine materialises in memory when it loads:
    the model in ``template`` (a pool member's folder: config, tokenizer, starting weights) is passed to
    ``materialise``, which overwrites its weights. No merged weights are written.

    A merge that needs dev evaluation sets ``uses_dev = True`` and accepts ``ctx: MergeContext``; the merge
    stage then passes the dev split and an engine factory (the merge rule must list the dev split as input).
    """

    level = "weight"
    needs = frozenset({Need.SAME_ARCHITECTURE, Need.MERGED_MODEL})
    uses_dev: ClassVar[bool] = False

    @abstractmethod
    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """Decide the merge (searching on dev where the method does); return its JSON-serialisable plan."""

    @abstractmethod
    def template(self, pool: list[ModelRef], plan: dict[str, Any]) -> Path:
        """The model folder the merged model is loaded from before ``materialise`` sets its weights."""

    @abstractmethod
    def materialise(self, model: Any, pool: list[ModelRef], plan: dict[str, Any]) -> Any:
        """Set ``model``'s weights (loaded from ``template``) to the merge's, in memory; return the model."""

    def recipe(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """The plan with what it applies to: ``{"version", "method", "params", "members", "plan"}``, where
        ``members`` names each pool model with its card's fingerprint."""
        return {"version": RECIPE_VERSION, "method": self.name, "params": dataclasses.asdict(self.params),
                "members": [{"name": r.name, "fingerprint": r.card.get("fingerprint")} for r in pool],
                "plan": self.plan(pool, ctx)}

    def merged_model(self, card: dict[str, Any], pool: list[ModelRef]) -> ModelRef:
        """The merged model of a merge card, its weights built from the recipe when its engine loads (spec
        ``derived``). Refuses a card without a recipe, of another method, or of other pool models."""
        from mocoflow.engines.loader import DerivedWeights

        recipe = card.get("recipe")
        if not isinstance(recipe, dict) or "plan" not in recipe:
            raise MethodError(f"{self.name}: merged card {card.get('name')!r} has no recipe (written by an older "
                              "mocoflow, which stored weights): rerun its merge (--forcerun merge merge_dev)")
        if recipe.get("method") != self.name or recipe.get("version") != RECIPE_VERSION:
            raise MethodError(f"{self.name}: merged card {card.get('name')!r} holds a recipe of "
                              f"{recipe.get('method')!r} version {recipe.get('version')}, not {self.name!r} "
                              f"version {RECIPE_VERSION}: rerun its merge")
        now = [{"name": r.name, "fingerprint": r.card.get("fingerprint")} for r in pool]
        if recipe.get("members") != now:
            raise MethodError(f"{self.name}: merged card {card.get('name')!r} was planned for pool models "
                              f"{recipe.get('members')}, the pool is now {now}: rerun its merge")
        plan = recipe["plan"]
        derived = DerivedWeights(card["fingerprint"], lambda model: self.materialise(model, pool, plan))
        return ModelRef(card["name"], str(self.template(pool, plan)), card, {"derived": derived})

    def merge_context(self, ctx: MergeContext | None, *, engine: bool = True) -> MergeContext:
        """``ctx`` or a clear error when this merge needs dev items (and an engine factory) and got none."""
        if self.uses_dev and (ctx is None or not ctx.dev_items or (engine and ctx.engine_factory is None)):
            raise MethodError(f"{self.name}: this merge evaluates candidates on dev; it needs the dev split "
                              "and an engine factory (MergeContext), which the merge stage passes with --dev")
        return ctx or MergeContext()

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        from mocoflow.data.prompts import build_prompt

        if ctx.merged_model is None:
            raise MethodError(f"{self.name}: the merged model is missing (the merge rule did not run)")
        ctx.decide(**(ctx.merged_model.card.get("decisions") or {}))  # what the merge stage decided
        engine = ctx.engines.get(ctx.merged_model)
        items = ctx.items["test"]
        gens = engine.generate([build_prompt(i) for i in items], ctx.decoding,
                               progress=f"{ctx.run} on {ctx.task}")
        return [prediction(item.id, g.text, prompt_tokens=g.prompt_tokens,
                           generated_tokens=g.generated_tokens, new_generated_tokens=g.generated_tokens)
                for item, g in zip(items, gens, strict=True)]
