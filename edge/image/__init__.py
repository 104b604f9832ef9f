"""Pixels in and out: the one preprocessing, the quality gates and the drawn overlay."""
