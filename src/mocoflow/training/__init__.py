"""Training and merging primitives used by model builders and weight-level methods."""
