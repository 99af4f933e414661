"""Random router (lower bound): each test item goes to a pool model drawn uniformly at random.

The draw for an item depends only on (seed, item id), so it is reproducible whatever the item order and
differs between seeds. Costs are those of the one shared generation used.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mocoflow.methods.base import Method, Need, RunContext, prediction, register
from mocoflow.methods.common import reliance_from_counts, reused_costs


@dataclass(frozen=True)
class RandomRouterParams:
    """seed: routing seed (None = the study's decoding seed)."""

    seed: int | None = None


def draw(seed: int, item_id: str, n: int) -> int:
    digest = hashlib.sha256(f"random_router\0{seed}\0{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


@register
class RandomRouter(Method):
    name = "random_router"
    level = "api"
    stochastic = True
    needs = frozenset({Need.TEST_GENERATIONS})
    Params = RandomRouterParams

    def run(self, ctx: RunContext) -> list[dict[str, Any]]:
        seed = ctx.seed if self.params.seed is None else self.params.seed
        out = []
        for item in ctx.items["test"]:
            ref = ctx.pool[draw(seed, item.id, len(ctx.pool))]
            rec = ctx.gen(ref.name, "test", item.id)
            out.append(prediction(item.id, rec["output"], answered_by=ref.name, reference="lower_bound",
                                  **reused_costs([rec])))
        ctx.decide(kind="router", reliance=reliance_from_counts([r.name for r in ctx.pool],
                                                                [p["answered_by"] for p in out]))
        return out
