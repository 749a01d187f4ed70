"""The models a bridge serves and the parameters a clip is opened with.

One table serves three readers: the protocol decoder validates ``open_clip`` against it,
``describe_models`` sends it to hosts so they can build their UI from it (knobs, menus,
ranges), and ``docs/protocol.md`` explains it. Standard library only (Python 3.7+).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

INLINE_DTYPES = {"float16": 2, "float32": 4}

MODELS = (
    ("mobilenetv3", "Robust Video Matting, MobileNetV3 backbone: fast, the default"),
    ("resnet50", "Robust Video Matting, ResNet-50 backbone: slower, finer hair and edges"),
)

# Offered to hosts as a menu; zip, zips, dwaa and dwab also take a level ("dwaa:45"). The engine
# checks the value when the clip opens.
EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "htj2k")


@dataclass(frozen=True)
class Parameter:
    """One clip parameter: ``kind`` is choice, number, integer, boolean, path, pattern, text or outputs."""

    name: str
    kind: str
    default: Any
    help: str
    choices: Tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    nullable: bool = False

    def describe(self) -> Dict[str, Any]:
        """A JSON-ready description; numbers are in (minimum, maximum]."""
        described = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help,
                     "nullable": self.nullable}
        if self.choices:
            described["choices"] = list(self.choices)
        if self.minimum is not None or self.maximum is not None:
            described["range"] = [self.minimum, self.maximum]
        return described


CLIP_PARAMETERS = (
    Parameter("variant", "choice", "mobilenetv3", "model backbone", choices=tuple(name for name, _ in MODELS)),
    Parameter("checkpoint", "path", None, "official .pth checkpoint on the server; none = provisioned weights",
              nullable=True),
    Parameter("refiner", "choice", "deep_guided_filter", "upsampling refiner",
              choices=("deep_guided_filter", "fast_guided_filter")),
    Parameter("downsample_ratio", "number", None,
              "scale at which the network sees the frame; none = automatic (512 px on the long side)",
              minimum=0.0, maximum=1.0, nullable=True),
    Parameter("colour_space", "text", None, "OCIO colour space of the source plates; none = the engine's default",
              nullable=True),
    Parameter("ocio_config", "path", None, "OCIO config on the server (a file under a root, or ocio://...); "
              "none = $OCIO, else the built-in config", nullable=True),
    Parameter("to_model", "text", "srgb",
              "how plates reach the model's sRGB: srgb (plain curve) or display[:DISPLAY/VIEW] (an OCIO view)"),
    Parameter("precision", "choice", "float32", "network precision (float16 needs CUDA)",
              choices=("float32", "float16")),
    Parameter("source", "pattern", None,
              "source plate sequence (####, %04d); lets the server read frames itself and pre-roll",
              nullable=True),
    Parameter("first_frame", "integer", None, "first frame of the clip: its matte starts from a cold state",
              nullable=True),
    Parameter("outputs", "outputs", {"alpha": None, "foreground": None, "rgba": None},
              "plate patterns the server writes: alpha, foreground, rgba (premultiplied)"),
    Parameter("rgba_premultiplied", "boolean", True, "write rgba plates premultiplied (false: straight)"),
    Parameter("pixel_type", "choice", "half", "EXR pixel type of written plates", choices=("half", "float")),
    Parameter("compression", "text", "zip", "EXR compression of written plates (zip, dwaa:45, ...)",
              choices=EXR_COMPRESSIONS),
    Parameter("layer", "text", None, "EXR layer of the source plates to read (beauty, rgba); none = plain R, G, B",
              nullable=True),
    Parameter("inline_outputs", "boolean", False, "return alpha and foreground in the reply's buffers"),
    Parameter("inline_dtype", "choice", "float16", "dtype of inline outputs", choices=tuple(INLINE_DTYPES)),
)
