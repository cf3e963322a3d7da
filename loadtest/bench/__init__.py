"""Benchmark drivers behind ``garden bench``; each returns a JSON-ready dict."""
