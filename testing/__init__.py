"""Shared test helpers: plain functions, classes and constants the test suites and their fixtures use.

No test imports conftest.py or another test file (mailadmin/tests/test_static_scan.py checks it):
a helper more than one file needs lives here, grouped by topic, and the conftest files keep only
fixtures and hooks, importing what they need from this package.
"""
