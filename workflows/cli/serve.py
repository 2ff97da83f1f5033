"""``submit.py serve``: run the local webhook receiver (click command, mounted on the submit group)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

import click

from config.pipeline import ConfigError, load_pipeline_config
from workflows.webhooks.receiver import MAX_BODY_BYTES, ReceiverSettings, make_server, run_locally
from workflows.webhooks.trigger_filter import FilterError, push_filter


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0 picks a free one).")
@click.option("--secret-env", default="PROMPTCI_WEBHOOK_SECRET", show_default=True,
              help="Name of the environment variable holding the webhook secret "
                   "(the secret itself is never a flag).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Pipeline config (default config/pipeline.yaml); gives each artifact type's directory.")
@click.option("--branch", default=None, help="The watched branch (default: triggers.branch from the config).")
@click.option("--target-environment", default=None,
              help="Environment runs promote to (default: the first of promotion.chain).")
@click.option("--dry-run/--no-dry-run", default=False, show_default=True,
              help="Start runs with dry-run=true (evaluate, never promote).")
@click.option("--max-body-bytes", type=click.IntRange(1), default=MAX_BODY_BYTES, show_default=True,
              help="Larger requests get 413.")
def serve(host: str, port: int, secret_env: str, config_path: Path | None, branch: str | None,
          target_environment: str | None, dry_run: bool, max_body_bytes: int) -> None:
    """Receive GitHub/GitLab/Gitea push webhooks and start local pipeline runs.

    POST webhooks to /webhook. Signatures are verified with the secret from
    --secret-env; pushes to the watched branch that touch an artifact directory
    queue one run per artifact type, one at a time per repository.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = os.environ.get(secret_env, "")
    if not secret:
        raise click.UsageError(f"environment variable {secret_env} is not set or empty; "
                               "export the webhook secret there")
    try:
        config = load_pipeline_config(config_path)
    except ConfigError as exc:
        for p in exc.problems:
            click.echo(p.format(), err=True)
        sys.exit(1)
    branch = branch or config.triggers.branch
    try:
        for directory in config.artifact_dirs.values():
            push_filter(directory, branch)
    except FilterError as exc:
        raise click.UsageError(str(exc)) from exc
    env = target_environment or config.promotion.chain[0]
    if env not in config.promotion.chain:
        raise click.UsageError(f"--target-environment {env!r} is not in promotion.chain "
                               f"({', '.join(config.promotion.chain)})")
    settings = ReceiverSettings(secret=secret.encode(), artifact_dirs=dict(config.artifact_dirs),
                                branch=branch, target_environment=env, dry_run=dry_run,
                                max_body_bytes=max_body_bytes)
    start = functools.partial(run_locally, config_path=str(config_path) if config_path else None)
    server = make_server(settings, host=host, port=port, start_run=start)
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"promptci receiver listening on http://{bound_host!s}:{bound_port}/webhook "
               f"(branch {branch}, target {env})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("shutting down; waiting for queued runs", err=True)
    finally:
        server.close()
