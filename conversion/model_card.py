"""Model cards: the Hub `README.md` of a converted folder, rendered from a Jinja template in `model_cards/`.

A task picks its template with `DeepMindTask.model_card` (a file name in `model_cards/`; tasks without one get
`deepmind.md`, a generic card) and adds its own template values through `DeepMindTask.metadata`. The
converter supplies, for every task:

    task, summary, head                  the `--task` name, its one-line summary, the perceiver_hf head class
    official_url, official_file          where DeepMind publishes the checkpoint
    official_configuration               True when converted with the task's official architecture
    source, checkpoint_sha256            the converted file (URL, or file name for a local file) and its SHA-256
    num_parameters                       parameter count of the checkpoint
    model_id                             the Hub repository (`--push-to-hub`) or else the output folder's name
    command                              the conversion command, as a user would type it
    perceiver_hf_version
    config, deepmind_config              the converted `PerceiverIOConfig` and DeepMind's constructor arguments

Templates begin with the card's YAML metadata between `---` lines. Undefined names are errors (a typo must not
silently render as nothing), and the rendered card must parse as a Hub model card with `license` and
`library_name` set, so a broken template stops the conversion before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from huggingface_hub import ModelCard

MODEL_CARDS_DIR = Path(__file__).resolve().parents[1] / "model_cards"
DEFAULT_TEMPLATE = "deepmind.md"
REQUIRED_METADATA = ("license", "library_name")


def render_model_card(template: str | None, context: dict[str, Any], templates_dir: Path = MODEL_CARDS_DIR) -> str:
    """The model card text of `template` (a file in `templates_dir`) filled with `context`."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    name = template or DEFAULT_TEMPLATE
    try:
        text = environment.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise ValueError(f"Model card template {name!r} not found in {templates_dir}.") from None
    except jinja2.TemplateError as error:
        raise ValueError(f"Model card template {name!r} does not render: {error}.") from None
    try:
        metadata = ModelCard(text, ignore_metadata_errors=False).data.to_dict()
    except Exception as error:  # YAML and model-index errors come in several types
        raise ValueError(f"Model card template {name!r} renders invalid Hub metadata: {error}") from None
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if missing:
        raise ValueError(f"Model card template {name!r} renders no {', '.join(missing)} in its metadata.")
    return text
