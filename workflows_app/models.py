"""Multi-step workflows per entity (later issues)."""
