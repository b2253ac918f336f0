"""Routers: request → service call → response."""
