"""The HTTP API (FastAPI): maps requests to service calls and domain errors to the contract."""
