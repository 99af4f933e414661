"""API-level methods: choose which model answers (routing, cascades), or which model writes the next
stretch of text (nudging, switch generation, mentor collaboration, Co-LLM)."""

from mocoflow.methods.api import (  # noqa: F401
    cascade,
    co_llm,
    graph_router,
    mentor_collab,
    nudging,
    oracle_router,
    prompt_routing,
    random_router,
    switch_generation,
    trained_router,
)
