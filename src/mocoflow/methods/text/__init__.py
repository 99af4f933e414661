"""Text-level methods: models exchange generated text."""

from mocoflow.methods.text import majority_vote  # noqa: F401
