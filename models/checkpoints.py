"""Checkpoints in the released format: one file per part, {'net': state_dict, 'optim': optimizer state}.

Everything is read with torch.load(weights_only=True): a file that would need to run code is refused. Writing
is forensics.training.save_part's (an atomic write of part_state), so that models never imports forensics.
"""
import pickle
import re
import zipfile
from pathlib import Path

import torch

RUN_PARTS = ("tail", "hq_head", "lq_head")  # released folders hold tail and head (the LQ head) only


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def checkpoint_path(directory, part, epoch):
    return Path(directory) / f"{part}_{int(epoch):06d}.tar"


def epochs_of(directory, part):
    """The epochs for which directory holds part_NNNNNN.tar, sorted."""
    stems = (p.stem.rsplit("_", 1)[1] for p in Path(directory).glob(f"{part}_*.tar"))
    return sorted(int(s) for s in stems if s.isdigit())


def read_checkpoint(path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: the file holds Python objects that could run code, not only "
                              f"tensors ({_refusal(e)}). Re-save it as a plain state dict.") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({e}); copy or download it again") from None


def _refusal(error):
    """What PyTorch's weights-only loader refused, without its advice to load the file with weights_only=False:
    that is what this refusal protects against."""
    found = re.search(r"(unsupported GLOBAL \S+|Unsupported global: GLOBAL \S+|Unsupported operand \S+)", str(error),
                      re.IGNORECASE)
    return found.group(1).rstrip(".") if found else "objects other than tensors"


def strip_prefixes(state):
    """Drop the 'module.' left by DataParallel/DDP and the '_orig_mod.' left by torch.compile."""
    return {re.sub(r"^(module\.|_orig_mod\.)+", "", k): v for k, v in state.items()}


def read_state_dict(path):
    """A state dict from a bare state dict or a {'net'|'state_dict'|'model': ...} wrapper."""
    return _state_dict_of(read_checkpoint(path), path)


def _state_dict_of(obj, path):
    if isinstance(obj, dict):
        for key in ("net", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: no state dict of tensors found in this file")
    return strip_prefixes(obj)


def load_part(module, path):
    """Load one part with strict checking (a mismatch says it is another architecture);
    returns the optimizer state saved beside it, or None."""
    obj = read_checkpoint(path)
    state = _state_dict_of(obj, path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        detail = (f"missing {len(missing)} tensors (first: {missing[0]})" if missing else "") + \
                 ("; " if missing and unexpected else "") + \
                 (f"{len(unexpected)} unexpected (first: {unexpected[0]})" if unexpected else "")
        raise CheckpointError(f"{path}: checkpoint of another architecture for {type(module).__name__}: {detail}")
    bad = sorted(k for k in own if tuple(own[k].shape) != tuple(state[k].shape))
    if bad:
        raise CheckpointError(f"{path}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
                              f"expected {tuple(own[bad[0]].shape)}: checkpoint of another architecture")
    module.load_state_dict(state, strict=True)
    return (obj.get("optim") or None) if "net" in obj else None


def part_state(module, optimizer=None):
    """What one part's file holds: its state dict without DDP or compile prefixes, and its optimiser's state."""
    optim = optimizer.state_dict() if optimizer is not None else {}
    return {"net": strip_prefixes(module.state_dict()), "optim": optim}
