"""Text-level methods: models exchange generated text."""

from mocoflow.methods.text import (  # noqa: F401
    bbmas,
    debate,
    feedback,
    heterogeneous_swarms,
    knowledge_card,
    llm_blender,
    majority_vote,
    slm_mux,
    structured_interaction,
)
