"""Train the anti-compression detector (or the FF++ Xception baseline) on paired c23/c40 face crops.

    python train.py --face-root face/ --splits jsons/ --dataset All --out runs/all
    torchrun --nproc_per_node 4 train.py ...          # several GPUs, DistributedDataParallel

Every default below can be overridden with the flag of the same name (MAX_FRAMES -> --max-frames).
"""
import argparse
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from forensics import cli, ffpp
from forensics.cli import PRECISIONS, SWITCH
from forensics.data import DECODERS, DataError, SkippedFrames, index_frames, training_loader
from forensics.device import resolve_device
from forensics.fileio import write_json
from forensics.losses import METRIC_REDUCTIONS
from forensics.runs import checkpoint_files, clear_run
from forensics.training import (
    BASELINE_COMPRESSIONS,
    MODELS,
    TrainConfig,
    Training,
    seed_everything,
    setup_distributed,
    validate,
)
from models import INPUT_SIZE, TAIL_BATCHES

# data
FACE_ROOT = "face"
SPLITS = "jsons"
DATASET = "All"              # Deepfakes, Face2Face, FaceSwap, NeuralTextures or All
MAX_FRAMES = 270             # first frames of each training video (released: 270)
VAL_MAX_FRAMES = 140         # first frames of each validation video (released test: 140)
IMAGE_SIZE = INPUT_SIZE
WORKERS = cli.default_workers()
LOADER = "fast"              # fast: uint8 PNG decode in workers, normalise on the device; pil: the released path
STRICT = False               # stop on any warning about the data (a method or quality missing, a damaged crop)
VERIFY = False               # decode every crop before the first step (slow on FF++)
# model
MODEL = "detector"           # detector, or xception for the one-stream baseline
COMPRESSION = "c23"          # the baseline's training quality: c23, c40 or both (the detector: c23+c40 pairs)
TAIL_BATCH = "per-stream"    # per-stream: the tail runs once per stream, as released; joint: on both at once
PRETRAINED = "imagenet"      # imagenet (timm, needs a network once), a local Xception file, or none
# optimisation (released: Adam, lr 1e-4, weight decay 1e-4, batch 64, 15 epochs)
EPOCHS = 15
BATCH_SIZE = 64
LR = 1e-4
WEIGHT_DECAY = 1e-4
SEED = 0
# losses (released: r1 = 0.01, r2 = 18, pairing weight 0.2, the metric hinge summed and divided by batch^2)
R1, R2 = 0.01, 18.0
METRIC_REDUCTION = "released"  # released: sum / batch^2; mean: the per-sample mean (batch times the weight)
METRIC_WEIGHT = 1.0
PAIRING_WEIGHT = 0.2
ATTENTION_WEIGHT = 1.0
MASK_WEIGHT = 1.0
CLASSIFIER_WEIGHT = 0.0      # > 0 adds a classification head with cross-entropy
ADVERSARIAL_WEIGHT = 0.0     # > 0 adds the compression-insensitivity critic (WGAN-GP)
GRADIENT_PENALTY = 10.0
CRITIC_LR = 1e-4
# system
OUT = "runs/detector"
DEVICE = "auto"
PRECISION = "auto"           # auto: bf16 autocast on CUDA, fp32 on CPU
CHANNELS_LAST = "auto"       # auto: on CUDA
COMPILE = "auto"             # auto: torch.compile on CUDA
FUSED_ADAM = "auto"          # auto: the fused Adam kernel on CUDA
RESUME = False               # continue the run in OUT from its last complete epoch
OVERWRITE = False            # start over in an OUT that holds another run's checkpoints (they are deleted)
LOG_EVERY = 20               # steps between TensorBoard scalars
MAX_STEPS = 0                # > 0 stops each epoch after this many steps (smoke tests, benchmarks)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, epochs=EPOCHS, seed=SEED)
    p.add_argument("--dataset", default=DATASET, choices=ffpp.DATASETS)
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES)
    p.add_argument("--loader", default=LOADER, choices=DECODERS)
    p.add_argument("--strict", action="store_true", default=STRICT, help="stop on any warning about the data")
    p.add_argument("--verify", action="store_true", default=VERIFY, help="decode every crop before the first step")
    p.add_argument("--model", default=MODEL, choices=MODELS)
    p.add_argument("--compression", default=COMPRESSION, choices=BASELINE_COMPRESSIONS)
    p.add_argument("--tail-batch", default=TAIL_BATCH, choices=TAIL_BATCHES)
    p.add_argument("--pretrained", default=PRETRAINED)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    p.add_argument("--r1", type=float, default=R1)
    p.add_argument("--r2", type=float, default=R2)
    p.add_argument("--metric-reduction", default=METRIC_REDUCTION, choices=METRIC_REDUCTIONS)
    p.add_argument("--metric-weight", type=float, default=METRIC_WEIGHT)
    p.add_argument("--pairing-weight", type=float, default=PAIRING_WEIGHT)
    p.add_argument("--attention-weight", type=float, default=ATTENTION_WEIGHT)
    p.add_argument("--mask-weight", type=float, default=MASK_WEIGHT)
    p.add_argument("--classifier-weight", type=float, default=CLASSIFIER_WEIGHT)
    p.add_argument("--adversarial-weight", type=float, default=ADVERSARIAL_WEIGHT)
    p.add_argument("--gradient-penalty", type=float, default=GRADIENT_PENALTY)
    p.add_argument("--critic-lr", type=float, default=CRITIC_LR)
    p.add_argument("--precision", default=PRECISION, choices=PRECISIONS)
    p.add_argument("--channels-last", default=CHANNELS_LAST, choices=SWITCH)
    p.add_argument("--compile", default=COMPILE, choices=SWITCH)
    p.add_argument("--fused-adam", default=FUSED_ADAM, choices=SWITCH)
    p.add_argument("--resume", action="store_true", default=RESUME,
                   help="continue the run in --out from its last complete epoch")
    p.add_argument("--overwrite", action="store_true", default=OVERWRITE,
                   help="start over in an --out that holds another run: its checkpoints, history and logs are deleted")
    p.add_argument("--log-every", type=int, default=LOG_EVERY)
    p.add_argument("--max-steps", type=int, default=MAX_STEPS)
    return TrainConfig(**vars(p.parse_args(argv)))


