"""Hooks (being written)."""
