"""Errors the engine raises, named for what went wrong.

Every message says which thing was wrong (a file, a frame, an argument) and what to do
about it, so a command line or a host can show it to an artist unchanged.
"""

from __future__ import annotations


class RVMError(Exception):
    """Base of every error the engine raises on purpose."""


class WeightsError(RVMError):
    """Model weights are missing, corrupt or do not fit the chosen variant."""


class FrameInputError(RVMError, ValueError):
    """A frame handed to the network cannot be matted (shape, channels, values)."""


class PlateError(RVMError):
    """A plate on disk cannot be read or written, or a sequence is incomplete."""


class ColourError(RVMError):
    """An unknown colour space or a colour configuration that cannot be used."""
