"""The script's scene-linear working space, as the bridge's OCIO names it.

Read from the root's colour-management knobs (``colorManagement``: ``Nuke`` or ``OCIO``;
``OCIO_config``; ``customOCIOConfigPath``; ``workingSpaceLUT``, Project Settings > Color) and
``$OCIO``, which overrides the config when set. The node's internal Write and Reads work raw, so
plates travel in the working space and come back in it.
"""

import os
from typing import Mapping, NamedTuple, Optional

WORKING_SPACE = "working space"  # the input colour space knob's default entry
# Nuke's own (nuke-default) linear is scene-linear Rec.709: the bridge's default for EXR plates.
_NUKE_LINEAR = ("linear", "scene_linear", "default (linear)", "default")


class WorkingSpace(NamedTuple):
    colour_space: Optional[str]   # None: the bridge's default (scene-linear Rec.709)
    ocio_config: Optional[str]    # None: the bridge's $OCIO or its built-in config
    description: str


def _value(root, name: str) -> str:
    knob = root.knob(name)
    return str(knob.value()) if knob is not None else ""


def working_space(root, environ: Mapping[str, str] = os.environ) -> WorkingSpace:
    """The working space of the script whose root is ``root``."""
    lut = _value(root, "workingSpaceLUT") or "linear"
    config = _value(root, "OCIO_config")
    managed = _value(root, "colorManagement") == "OCIO"
    custom = environ.get("OCIO") or (_value(root, "customOCIOConfigPath") if config == "custom" else "")
    if custom:
        return WorkingSpace(lut, custom, f"{lut} of the OCIO config {custom}")
    if not managed or config in ("", "nuke-default"):
        if lut.lower() in _NUKE_LINEAR:
            return WorkingSpace(None, None, "Nuke's linear (scene-linear Rec.709)")
        return WorkingSpace(lut, None, lut)
    if config.startswith("fn-nuke_"):
        # Nuke's bundled CG/studio configs are OCIO's built-in ones under Foundry's prefix.
        builtin = "ocio://" + config[len("fn-nuke_"):]
        return WorkingSpace(lut, builtin, f"{lut} of {builtin}")
    return WorkingSpace(lut, None, f"{lut} (config {config}: the bridge uses its own $OCIO)")
