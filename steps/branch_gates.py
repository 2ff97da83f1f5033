"""Which artifact's thresholds judge an eval branch: the one rule eval and promote share.

Kept apart from steps/model_refs.py (which resolves ``config:<id>`` references and needs the
artifact models): promote only needs this rule, and importing the models cost its start-up.
"""

from __future__ import annotations


class RefError(Exception):
    """A ``config:<id>`` reference that names no loadable model-config."""


def split_dataset(dataset: str) -> tuple[str, str]:
    """Return (prompt id, dataset) of a model-config item's ``<prompt-id>/<dataset>``."""
    prompt_id, sep, name = dataset.partition("/")
    if not sep:
        raise RefError(f"a model-config is evaluated through its prompts' datasets ('<prompt-id>/<dataset>'), "
                       f"got '{dataset}'")
    return prompt_id, name


def gated_by(artifact_type: str, artifact_id: str, dataset: str) -> str:
    """Return the id whose thresholds judge the branch ``artifact_id``/``dataset``.

    A model-config is judged by the gates of the prompt that uses it (its dataset is
    ``<prompt-id>/<dataset>``); every other artifact by its own. Eval and promote both call
    this, so a branch is never passed under one set of thresholds and judged under another.
    """
    if artifact_type == "model-config":
        return split_dataset(dataset)[0]
    return artifact_id
