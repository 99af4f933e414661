"""Weight-level methods: merge parameters of same-architecture models into one model."""

from mocoflow.methods.weight import (  # noqa: F401
    dare,
    expo,
    greedy_soup,
    linear_merge,
    lorahub,
    model_swarms,
    ties,
)
