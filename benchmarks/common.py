"""What every benchmark prints first: the machine it ran on."""

import os
import platform

import torch


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}; {os.cpu_count()} cores, torch {torch.__version__} using {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}"
    )
