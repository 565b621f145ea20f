"""Train the anti-compression detector (or the FF++ Xception baseline) on paired c23/c40 face crops.

    python train.py --face-root face/ --splits jsons/ --dataset All --out runs/all
    torchrun --nproc_per_node 4 train.py ...          # several GPUs, DistributedDataParallel

Every setting is a field of TrainConfig (forensics/training.py), which writes its default (the released code's,
where it had the setting) and its help once: each is a flag of the same name (max_frames -> --max-frames), and
--out's config.json records them all.
"""
import argparse
import dataclasses
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist

from forensics import cli, progress
from forensics.data import DataError, SkippedFrames, index_frames, training_loader
from forensics.device import resolve_device
from forensics.fileio import write_json
from forensics.runs import check_resume, clear_run, refuse_another_run
from forensics.training import TrainConfig, Training, seed_everything, setup_distributed, validate
from models.checkpoints import CheckpointError


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_config(p, TrainConfig)
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
    if config.resume:
        check_resume(out, dict(dataclasses.asdict(config), world_size=world))
    elif not config.overwrite:
        refuse_another_run(out)

    # data: fail on an empty split before building anything heavy
    train_frames = index_frames(config.face_root, config.splits, "train", config.dataset, config.max_frames,
                                config.qualities, need_masks=config.reads_masks, balance=config.dataset == "All",
                                strict=config.strict, verify=config.verify)
    val_frames = index_frames(config.face_root, config.splits, "val", config.dataset, config.val_max_frames,
                              config.qualities, need_masks=False, strict=config.strict, verify=config.verify)
    loader = training_loader(config.face_root, train_frames, qualities=config.qualities, masks=config.reads_masks,
                             image_size=config.image_size, batch_size=config.batch_size, workers=config.workers,
                             decoder=config.loader, device=device, seed=config.seed, world=world, rank=rank)

    # model, one optimiser per saved part, and the critic
    training = Training(config, device, world)
    start_epoch, history = 0, []
    if config.resume:
        start_epoch, history = training.resume(out)
        if start_epoch == 0:
            raise SystemExit(f"--resume: no epoch of {out} could be read; start over with --overwrite")
        if main_process:
            print(f"resuming {out} after epoch {start_epoch}")
    else:
        if main_process and config.overwrite:
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
        bar = progress.bar(skipped.batches(loader), total=len(loader), desc=f"epoch {epoch}/{config.epochs}",
                           unit="step", disable=not main_process)
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
    except (DataError, OSError, ValueError, CheckpointError) as e:  # their messages name the file and what to do
        raise SystemExit(f"train.py: {e}") from None
