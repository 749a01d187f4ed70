"""rvm-bridge engine: the Robust Video Matting network, weights, sessions, plates and colour."""

import os

# Reading, the network and writing run as overlapping threads. With OpenMP's default active
# waiting, torch's idle worker threads spin and starve those stages on a small CPU (measured in
# bench/bench_render.py). Only takes effect when torch has not been imported yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
