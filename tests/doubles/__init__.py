"""Test doubles of the ports: in-memory twins kept honest by the shared conformance suites."""
