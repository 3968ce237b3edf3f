"""Fault-injection helpers (a loopback HTTP proxy) and their tests."""
