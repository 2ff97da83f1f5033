"""The live providers: model catalog entries mapped to promptfoo provider ids.

API keys are never written into a config: promptfoo reads them from the
environment itself; we only check they are present so the error is clear.
A ``local`` catalog model (the bundled small model) is an OpenAI-compatible
endpoint like vLLM: the same ``openai:chat`` provider, with the base URL of the
server the run started (``$PROMPTCI_LOCAL_BASE_URL``) and no key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from config.artifacts import ModelParameters
from config.catalog import ModelEntry
from config.settings import get_settings, lookup
from steps.providers import ProviderConfigError

KEY_ENV = {"openai": ("OPENAI_API_KEY",), "anthropic": ("ANTHROPIC_API_KEY",),
           "google": ("GOOGLE_API_KEY", "GEMINI_API_KEY")}
HOSTS = {"openai": ["api.openai.com"], "anthropic": ["api.anthropic.com"],
         "google": [".googleapis.com"], "ollama": ["localhost", "127.0.0.1"],
         "local": ["127.0.0.1"]}
VERTEX_ENV = "PROMPTCI_GOOGLE_VERTEX"
LOCAL_URL_ENV = "PROMPTCI_LOCAL_BASE_URL"
LOCAL_UNSTARTED = "http://127.0.0.1:0/v1"  # until a server runs: never reachable, never in a cache key


def _options(entry: ModelEntry, params: ModelParameters) -> dict[str, Any]:
    p = params.model_dump(exclude_none=True)
    out: dict[str, Any] = {}
    if entry.provider in ("openai", "openai-compatible", "local"):
        out = {k: v for k, v in p.items() if k != "response_format"}
        if "response_format" in p:
            out["response_format"] = {"type": p["response_format"]}
    elif entry.provider == "anthropic":
        out = {k: v for k, v in p.items() if k in ("temperature", "max_tokens", "top_p")}
        if "stop" in p:
            out["stop_sequences"] = p["stop"]
    elif entry.provider == "google":
        gen = {"temperature": p.get("temperature"), "maxOutputTokens": p.get("max_tokens"),
               "topP": p.get("top_p"), "stopSequences": p.get("stop")}
        out = {"generationConfig": {k: v for k, v in gen.items() if v is not None}}
    elif entry.provider == "ollama":
        out = {k: v for k, v in p.items() if k in ("temperature", "top_p", "seed", "stop")}
        if "max_tokens" in p:
            out["num_predict"] = p["max_tokens"]
    return out


def live_provider(canonical: str, entry: ModelEntry, params: ModelParameters,
                  env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return the promptfoo provider entry (``{"id", "config", "label"}``) for a catalog model.

    Raises ProviderConfigError when a needed key or base URL is missing from the environment.
    """
    env = os.environ if env is None else env
    model = entry.provider_model or canonical
    if entry.kind != "chat":
        raise ProviderConfigError(f"model '{canonical}' is an {entry.kind} model; "
                                  "a prompt needs a chat model")
    for names in [KEY_ENV.get(entry.provider, ())]:
        if names and not any(env.get(n) for n in names):
            raise ProviderConfigError(f"the live {entry.provider} provider needs {' or '.join(names)} "
                                      "in the environment (never in a config or parameter)")
    config = _options(entry, params)
    if entry.provider == "openai":
        pid = f"openai:chat:{model}"
    elif entry.provider == "anthropic":
        pid = f"anthropic:messages:{model}"
    elif entry.provider == "google":
        pid = f"vertex:{model}" if get_settings(env).google_vertex else f"google:{model}"
    elif entry.provider == "ollama":
        pid = f"ollama:chat:{model}"
    elif entry.provider == "local":  # the bundled server: started by the run (or the branch), no key
        pid = f"openai:chat:{model}"
        config["apiBaseUrl"] = lookup(entry.api_base_env or LOCAL_URL_ENV, env) or LOCAL_UNSTARTED
        config["apiKeyRequired"] = False
        # A dead local server is a transient failure of the step (exit 75, retried once the server is
        # back), not something to wait out inside promptfoo, whose backoff starts at 5 s per try.
        config["maxRetries"] = 0
    else:  # openai-compatible (vLLM...): same wire protocol, base URL from the environment
        base_env = entry.api_base_env or "OPENAI_BASE_URL"
        base = lookup(base_env, env)
        if not base:
            raise ProviderConfigError(f"model '{canonical}' is served from ${base_env}, which is not set")
        pid = f"openai:chat:{model}"
        config["apiBaseUrl"] = base
        config["apiKeyEnvar"] = "OPENAI_COMPATIBLE_API_KEY"
    return {"id": pid, "config": config, "label": canonical}


def provider_hosts(entry: ModelEntry, env: Mapping[str, str] | None = None) -> list[str]:
    """Return the hosts the live provider talks to (they bypass the dead telemetry proxy)."""
    env = os.environ if env is None else env
    hosts = list(HOSTS.get(entry.provider, []))
    base = lookup(entry.api_base_env, env) if entry.api_base_env else None
    if base and urlparse(base).hostname:
        hosts.append(str(urlparse(base).hostname))
    if entry.provider == "ollama" and env.get("OLLAMA_BASE_URL"):
        hosts.append(str(urlparse(env["OLLAMA_BASE_URL"]).hostname))
    return hosts