def main(argv=None):
    config = parse_args(argv)
    rank, world, local_rank = setup_distributed()
    device = resolve_device(config.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    config = config.resolved(device)
    seed_everything(config.seed + rank)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    out = Path(config.out)
    main_process = rank == 0

    # data: fail on an empty split before building anything heavy
    detector = config.model == "detector"
    train_frames = index_frames(config.face_root, config.splits, "train", config.dataset, config.max_frames,
                                config.qualities, need_masks=detector, balance=config.dataset == "All",
                                strict=config.strict, verify=config.verify)
    val_frames = index_frames(config.face_root, config.splits, "val", config.dataset, config.val_max_frames,
                              config.qualities, need_masks=False, strict=config.strict, verify=config.verify)
    loader = training_loader(config.face_root, train_frames, qualities=config.qualities, masks=detector,
                             image_size=config.image_size, batch_size=config.batch_size, workers=config.workers,
                             decoder=config.loader, device=device, seed=config.seed, world=world, rank=rank)

    # model, one optimiser per saved part, and the critic
    training = Training(config, device, world)
    start_epoch, history = 0, []
    if config.resume:
        start_epoch, history = training.resume(out)
        if start_epoch == 0:
            raise SystemExit(f"--resume: {out} holds no complete epoch; start without --resume")
        if main_process:
            print(f"resuming {out} after epoch {start_epoch}")
    else:
        found = checkpoint_files(out)
        if found and not config.overwrite:
            raise SystemExit(f"{out} holds another run's checkpoints ({found[0].name}, ...): pass --resume to "
                             "continue it, --overwrite to start over (its checkpoints, history and logs are "
                             "deleted), or another --out")
        if found and main_process:
            clear_run(out)
        if config.pretrained != "none":
            training.model.init_from(config.pretrained)
    training.to_device()
    model = training.model

    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", dict(dataclasses.asdict(config), world_size=world,
                                             loss_weights=dataclasses.asdict(training.weights),
                                             train_frames=len(train_frames), val_frames=len(val_frames),
                                             torch=torch.__version__), indent=2)
        print(f"train: {len(train_frames)} frames, val: {len(val_frames)} frames, {config.model} on {device} "
              f"({config.precision}, channels_last={config.channels_last}, compile={config.compile}, world={world})")
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(out / "tensorboard")
    step = start_epoch * len(loader)

    for epoch in range(start_epoch + 1, config.epochs + 1):
        loader.sampler.set_epoch(epoch)
        model.train()
        loss_sum, count, started = torch.zeros((), device=device), 0, time.time()
        skipped = SkippedFrames(len(loader.sampler))
        bar = tqdm(skipped.batches(loader), total=len(loader), desc=f"epoch {epoch}/{config.epochs}",
                   disable=not main_process, leave=False)
        for i, batch in enumerate(bar):
            if config.max_steps and i >= config.max_steps:
                break
            loss, terms = training.step(batch.to(device, config.channels_last))
            loss_sum += loss.detach().float()
            count += 1
            step += 1
            if main_process and i % config.log_every == 0:
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss became {value} at epoch {epoch}, step {i}; lower --lr")
                writer.add_scalar("train/loss", value, step)
                for k, v in terms.items():
                    writer.add_scalar(f"train/{k}", v.item(), step)
                bar.set_postfix(loss=f"{value:.3f}")
        if world > 1:
            dist.barrier()
        if main_process:
            seconds = time.time() - started
            training.save(out, epoch)
            entry = {"epoch": epoch, "train_loss": float(loss_sum) / max(count, 1),
                     "steps": count, "seconds": round(seconds, 1),
                     "pairs_per_s": round(count * config.batch_size * world / max(seconds, 1e-9), 1),
                     "skipped_frames": skipped.count}
            entry.update(validate(model, config, device, val_frames))
            training.save_rng(out, epoch)
            history.append(entry)
            best = max(history, key=lambda h: h["val_auc"])
            write_json(out / "history.json", history, indent=2)
            write_json(out / "best.json", best, indent=2)
            for k, v in entry.items():
                if k.startswith("val_auc") or k == "train_loss":
                    writer.add_scalar(f"epoch/{k}", v, epoch)
            print(f"epoch {epoch}: loss {entry['train_loss']:.4f}, val AUC {entry['val_auc']:.4f} "
                  f"({entry['pairs_per_s']} pairs/s), best epoch {best['epoch']}"
                  + (f", {skipped.count} frames skipped (named above)" if skipped.count else ""), flush=True)
        if world > 1:
            dist.barrier()
    if main_process:
        writer.close()
    if world > 1:
        dist.destroy_process_group()
    return history


if __name__ == "__main__":
    try:
        main()
    except (DataError, OSError) as e:  # their messages name the file and what to do
        raise SystemExit(f"train.py: {e}") from None
