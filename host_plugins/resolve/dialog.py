"""Ask the artist for the matte's settings: a UIManager dialog where the edition has one, else
Fusion's own ``AskUser`` prompt, else the defaults with a printed summary.

Choices come from the server's description of its parameters (``describe_models``) when it
answers, so the dialog offers what that bridge serves; the client unit's own table otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from .messages import Cancelled, UserError

if TYPE_CHECKING:
    from .fusion_api import Bmd, Comp, Fusion

DEFAULT_ADDRESS = "tcp://127.0.0.1:5701"
Say = Callable[[str], None]


@dataclass
class MatteSettings:
    """What one run of RVM Matte makes. ``frames`` is ``first-last`` (both included, file frames);
    ``downsample_ratio`` None is automatic; ``colour_space`` empty is the bridge's default."""

    address: str = DEFAULT_ADDRESS
    variant: str = "mobilenetv3"
    downsample_ratio: Optional[float] = None
    colour_space: str = ""
    frames: str = ""
    output_folder: str = ""
    handles: int = 0

    def clip_settings(self) -> Dict[str, Any]:
        settings: Dict[str, Any] = {"variant": self.variant, "downsample_ratio": self.downsample_ratio}
        if self.colour_space:
            settings["colour_space"] = self.colour_space
        return settings

    def summary(self) -> str:
        ratio = "auto" if self.downsample_ratio is None else f"{self.downsample_ratio:g}"
        return (f"server {self.address}, {self.variant}, downsample {ratio}, colour space "
                f"{self.colour_space or 'bridge default'}, frames {self.frames}, plates in {self.output_folder}")


def default_address() -> str:
    return os.environ.get("RVM_BRIDGE_ADDRESS") or DEFAULT_ADDRESS


def parse_ratio(text: str) -> Optional[float]:
    """``auto`` (or empty) is None; otherwise a number in (0, 1]. Raises UserError."""
    text = (text or "").strip().lower()
    if text in ("", "auto", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"RVM Matte: downsample ratio {text!r} is not a number (or auto).") from None
    if not 0 < value <= 1:
        raise UserError(f"RVM Matte: downsample ratio {value:g} must be above 0 and at most 1 (or auto).")
    return value


def choices_from(description: Optional[Dict[str, Any]], parameters: Sequence[Any]) -> Dict[str, List[str]]:
    """Variants and colour spaces to offer: the server's ``describe_models`` reply when there is
    one, else the client unit's parameter table (``CLIP_PARAMETERS``)."""
    variants: List[str] = []
    for parameter in (description or {}).get("parameters", []):
        if isinstance(parameter, dict) and parameter.get("name") == "variant":
            variants = [str(choice) for choice in parameter.get("choices", [])]
    if not variants:
        for parameter in parameters:
            if getattr(parameter, "name", "") == "variant":
                variants = list(parameter.choices)
    spaces = [str(space) for space in (description or {}).get("colour_spaces", [])]
    return {"variant": variants or ["mobilenetv3"], "colour_space": spaces}


def ask(defaults: MatteSettings, choices: Dict[str, List[str]], *, fusion: Optional[Fusion], comp: Optional[Comp],
        bmd: Optional[Bmd], ui_manager: bool, say: Say, title: str = "RVM Matte") -> MatteSettings:
    """The settings the artist chose. Raises Cancelled when they cancel, UserError for a value
    that cannot be used."""
    ui = getattr(fusion, "UIManager", None) if ui_manager else None
    if ui is not None and bmd is not None:
        return _with_ui_manager(defaults, choices, ui, bmd, title)
    prompt = getattr(comp, "AskUser", None)
    if prompt is not None:
        return _with_ask_user(defaults, choices, prompt, title)
    say(f"{title}: this edition has no dialog; using {defaults.summary()}")
    return defaults


