"""Delivery: playback tokens, the token-checked HLS proxy, and the playback API."""
