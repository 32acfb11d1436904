"""Each channel adapter against a fake provider over real sockets (tests/fakes/)."""
