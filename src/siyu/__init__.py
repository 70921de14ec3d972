"""Siyu (私域): an open-source SCRM for companies that run their customer relationships in WeCom."""

__version__ = "0.1.0"
