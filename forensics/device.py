"""What runs where: the --device flag, and the 'auto' rules that turn the fast path on for CUDA only.

One place for the rule "auto means bf16 autocast, channels_last, torch.compile and fused Adam on CUDA, plain
fp32 eager on the CPU", so that training, validation, testing and the benchmarks never disagree about it.
"""
import contextlib

import torch


def resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def resolve_precision(precision, device):
    """'auto' -> bf16 on CUDA, fp32 elsewhere; 'bf16' and 'fp32' stay."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def resolve_switch(value, device):
    """'auto' -> on for CUDA only; 'on'/'off' (or a bool already resolved) -> bool."""
    if isinstance(value, bool):
        return value
    return device.type == "cuda" if value == "auto" else value == "on"


def autocast(device, precision):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
