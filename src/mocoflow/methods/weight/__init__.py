"""Weight-level methods: merge parameters of same-architecture models into one model."""

from mocoflow.methods.weight import linear_merge  # noqa: F401
