"""The models a bridge serves and the parameters a clip is opened with.

One table serves four readers: the protocol decoder validates ``open_clip`` against it,
``describe_models`` sends it to hosts so they build their UI from it (knobs, menus, ranges),
``rvm-bridge render`` generates its clip options from it, and ``docs/protocol.md`` explains it.
The names are the engine's (``rvm_engine.clip.ClipSettings``) and the command line's, one word
per idea. Standard library only (Python 3.7+).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

INLINE_DTYPES = {"float16": 2, "float32": 4}
OUTPUT_NAMES = ("alpha", "foreground", "rgba")

MODELS = (
    ("mobilenetv3", "Robust Video Matting, MobileNetV3 backbone: fast, the default"),
    ("resnet50", "Robust Video Matting, ResNet-50 backbone: slower, finer hair and edges"),
)


@dataclass(frozen=True)
class Parameter:
    """One clip parameter.

    ``kind`` is choice, number, integer, boolean, path, pattern, text or outputs. Numbers are in
    ``(minimum, maximum]``. ``command_line`` is False for settings only a host sets (inline
    replies) or that the render command spells its own way (the source, the outputs, the first
    frame). Choices left empty here are filled in by the server from its engine
    (``describe_models``: EXR compressions), so the list lives in one place.
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: Tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    nullable: bool = False
    command_line: bool = True
    aliases: Tuple[str, ...] = ()

    @property
    def option(self) -> str:
        """The command-line spelling: ``--downsample-ratio``."""
        return "--" + self.name.replace("_", "-")

    def describe(self, choices: Optional[Tuple[str, ...]] = None) -> Dict[str, Any]:
        """A JSON-ready description (``choices`` overrides the table's)."""
        described = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help,
                     "nullable": self.nullable}
        if choices or self.choices:
            described["choices"] = list(choices or self.choices)
        if self.minimum is not None or self.maximum is not None:
            described["range"] = [self.minimum, self.maximum]
        return described


CLIP_PARAMETERS = (
    Parameter("variant", "choice", "mobilenetv3", "model backbone", choices=tuple(name for name, _ in MODELS)),
    Parameter("checkpoint", "path", None, "an official rvm_*.pth to use instead of the provisioned weights",
              nullable=True),
    Parameter("refiner", "choice", "deep_guided_filter", "upsampling refiner",
              choices=("deep_guided_filter", "fast_guided_filter")),
    Parameter("downsample_ratio", "number", None,
              "scale at which the network sees the frame; auto (none) = the official table for the framing "
              "(long side 480 px portrait, 768 px full-body; 1080p: 0.25 / 0.4)",
              minimum=0.0, maximum=1.0, nullable=True),
    Parameter("framing", "choice", "portrait", "what the shot holds, for the automatic downsample ratio: portrait "
              "(head and shoulders) or full-body", choices=("portrait", "full-body")),
    Parameter("colour_space", "text", None, "OCIO colour space of the source plates; none = scene-linear "
              "Rec.709 for EXR and float frames, sRGB for 8/16-bit images", nullable=True, aliases=("--color-space",)),
    Parameter("ocio_config", "path", None, "OCIO config (a file, or ocio://...); none = $OCIO, else the built-in "
              "config", nullable=True),
    Parameter("to_model", "text", "srgb",
              "how plates reach the model's sRGB: srgb (plain curve) or display[:DISPLAY/VIEW] (an OCIO view)"),
    Parameter("precision", "choice", "float32", "network precision (float16 needs CUDA; bfloat16 runs on CPUs with "
              "bf16 instructions, float32 elsewhere)", choices=("float32", "float16", "bfloat16")),
    Parameter("backend", "choice", "auto", "what runs the network: torch, onnxruntime or openvino (CPU only, the same "
              "results within 1e-4); auto = the fastest installed (float32: onnxruntime, openvino, torch; bfloat16: "
              "openvino, torch; torch on CUDA)",
              choices=("auto", "torch", "onnxruntime", "openvino")),
    Parameter("layer", "text", None, "EXR layer of the source plates holding R, G, B (beauty, rgba); "
              "none = plain R, G, B", nullable=True),
    Parameter("source", "pattern", None,
              "source plate sequence (####, %04d, $F4, @@@@): lets the server read frames itself and pre-roll",
              nullable=True, command_line=False),
    Parameter("first_frame", "integer", None, "first frame of the clip: its matte starts from a cold state "
              "there, and a render in order from it is the reference", nullable=True, command_line=False),
    Parameter("outputs", "outputs", {"alpha": None, "foreground": None, "rgba": None},
              "plate patterns written: alpha, foreground, rgba", command_line=False),
    Parameter("rgba_premultiplied", "boolean", True, "write rgba plates premultiplied (no: straight)"),
    Parameter("pixel_type", "choice", "half", "EXR pixel type of written plates", choices=("half", "float")),
    Parameter("compression", "text", "zip", "EXR compression of written plates (zip, dwaa:45, ...)"),
    Parameter("inline_outputs", "boolean", False, "return alpha and foreground in the reply's buffers",
              command_line=False),
    Parameter("inline_dtype", "choice", "float16", "dtype of inline outputs", choices=tuple(INLINE_DTYPES),
              command_line=False),
)
PARAMETERS_BY_NAME = {parameter.name: parameter for parameter in CLIP_PARAMETERS}

# ``try_ratios``: the ratios tried when none are given (the official table's 4K, 1080p, 1080p
# full-body and 720p full-body figures), the frames run before the judged stretch, and the clip
# settings a sweep takes (the rest are about plates it does not write).
TRY_RATIOS = (0.125, 0.25, 0.4, 0.6)
TRY_RATIOS_PREROLL = 8
TRY_RATIOS_MAX = 12
TRY_RATIOS_MAX_FRAMES = 100  # judged frames, and pre-roll frames: all are held in memory
TRY_RATIOS_SETTINGS = ("variant", "checkpoint", "refiner", "framing", "colour_space", "ocio_config", "to_model",
                       "precision", "layer")
