"""The ASGI entry point for uvicorn: settings from the environment, then the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfa_pipeline.api.app import create_app
from mfa_pipeline.bootstrap import bootstrap
from mfa_pipeline.config import load_settings
from mfa_pipeline.logs import configure_logging
from mfa_pipeline.tracing import configure_tracing

if TYPE_CHECKING:
    from fastapi import FastAPI


def app_from_environment() -> FastAPI:
    settings = load_settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format, env=settings.env.value)
    configure_tracing("mfa-api")  # before the container: its engine is created instrumented
    return create_app(bootstrap(settings))
