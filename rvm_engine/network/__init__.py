"""The blocks of the RVM network, one module per block of the paper's figure.

Every block accepts one frame ``[B, C, H, W]`` or a time series ``[B, T, C, H, W]``;
only the recurrent decoder cares about time, the others fold T into the batch.
"""
