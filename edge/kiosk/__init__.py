"""The clinic kiosk: a web page over the live frame loop, run as a systemd service."""
