"""`python -m mfa_pipeline.demo`: serve the reference login app next to a running service.

`mfa-pipeline up --demo` starts it this way; run it by hand to point it at any deployment.
The API key comes from `MFA_DEMO_API_KEY` rather than an option, so it stays out of `ps`.
"""

from __future__ import annotations

import click
import uvicorn

from mfa_pipeline.demo.app import DemoConfig, create_app


@click.command()
@click.option("--api-url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
@click.option("--api-key", envvar="MFA_DEMO_API_KEY", required=True, show_envvar=True)
def main(api_url: str, host: str, port: int, api_key: str) -> None:
    """Serve the demo login app, talking to the MFA service at API_URL."""
    app = create_app(DemoConfig(api_url=api_url, api_key=api_key))
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
