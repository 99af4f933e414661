"""API-level methods: choose which model answers (routing, cascades)."""

from mocoflow.methods.api import cascade  # noqa: F401
