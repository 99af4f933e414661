"""Task data: sources, the canonical item record and prompt templates."""