def _with_ui_manager(defaults: MatteSettings, choices: Dict[str, List[str]], ui: Any, bmd: Bmd,
                     title: str) -> MatteSettings:
    dispatcher = bmd.UIDispatcher(ui)

    def row(label: str, control: Any) -> Any:
        return ui.HGroup([ui.Label({"Text": label, "Weight": 0.3}), control])

    ratio = "auto" if defaults.downsample_ratio is None else f"{defaults.downsample_ratio:g}"
    window = dispatcher.AddWindow({"ID": "RVMMatte", "WindowTitle": title, "Geometry": [200, 200, 460, 280]},
                                  ui.VGroup([
                                      row("Server", ui.LineEdit({"ID": "Server", "Text": defaults.address})),
                                      row("Model", ui.ComboBox({"ID": "Variant"})),
                                      row("Downsample ratio", ui.LineEdit({"ID": "Ratio", "Text": ratio})),
                                      row("Colour space", ui.ComboBox({"ID": "ColourSpace", "Editable": True})),
                                      row("Frames", ui.LineEdit({"ID": "Frames", "Text": defaults.frames})),
                                      row("Plates folder", ui.LineEdit({"ID": "Folder",
                                                                        "Text": defaults.output_folder})),
                                      ui.HGroup([ui.Button({"ID": "OK", "Text": "Make matte"}),
                                                 ui.Button({"ID": "Cancel", "Text": "Cancel"})]),
                                  ]))
    items = window.GetItems()
    items["Variant"].AddItems(_first(defaults.variant, choices["variant"]))
    items["ColourSpace"].AddItems(_first(defaults.colour_space, [""] + choices["colour_space"]))
    answer: Dict[str, bool] = {"ok": False}

    def close(ok: bool) -> Callable[[Any], None]:
        def handler(event: Any) -> None:
            answer["ok"] = ok
            dispatcher.ExitLoop()
        return handler

    window.On.OK.Clicked = close(True)
    window.On.Cancel.Clicked = close(False)
    window.On.RVMMatte.Close = close(False)
    window.Show()
    dispatcher.RunLoop()
    window.Hide()
    if not answer["ok"]:
        raise Cancelled("RVM Matte: cancelled; nothing was changed.")
    return replace(defaults, address=items["Server"].Text.strip() or defaults.address,
                   variant=items["Variant"].CurrentText, downsample_ratio=parse_ratio(items["Ratio"].Text),
                   colour_space=items["ColourSpace"].CurrentText.strip(), frames=items["Frames"].Text.strip(),
                   output_folder=items["Folder"].Text.strip() or defaults.output_folder)


def _with_ask_user(defaults: MatteSettings, choices: Dict[str, List[str]], prompt: Callable[..., Any],
                   title: str) -> MatteSettings:
    variants = _first(defaults.variant, choices["variant"])
    ratio = "auto" if defaults.downsample_ratio is None else f"{defaults.downsample_ratio:g}"
    controls = {
        1.0: {1.0: "Server", 2.0: "Text", "Default": defaults.address, "Lines": 1},
        2.0: {1.0: "Model", 2.0: "Dropdown", "Options": {float(i + 1): v for i, v in enumerate(variants)},
              "Default": 0.0},
        3.0: {1.0: "Downsample ratio", 2.0: "Text", "Default": ratio, "Lines": 1},
        4.0: {1.0: "Colour space", 2.0: "Text", "Default": defaults.colour_space, "Lines": 1},
        5.0: {1.0: "Frames", 2.0: "Text", "Default": defaults.frames, "Lines": 1},
        6.0: {1.0: "Plates folder", 2.0: "Text", "Default": defaults.output_folder, "Lines": 1},
    }
    answer = prompt(title, controls)
    if not answer:
        raise Cancelled("RVM Matte: cancelled; nothing was changed.")
    index = int(answer.get("Model", 0) or 0)
    return replace(defaults, address=str(answer.get("Server") or defaults.address).strip(),
                   variant=variants[index] if 0 <= index < len(variants) else defaults.variant,
                   downsample_ratio=parse_ratio(str(answer.get("Downsample ratio", ratio))),
                   colour_space=str(answer.get("Colour space") or "").strip(),
                   frames=str(answer.get("Frames") or defaults.frames).strip(),
                   output_folder=str(answer.get("Plates folder") or defaults.output_folder).strip())


def _first(value: str, options: List[str]) -> List[str]:
    """``options`` with ``value`` first (ComboBoxes show their first item)."""
    return [value] + [option for option in options if option != value] if value in options or value else options
