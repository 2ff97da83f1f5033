"""``promptci serve``: run the local webhook receiver as a CI for one checkout (click command)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from config.pipeline import ConfigError, load_pipeline_config
from config.settings import get_settings
from steps.exit_codes import ExitCode
from workflows.cli.options import config_option, env_option, fail, repo_root_option
from workflows.webhooks.auth import WebhookSecrets
from workflows.webhooks.local_ci import LocalCI, run_with_local_runner
from workflows.webhooks.receiver import MAX_BODY_BYTES, REQUEST_DEADLINE, ReceiverSettings, make_server
from workflows.webhooks.trigger_filter import FilterError, push_filter


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0 picks a free one).")
@repo_root_option("the checkout to run in (a dedicated clone: runs check out each pushed revision there; "
                  "default: current directory); payload clone URLs are never used")
@click.option("--remote", default="origin", show_default=True, help="The checkout's remote to fetch pushes from.")
@config_option
@click.option("--branch", default=None, help="The watched branch (default: triggers.branch from the config).")
@env_option("environment runs promote to (default: the first of promotion.chain)")
@click.option("--dry-run/--no-dry-run", default=False, show_default=True,
              help="Start runs with dry-run=true (evaluate, never promote).")
@click.option("--queue-size", type=click.IntRange(1), default=8, show_default=True,
              help="Runs queued or running at once (pushes to one branch merge); more get 429.")
@click.option("--request-deadline", type=click.FloatRange(0.1), default=REQUEST_DEADLINE, show_default=True,
              help="Seconds a client has to send its whole request.")
@click.option("--max-body-bytes", type=click.IntRange(1), default=MAX_BODY_BYTES, show_default=True,
              help="Larger requests get 413 (bodies over 1 MiB are still run; their file lists are not read).")
def serve(host: str, port: int, repo_root: Path, remote: str, config_path: Path | None, branch: str | None,
          env: str | None, dry_run: bool, queue_size: int, request_deadline: float,
          max_body_bytes: int) -> None:
    """Receive GitHub/GitLab/Gitea/Bitbucket Cloud push webhooks and run the pipelines on one checkout.

    POST webhooks to /webhook. Each host has its own secret, read from the environment:
    PROMPTCI_WEBHOOK_SECRET_GITHUB, _GITLAB, _GITEA, _BITBUCKET (a host without one is refused).
    Pushes to the watched branch that may touch an artifact directory are fetched from --remote,
    checked out in --repo-root and run, one at a time; pushes arriving meanwhile merge into one run.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env_settings = get_settings()
    secrets = WebhookSecrets.from_settings(env_settings)
    problems = secrets.problems()
    if problems:
        if env_settings.webhook_secret is not None:
            problems.append("PROMPTCI_WEBHOOK_SECRET (one secret for every host) is no longer read")
        raise click.UsageError("; ".join(problems))
    try:
        config = load_pipeline_config(config_path)
    except ConfigError as exc:
        fail((p.format() for p in exc.problems), ExitCode.USAGE)
    branch = branch or config.triggers.branch
    try:
        for directory in config.artifact_dirs.values():
            push_filter(directory, branch)
    except FilterError as exc:
        raise click.UsageError(str(exc)) from exc
    env = env or config.promotion.chain[0]
    if env not in config.promotion.chain:
        raise click.UsageError(f"--env {env!r} is not in promotion.chain "
                               f"({', '.join(config.promotion.chain)})")
    root = repo_root.resolve()
    settings = ReceiverSettings(secrets=secrets, artifact_dirs=dict(config.artifact_dirs), branch=branch,
                                request_deadline=request_deadline, max_body_bytes=max_body_bytes)
    ci = LocalCI(root, config.artifact_dirs,
                 run_with_local_runner(root, str(config_path.resolve()) if config_path else None),
                 remote=remote, target_environment=env, dry_run=dry_run)
    server = make_server(settings, ci, host=host, port=port, queue_capacity=queue_size)
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"promptci receiver listening on http://{bound_host!s}:{bound_port}/webhook "
               f"(hosts {', '.join(secrets.enabled())}; branch {branch} of {remote}; target {env})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("shutting down; waiting for queued runs", err=True)
    finally:
        server.close()
