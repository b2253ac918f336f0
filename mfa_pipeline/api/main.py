"""The ASGI entry point for uvicorn: settings from the environment, then the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.api.app import create_app
from mfa_pipeline.api.app_config import ApiConfig
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.config import load_settings
from mfa_pipeline.logs import configure_logging
from mfa_pipeline.tracing import configure_tracing

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mfa_pipeline.bootstrap import Container


def app_for(container: Container) -> FastAPI:
    """The API on a built graph (the entry point below, and tests with a graph of their own)."""
    return create_app(
        container.services,
        clock=container.ports.clock,
        metrics=container.ports.metrics,
        config=ApiConfig.from_settings(container.settings, container.api_keys),
    )


def app_from_environment() -> FastAPI:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, env=settings.env.value)
    configure_tracing("mfa-api")  # before the container: its engine is created instrumented
    return app_for(bootstrap(settings))
