"""Helpers shared by the Python test suites (tests/deploy, tests/container, ...).

Each suite's conftest.py puts tests/ on sys.path, so a test imports `from pyhelpers import docs`.
"""
