"""Model Swarms (Feng et al. 2024): particle swarm optimisation in weight space with dev accuracy as fitness.

Each particle is a model; velocities pull it towards its personal best and the global best and push it away
from the global worst, each term scaled by a fresh uniform random scalar:

    v <- r_v*inertia*v + r_p*cognitive*(p_best - x) + r_g*social*(g_best - x) - r_w*repel*(g_worst - x)
    x <- x + step * v,   step <- step * step_decay after every iteration

Because the random factors are scalars, every position and velocity stays a linear combination of the pool's
weights, so particles are stored exactly as coefficient vectors over the pool (``theta = sum_i c_i theta_i``)
and materialised only to be evaluated: memory stays at the pool plus one candidate. Particles start at the
pool's models themselves, plus seeded random convex combinations up to ``particles``; initial velocities
point at another random particle. The result is the global best (ties go to the earlier-found particle).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from mocoflow.methods.base import MergeContext, MergeMethod, MethodError, register
from mocoflow.methods.weight._common import DevEvaluator
from mocoflow.models import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSwarmsParams:
    """particles: swarm size (None = pool size + 2; at least the pool size). iterations: PSO iterations (5).
    inertia, cognitive, social, repel: weights of the velocity terms (0.4, 0.3, 0.3, 0.1).
    step: step length (0.5), multiplied by step_decay (0.9) after each iteration.
    max_dev_items: dev items in the fitness (32). seed: PSO seed (None = the study seed)."""

    particles: int | None = None
    iterations: int = 5
    inertia: float = 0.4
    cognitive: float = 0.3
    social: float = 0.3
    repel: float = 0.1
    step: float = 0.5
    step_decay: float = 0.9
    max_dev_items: int = 32
    seed: int | None = None


def _axpy(a: float, x: list[float], y: list[float]) -> list[float]:
    return [a * xi + yi for xi, yi in zip(x, y, strict=True)]


def _sub(x: list[float], y: list[float]) -> list[float]:
    return [xi - yi for xi, yi in zip(x, y, strict=True)]


def swarm_search(n: int, fitness, p: ModelSwarmsParams, seed: int) -> tuple[list[float], float, list[dict]]:
    """PSO over coefficient vectors of length ``n``; ``fitness(coefficients) -> float`` (higher is better)."""
    rng = random.Random(seed)
    size = p.particles if p.particles is not None else n + 2
    if size < n:
        raise MethodError(f"model_swarms: particles ({size}) must be at least the pool size ({n})")
    xs = [[1.0 if j == i else 0.0 for j in range(n)] for i in range(n)]
    while len(xs) < size:
        g = [rng.gammavariate(1.0, 1.0) for _ in range(n)]
        xs.append([v / sum(g) for v in g])
    vs = []
    for i in range(size):
        j = rng.choice([k for k in range(size) if k != i]) if size > 1 else i
        vs.append(_sub(xs[j], xs[i]))
    fs = [fitness(x) for x in xs]
    pbest, pfit = [list(x) for x in xs], list(fs)
    gi = max(range(size), key=lambda i: (fs[i], -i))
    gbest, gfit = list(xs[gi]), fs[gi]
    gworst = list(xs[min(range(size), key=lambda i: (fs[i], i))])
    step = p.step
    history = [{"iteration": 0, "best": gfit, "fitness": fs}]
    for it in range(1, p.iterations + 1):
        for i in range(size):
            r_v, r_p, r_g, r_w = (rng.random() for _ in range(4))
            v = [r_v * p.inertia * vi for vi in vs[i]]
            v = _axpy(r_p * p.cognitive, _sub(pbest[i], xs[i]), v)
            v = _axpy(r_g * p.social, _sub(gbest, xs[i]), v)
            v = _axpy(-r_w * p.repel, _sub(gworst, xs[i]), v)
            vs[i] = v
            xs[i] = _axpy(step, v, xs[i])
            fs[i] = fitness(xs[i])
            if fs[i] > pfit[i]:
                pbest[i], pfit[i] = list(xs[i]), fs[i]
            if fs[i] > gfit:
                gbest, gfit = list(xs[i]), fs[i]
        gworst = list(xs[min(range(size), key=lambda i: (fs[i], i))])
        step *= p.step_decay
        history.append({"iteration": it, "best": gfit, "fitness": list(fs)})
    return gbest, gfit, history


@register
class ModelSwarms(MergeMethod):
    name = "model_swarms"
    Params = ModelSwarmsParams
    uses_dev = True

    def merge(self, pool: list[ModelRef], out_dir: Path, ctx: MergeContext | None = None) -> Path:
        from mocoflow.training.merging import combine_states, load_state, save_state

        p = self.params
        self.check_pool(pool)
        ctx = self.merge_context(ctx)
        evaluator = DevEvaluator(ctx, pool[0].path, p.max_dev_items)
        states = [load_state(Path(r.path)) for r in pool]
        memo: dict[tuple[float, ...], float] = {}

        def fitness(coefficients: list[float]) -> float:
            key = tuple(round(c, 8) for c in coefficients)
            if key not in memo:
                memo[key] = evaluator.accuracy(combine_states(states, coefficients))
            return memo[key]

        seed = p.seed if p.seed is not None else ctx.seed
        best, fit, history = swarm_search(len(pool), fitness, p, seed)
        log.info("model swarms: best dev accuracy %.3f with coefficients %s (%d evaluations)", fit, best,
                 evaluator.evaluations)
        log.debug("model swarms history: %s", json.dumps(history))
        return save_state(combine_states(states, best), Path(pool[0].path), out_dir,
                          sources=[r.path for r in pool],
                          info={"method": self.name, "coefficients": dict(zip([r.name for r in pool], best,
                                                                              strict=True)),
                                "dev_accuracy": fit, "seed": seed, "history": history})
