"""Prometheus metrics, the /metrics, /health and /ready server, and outbound event sinks."""
