"""Fake provider servers: each imitates the real API closely enough to test an adapter."""
