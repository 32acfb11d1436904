"""The deployment files: the image, compose, mosquitto's accounts, the systemd unit."""
