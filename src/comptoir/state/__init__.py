"""The store behind state that must hold across worker processes: counters, sessions, history."""

from comptoir.state.store import StateStore, open_store

__all__ = ["StateStore", "open_store"]
