"""Load tests and benchmark drivers."""
