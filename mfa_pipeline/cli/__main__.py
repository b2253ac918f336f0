"""`python -m mfa_pipeline.cli`: the `mfa-pipeline` command without its script."""

from mfa_pipeline.cli.commands import main

main()
