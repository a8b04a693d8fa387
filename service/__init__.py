"""The affectstream service: CLI, settings, sessions, inference scheduling, FastAPI app."""
