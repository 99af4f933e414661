"""Model Swarms (Feng et al. 2024; MoCo ``weight_model_swarms`` / ``utils/swarm.py``): particle swarm
optimisation in weight space with dev accuracy as fitness.

Each particle is a model. Every iteration, as in MoCo: each particle draws four uniform random scalars
(``weight_randomness``; 1 each without it), its four velocity weights ``r_v*inertia, r_p*cognitive,
r_g*social, r_w*repel`` are NORMALISED to sum to 1, and

    v <- w_v*v + w_p*(p_best - x) + w_g*(g_best - x) + w_w*(x - g_worst)
    x <- x + step * v,   step <- max(step * step_decay, min_step)

where ``g_best`` / ``g_worst`` are the best and worst models seen so far (all particles move with the same
ones within an iteration). RESTARTS (MoCo's): a particle whose fitness has not improved over its last
``restart_patience`` evaluations goes back to its personal best with zero velocity, then may not restart
again for ``RESTART_COOLDOWN`` iterations. The search stops early when the global best has not improved for
``patience`` iterations (MoCo's test ``g[-1] <= g[-patience]``).

Because the random factors are scalars, every position and velocity stays a linear combination of the pool's
weights, so particles are stored exactly as coefficient vectors over the pool (``theta = sum_i c_i theta_i``)
and materialised only to be evaluated: memory stays at the pool plus one candidate. Particles start at the
pool's models themselves (MoCo's swarm), plus seeded random convex combinations up to ``particles``; initial
velocities point at another random particle (MoCo's ``starting_velocity_mode="random"``). Every position is
evaluated, the initial ones included, and the result is the global best (ties go to the earlier-found one).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import MergeContext, MethodError, register
from mocoflow.methods.common import pool_member
from mocoflow.methods.weight.common import (
    DevEvaluator,
    TensorFormulaMerge,
    coefficient_reliance,
    member_template,
    member_tensors,
    record,
)
from mocoflow.models import ModelRef

log = logging.getLogger(__name__)

RESTART_COOLDOWN = 3  # iterations after a restart before the particle may restart again (MoCo's constant)


@dataclass(frozen=True)
class ModelSwarmsParams:
    """particles: swarm size (None = pool size + 2; at least the pool size). iterations: moves of the swarm
    (10, MoCo's max_iterations). inertia, cognitive, social, repel: weights of the velocity terms before
    normalisation (0.2, 0.3, 0.4, 0.05: MoCo's). weight_randomness: draw a uniform factor per term (True).
    step: step length (0.5), multiplied by step_decay (0.95) after each iteration, never below min_step (0.1).
    patience: stop when the global best has not improved for this many iterations (5).
    restart_patience: evaluations without improvement before a particle restarts from its best (3).
    max_dev_items: dev items in the fitness (32). seed: PSO seed (None = the study seed)."""

    particles: int | None = None
    iterations: int = 10
    inertia: float = 0.2
    cognitive: float = 0.3
    social: float = 0.4
    repel: float = 0.05
    weight_randomness: bool = True
    step: float = 0.5
    step_decay: float = 0.95
    min_step: float = 0.1
    patience: int = 5
    restart_patience: int = 3
    max_dev_items: int = 32
    seed: int | None = None


def _axpy(a: float, x: list[float], y: list[float]) -> list[float]:
    return [a * xi + yi for xi, yi in zip(x, y, strict=True)]


def _sub(x: list[float], y: list[float]) -> list[float]:
    return [xi - yi for xi, yi in zip(x, y, strict=True)]


def velocity_weights(p: ModelSwarmsParams, rng: random.Random) -> tuple[float, float, float, float]:
    """(inertia, cognitive, social, repel) weights of one particle's move, normalised to sum 1 (MoCo)."""
    r = [rng.random() for _ in range(4)] if p.weight_randomness else [1.0] * 4
    raw = [r[0] * p.inertia, r[1] * p.cognitive, r[2] * p.social, r[3] * p.repel]
    total = sum(raw)
    if total <= 0:
        return 0.0, 0.0, 0.0, 0.0
    return raw[0] / total, raw[1] / total, raw[2] / total, raw[3] / total


def stagnant(history: list[float], patience: int) -> bool:
    """MoCo's no-improvement test: more than ``patience`` values and the last no better than the one
    ``patience`` back."""
    return len(history) > patience and history[-1] <= history[-patience]


def swarm_search(n: int, fitness, p: ModelSwarmsParams, seed: int) -> tuple[list[float], float, list[dict]]:
    """PSO over coefficient vectors of length ``n``; ``fitness(coefficients) -> float`` (higher is better).
    Returns the global best, its fitness and one history record per evaluated iteration."""
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
    own = [[f] for f in fs]  # each particle's fitness history
    gi = max(range(size), key=lambda i: (fs[i], -i))
    gbest, gfit = list(xs[gi]), fs[gi]
    wi = min(range(size), key=lambda i: (fs[i], i))
    gworst, wfit = list(xs[wi]), fs[wi]
    best_so_far = [gfit]
    cooldown = [0] * size
    step = p.step
    history = [{"iteration": 0, "best": gfit, "fitness": list(fs), "restarted": []}]
    for it in range(1, p.iterations + 1):
        if stagnant(best_so_far, p.patience):
            log.info("model swarms: no improvement for %d iterations; stopping at %d", p.patience, it - 1)
            break
        restarted = []
        for i in range(size):
            if stagnant(own[i], p.restart_patience) and cooldown[i] == 0:
                xs[i], vs[i] = list(pbest[i]), [0.0] * n
                cooldown[i] = RESTART_COOLDOWN
                restarted.append(i)
            else:
                cooldown[i] = max(0, cooldown[i] - 1)
            w_v, w_p, w_g, w_w = velocity_weights(p, rng)
            v = [w_v * vi for vi in vs[i]]
            v = _axpy(w_p, _sub(pbest[i], xs[i]), v)
            v = _axpy(w_g, _sub(gbest, xs[i]), v)
            v = _axpy(w_w, _sub(xs[i], gworst), v)
            vs[i] = v
            xs[i] = _axpy(step, v, xs[i])
        step = max(step * p.step_decay, p.min_step)
        fs = [fitness(x) for x in xs]
        for i in range(size):
            own[i].append(fs[i])
            if fs[i] > pfit[i]:
                pbest[i], pfit[i] = list(xs[i]), fs[i]
            if fs[i] > gfit:
                gbest, gfit = list(xs[i]), fs[i]
            if fs[i] < wfit:
                gworst, wfit = list(xs[i]), fs[i]
        best_so_far.append(gfit)
        history.append({"iteration": it, "best": gfit, "fitness": list(fs), "restarted": restarted})
    return gbest, gfit, history


@register
class ModelSwarms(TensorFormulaMerge):
    name = "model_swarms"
    Params = ModelSwarmsParams
    uses_dev = True

    def plan(self, pool: list[ModelRef], ctx: MergeContext | None = None) -> dict[str, Any]:
        """``{"models", "coefficients", "dev_accuracy", "seed", "history"}``: the global best,
        ``sum_i c_i theta_i``, and the fitness of every evaluated particle per iteration."""
        from mocoflow.training.merging import combine_states, load_state

        p = self.params
        self.check_pool(pool)
        ctx = self.merge_context(ctx)
        evaluator = DevEvaluator(ctx, member_template(pool[0]), p.max_dev_items)
        states = [load_state(member_tensors(r)) for r in pool]
        memo: dict[tuple[float, ...], float] = {}

        def fitness(coefficients: list[float]) -> float:
            key = tuple(round(c, 8) for c in coefficients)
            if key not in memo:
                memo[key] = evaluator.accuracy(combine_states(states, coefficients))
            return memo[key]

        seed = p.seed if p.seed is not None else ctx.seed
        best, fit, history = swarm_search(len(pool), fitness, p, seed)
        coefficients = dict(zip([r.name for r in pool], best, strict=True))
        record(ctx, coefficients=coefficients, reliance=coefficient_reliance(coefficients), dev_accuracy=fit,
               iterations=len(history) - 1)
        log.info("model swarms: best dev accuracy %.3f with coefficients %s (%d evaluations)", fit, best,
                 evaluator.evaluations)
        log.debug("model swarms history: %s", json.dumps(history))
        return {"models": [r.name for r in pool], "coefficients": best, "dev_accuracy": fit, "seed": seed,
                "history": history}

    def formula(self, pool: list[ModelRef], plan: dict[str, Any]) -> tuple[list[ModelRef], Any]:
        from mocoflow.training.merging import linear

        coefficients = [float(c) for c in plan["coefficients"]]
        return [pool_member(pool, n) for n in plan["models"]], lambda _k, ts: linear(ts, coefficients)
