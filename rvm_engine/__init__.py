"""rvm-bridge engine: the Robust Video Matting network, weights, sessions, plates and colour."""

__version__ = "0.1.0"
