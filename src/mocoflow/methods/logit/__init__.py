"""Logit-level methods: combine next-token distributions of same-tokenizer models."""

from mocoflow.methods.logit import fusion  # noqa: F401
