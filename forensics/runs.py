"""Run folders (train.py's) and released checkpoint folders: what a run folder holds (the parts one epoch saves,
its record, its complete epochs and best epoch), when it may be resumed or overwritten, which epoch and file a
checkpoint flag names, and loading the network that scores one compression level. train.py, test.py,
paper_grid.py and experiments.py all decide these here."""
from pathlib import Path

from models import INPUT_SIZE, build_model
from models.checkpoints import RUN_PARTS, CheckpointError, checkpoint_path, epochs_of, load_part

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
        best = best_epoch(directory)
        if best is None:
            raise CheckpointError(f"{directory / 'best.json'} not found: --epoch best needs a train.py run; "
                                  f"pass --epoch N (epochs of {part} here: {found or 'none'})")
        return best
    if str(epoch) == "last":
        if not found:
            raise CheckpointError(f"{directory}: no {part}_NNNNNN.tar checkpoint: not a train.py run or a folder "
                                  "of released checkpoints")
        return found[-1]
    try:
        return int(epoch)
    except ValueError:
        raise ValueError(f"--epoch {epoch!r}: use best, last or an epoch number") from None


RUN_RECORD = ("config.json", "history.json", "best.json")  # what train.py writes beside the checkpoints


def epoch_parts(settings):
    """The files one epoch of a run saves, one module each (Training builds its modules from this list), from
    its settings (config.json's names, values as saved or as flag text): the baseline's one network; the
    detector's tail and two heads, with the classifier (a positive weight) and the critic (a weight) when
    their loss is on."""
    if settings.get("model", "detector") == "xception":
        return ["xception"]
    classifier, adversarial = (float(settings.get(k) or 0) for k in ("classifier_weight", "adversarial_weight"))
    return [*RUN_PARTS, *(["classifier"] if classifier > 0 else []), *(["critic"] if adversarial else [])]


def run_parts(directory, settings=None):
    """The parts of the run in directory: its config.json's, else those of settings (a run not started yet)."""
    return epoch_parts(run_config(directory) or settings or {})


def last_complete_epoch(directory, parts=None, before=None):
    """(epoch, history up to it) of the newest epoch (below `before`, if given) with every part saved and its
    history entry written: where --resume continues. (0, []) when there is none. parts: the run's own."""
    directory = Path(directory)
    parts = parts or run_parts(directory)
    done = {h["epoch"] for h in read_history(directory)}
    complete = [e for e in epochs_of(directory, parts[0])
                if e in done and (before is None or e < before)
                and all(checkpoint_path(directory, p, e).exists() for p in parts)]
    epoch = max(complete, default=0)
    return epoch, [h for h in read_history(directory) if h["epoch"] <= epoch]


def best_epoch(directory):
    """The epoch of best validation AUC that train.py recorded in best.json, or None."""
    best = Path(directory) / "best.json"
    return int(read_json(best, "best epoch")["epoch"]) if best.exists() else None


def checkpoint_files(directory):
    """Every part_NNNNNN.tar checkpoint file of a run folder."""
    return sorted(p for p in Path(directory).glob("*_*.tar") if p.stem.rsplit("_", 1)[1].isdigit())


def run_files(directory):
    """What makes directory a run's folder: its record (config, history, best epoch) and its checkpoints."""
    directory = Path(directory)
    return [directory / n for n in RUN_RECORD if (directory / n).exists()] + checkpoint_files(directory)


def again_flags(directory, parts=None):
    """The train.py flag that goes on with the run in directory: --resume after a complete epoch, --overwrite
    when it holds a run but no complete epoch (killed inside its first, or its checkpoints removed)."""
    if last_complete_epoch(directory, parts)[0]:
        return ["--resume"]
    return ["--overwrite"] if run_files(directory) else []


def refuse_another_run(directory):
    """Stop a fresh start in a folder that holds a run (train.py without --resume or --overwrite): its record
    would be replaced and its checkpoints mixed with the new run's."""
    found = run_files(directory)
    if found:
        what = "checkpoints" if checkpoint_files(directory) else "record"
        raise SystemExit(f"{directory} holds another run's {what} ({', '.join(p.name for p in found[:3])}"
                         f"{', ...' if len(found) > 3 else ''}): pass --resume to continue it, --overwrite to start "
                         "over (its checkpoints, history and logs are deleted), or another --out")


