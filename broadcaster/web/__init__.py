"""The HTTP side: health, metrics, the trigger API and alert state (contract section 8)."""
