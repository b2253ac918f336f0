"""The `mfa-pipeline` command: running the service, its roles, the device simulator."""

from mfa_pipeline.cli.commands import main

__all__ = ["main"]
