"""The machine a benchmark ran on, printed with every figure: these machines vary between
sessions (AVX-512 + BF16 parts and AVX2-only parts), so figures are compared as ratios."""

from __future__ import annotations

import os
import platform


def describe_machine() -> str:
    """One line: CPU model, the vector instructions that matter for the network, cores, GPU."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    vector = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if name in flags]
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"machine: {model} ({', '.join(vector) or 'no AVX2'}), {os.cpu_count()} cores, {gpu}"
