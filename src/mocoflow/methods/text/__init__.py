"""Text-level methods: models exchange generated text."""

from mocoflow.methods.text import (  # noqa: F401
    agglm,
    bbmas,
    debate,
    feedback,
    heterogeneous_swarms,
    knowledge_card,
    llm_blender,
    majority_vote,
    multiagent_finetuning,
    slm_mux,
    sparta,
    structured_interaction,
)
