"""Channels: one account or endpoint each (channels/<id>.yaml), and their adapters."""
