"""The newsroom console under /console (web/console/: one small module per screen)."""
