"""Run folders (train.py's) and released checkpoint folders: which epoch, which file, and loading the
network that scores one compression level."""
from pathlib import Path

from models import build_model
from models.checkpoints import CheckpointError, checkpoint_path, epochs_of, load_part

from .fileio import read_json


def run_config(directory):
    """The run's config.json, or {} (a released folder has none)."""
    path = Path(directory) / "config.json"
    return read_json(path, "run configuration") if path.exists() else {}


def read_history(directory):
    """The run's history.json (one entry per finished epoch), or []."""
    path = Path(directory) / "history.json"
    return read_json(path, "training history") if path.exists() else []


def resolve_epoch(directory, epoch, part):
    """'best' (the run's best.json, chosen on its validation AUC at c40, or at its own quality for the
    baseline), 'last' (the highest epoch of this part) or a number."""
    directory = Path(directory)
    found = epochs_of(directory, part)
    if str(epoch) == "best":
        best = directory / "best.json"
        if not best.exists():
            raise CheckpointError(f"{best} not found: --epoch best needs a train.py run; "
                                  f"pass --epoch N (epochs of {part} here: {found or 'none'})")
        return int(read_json(best, "best epoch")["epoch"])
    if str(epoch) == "last":
        if not found:
            raise CheckpointError(f"{directory}: no {part}_NNNNNN.tar checkpoint; check --checkpoint-dir")
        return found[-1]
    try:
        return int(epoch)
    except ValueError:
        raise ValueError(f"--epoch {epoch!r}: use best, last or an epoch number") from None


def last_complete_epoch(directory, parts, before=None):
    """(epoch, history up to it) of the newest epoch (below `before`, if given) with every part saved and its
    history entry written: where --resume continues. (0, []) when there is none."""
    directory = Path(directory)
    done = {h["epoch"] for h in read_history(directory)}
    complete = [e for e in epochs_of(directory, parts[0])
                if e in done and (before is None or e < before)
                and all(checkpoint_path(directory, p, e).exists() for p in parts)]
    epoch = max(complete, default=0)
    return epoch, [h for h in read_history(directory) if h["epoch"] <= epoch]


RUN_FILES = ("config.json", "history.json", "best.json")


def checkpoint_files(directory):
    """Every part_NNNNNN.tar checkpoint file of a run folder."""
    return sorted(p for p in Path(directory).glob("*_*.tar") if p.stem.rsplit("_", 1)[1].isdigit())


def clear_run(directory):
    """Delete a run's checkpoints, its history and TensorBoard logs (train.py --overwrite); nothing else."""
    directory = Path(directory)
    for path in checkpoint_files(directory) + [directory / n for n in RUN_FILES]:
        path.unlink(missing_ok=True)
    for path in sorted((directory / "tensorboard").glob("events.out.tfevents.*")):
        path.unlink()


def _need(directory, part, epoch):
    path = checkpoint_path(directory, part, epoch)
    if not path.is_file():
        raise CheckpointError(f"{path}: {part} checkpoint not found; {directory} holds {part} epochs "
                              f"{epochs_of(directory, part) or 'none'}: pass one of them as --epoch, "
                              "or check --checkpoint-dir")
    return path


def run_threshold(directory, epoch, compression):
    """The validation threshold train.py stored for this epoch and quality, if any."""
    best = Path(directory) / "best.json"
    entries = [read_json(best, "best epoch")] if best.exists() else []
    for entry in entries + read_history(directory):
        if entry.get("epoch") == epoch and entry.get(f"val_threshold_{compression}") is not None:
            return float(entry[f"val_threshold_{compression}"])
    return None


def load_model(directory, epoch="best", compression="c40", model="auto"):
    """The network of a run or released folder, in eval mode, ready to score `compression`, and what
    eval needs to know about it. Only the head that scores this quality is loaded (released folders have
    no HQ head). model 'auto' takes the run's config.json, else what the folder's files say. The network
    carries the run's crop side as its input size (a released folder, with no config.json, keeps the paper's)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: checkpoint folder not found; pass --checkpoint-dir DIR "
                                "(a train.py run, or a folder of released head_N.tar and tail_N.tar)")
    config = run_config(directory)
    if model == "auto":
        model = config.get("model") or ("xception" if epochs_of(directory, "xception") and not
                                        epochs_of(directory, "tail") else "detector")
    net = build_model(model)
    if config.get("image_size"):
        side = int(config["image_size"])
        net.pretrained_cfg["input_size"] = (3, side, side)
    if model == "xception":
        epoch = resolve_epoch(directory, epoch, "xception")
        load_part(net, _need(directory, "xception", epoch))
        trained_on = "c23+c40" if config.get("compression") == "both" else config.get("compression")
    else:
        epoch = resolve_epoch(directory, epoch, "tail")
        tail = _need(directory, "tail", epoch)
        names = ("hq_head",) if compression == "c23" else ("lq_head", "head")
        heads = [checkpoint_path(directory, n, epoch) for n in names]
        head = next((h for h in heads if h.is_file()), None)
        if head is None:
            raise CheckpointError(
                f"{directory}: no {' or '.join(h.name for h in heads)} for {compression} at epoch {epoch}"
                + ("; released folders hold only the LQ head (head_N.tar): test them at --compression c40"
                   if compression == "c23" and epochs_of(directory, "head")
                   else "; check --checkpoint-dir and --epoch"))
        load_part(net.tail, tail)
        load_part(net.head(compression), head)
        trained_on = "c23+c40"
    info = {"checkpoint_dir": str(directory), "epoch": epoch, "model": model, "trained_on": trained_on,
            "image_size": config.get("image_size"), "run_threshold": run_threshold(directory, epoch, compression)}
    return net.eval(), info
