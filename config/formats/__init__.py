"""Prompt formats promptci reads besides its own: GitHub Models, Prompty and Dotprompt.

Each reader turns a file into a native :class:`config.artifacts.PromptArtifact`
bound to a :class:`config.artifacts.TemplateSource`: the format's own renderer
(gh-models' placeholder rule, Prompty's Jinja2/Mustache through the ``prompty``
package, Dotprompt's Handlebars through ``dotpromptz``) and the variables its
template uses. Lint, validate, plan, eval and promote then treat it like any
other prompt.
"""

from __future__ import annotations

NATIVE_SUFFIXES = (".yaml", ".yml", ".json")
PROMPTY_SUFFIX = ".prompty"
DOTPROMPT_SUFFIX = ".prompt"

SUPPORTED = ("promptci YAML/JSON (.yaml, .yml, .json), GitHub Models (.prompt.yml), "
             "Prompty (.prompty), Dotprompt (.prompt)")


def format_of(name: str) -> str | None:
    """Return the reader for a file name: ``native`` (YAML/JSON, GitHub Models detected by content),
    ``prompty``, ``dotprompt``, ``dotprompt-partial`` (``_name.prompt``, read through the prompts
    that include it), or None for a format promptci does not read.
    """
    lower = name.lower()
    if lower.endswith(NATIVE_SUFFIXES):
        return "native"
    if lower.endswith(PROMPTY_SUFFIX):
        return "prompty"
    if lower.endswith(DOTPROMPT_SUFFIX):
        return "dotprompt-partial" if name.startswith("_") else "dotprompt"
    return None