# How a run is carried out, not what it computes: these may change between the sessions of one run (a resume on
# another machine, or with more epochs) and between the calls of an experiment, and are not compared; nor are
# the facts train.py records beside the settings.
NOT_COMPARED = ("out", "device", "workers", "log_every", "strict", "verify", "resume", "overwrite", "epochs",
                "train_frames", "val_frames", "torch", "loss_weights")


def _same(saved, wanted):
    """Whether a wanted value (typed, or a flag's text) is the saved one, compared as the saved type."""
    try:
        if isinstance(saved, bool):
            return saved == (wanted if isinstance(wanted, bool) else wanted == "on")
        if isinstance(saved, (int, float)):
            return float(saved) == float(wanted)
    except (TypeError, ValueError):
        return False
    return saved == wanted or (saved is not None and str(saved) == str(wanted))


def _text(value):
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _difference(name, saved, wanted):
    if name == "world_size":
        return f"{wanted} processes (the run had {saved})"
    return f"--{name.replace('_', '-')} {_text(wanted)} (the run has {_text(saved)})"


def setting_differences(saved, wanted):
    """The settings of wanted (config.json's names; values typed, or as flag text) that a run's saved config.json
    contradicts, each as '--lr 0.0003 (the run has 0.0001)'. A wanted 'auto' (the machine's choice) and a setting
    the saved config does not record (a run from before it existed) are not compared."""
    return [_difference(k, saved[k], v) for k, v in wanted.items()
            if k in saved and k not in NOT_COMPARED and v != "auto" and not _same(saved[k], v)]


def check_resume(directory, settings):
    """Stop a --resume that has nothing to continue, or whose settings are not the run's (a changed --lr would
    act on the restored optimiser unrecorded), before any data is read."""
    changed = setting_differences(run_config(directory), settings)
    if changed:
        raise SystemExit(f"--resume: {directory} was trained with other settings: {', '.join(changed)}. Resume "
                         "with the run's own settings (its config.json), start over with --overwrite, or use "
                         "another --out")
    if not last_complete_epoch(directory, epoch_parts(settings))[0]:
        raise SystemExit(f"--resume: {directory} holds no complete epoch; " +
                         ("start over with --overwrite" if run_files(directory) else "start without --resume"))


def clear_run(directory):
    """Delete a run's checkpoints, its record and TensorBoard logs (train.py --overwrite); nothing else."""
    directory = Path(directory)
    for path in run_files(directory):
        path.unlink(missing_ok=True)
    for path in sorted((directory / "tensorboard").glob("events.out.tfevents.*")):
        path.unlink()


def _need(directory, part, epoch):
    path = checkpoint_path(directory, part, epoch)
    if not path.is_file():
        raise CheckpointError(f"{path}: {part} checkpoint not found; {directory} holds {part} epochs "
                              f"{epochs_of(directory, part) or 'none'}: pass one of them as --epoch, "
                              "or check the checkpoint folder")
    return path


def run_threshold(directory, epoch, compression):
    """The validation threshold train.py stored for this epoch and quality, if any."""
    best = Path(directory) / "best.json"
    entries = [read_json(best, "best epoch")] if best.exists() else []
    for entry in entries + read_history(directory):
        if entry.get("epoch") == epoch and entry.get(f"val_threshold_{compression}") is not None:
            return float(entry[f"val_threshold_{compression}"])
    return None


def run_input_size(directory):
    """The crop side a run was trained at (its config.json); a released folder, with none, the paper's."""
    return int(run_config(directory).get("image_size") or INPUT_SIZE)


def load_model(directory, epoch="best", compression="c40", model="auto"):
    """The network of a run or released folder, in eval mode, ready to score `compression`, and what
    eval needs to know about it. Only the head that scores this quality is loaded (released folders have
    no HQ head). model 'auto' takes the run's config.json, else what the folder's files say. The network
    carries the run's crop side as its input size (a released folder, with no config.json, keeps the paper's)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: checkpoint folder not found; pass the folder of a train.py run, "
                                "or of released head_N.tar and tail_N.tar files")
    config = run_config(directory)
    if model == "auto":
        model = config.get("model") or ("xception" if epochs_of(directory, "xception") and not
                                        epochs_of(directory, "tail") else "detector")
    net = build_model(model)
    side = run_input_size(directory)
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
                   else "; check the checkpoint folder and --epoch"))
        load_part(net.tail, tail)
        load_part(net.head(compression), head)
        trained_on = "c23+c40"
    info = {"checkpoint_dir": str(directory), "epoch": epoch, "model": model, "trained_on": trained_on,
            "image_size": config.get("image_size"), "run_threshold": run_threshold(directory, epoch, compression)}
    return net.eval(), info
