"""natsd: a security-first, multi-process NATS server in Python."""

__version__ = "0.1.0"
