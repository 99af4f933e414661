"""Logit-level methods: combine next-token distributions of same-tokenizer models."""

from mocoflow.methods.logit import contrastive, contrastive_decoding, fusion, proxy_tuning  # noqa: F401
