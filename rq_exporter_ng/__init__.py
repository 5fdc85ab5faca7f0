"""Prometheus exporter for Python RQ, reading RQ's state straight from Redis."""

__version__ = "4.0.0.dev0"
