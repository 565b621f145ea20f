"""Train the anti-compression detector (or the FF++ Xception baseline) on paired c23/c40 face crops.

    python train.py --face-root face/ --splits jsons/ --dataset All --out runs/all
    torchrun --nproc_per_node 4 train.py ...          # several GPUs, DistributedDataParallel

Every default below can be overridden with the flag of the same name (MAX_FRAMES -> --max-frames).
"""
import argparse
import dataclasses
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from forensics import cli, ffpp
from forensics.data import (
    DATASETS,
    FaceFrames,
    ReferenceFaceFrames,
    index_frames,
    reference_model_input,
    to_model_input,
)
from forensics.fileio import read_json, write_json
from forensics.losses import LossWeights, classification_loss, critic_loss, detector_losses
from forensics.metrics import best_threshold
from forensics.scoring import autocast, make_loader, score_frames
from models import CompressionCritic, build_model
from models.checkpoints import RUN_PARTS, checkpoint_path, load_part, save_part

# data
FACE_ROOT = "face"
SPLITS = "jsons"
DATASET = "All"              # Deepfakes, Face2Face, FaceSwap, NeuralTextures or All
MAX_FRAMES = 270             # first frames of each training video (released: 270)
VAL_MAX_FRAMES = 140         # first frames of each validation video (released test: 140)
IMAGE_SIZE = 299
WORKERS = cli.default_workers()
LOADER = "fast"              # fast: uint8 PNG decode in workers, normalise on the device; pil: the released path
# model
MODEL = "detector"           # detector, or xception for the one-stream baseline
COMPRESSION = "c23"          # the baseline's training quality (the detector always trains on c23+c40 pairs)
PRETRAINED = "imagenet"      # imagenet (timm, needs a network once), a local Xception file, or none
# optimisation (released: Adam, lr 1e-4, weight decay 1e-4, batch 64, 15 epochs)
EPOCHS = 15
BATCH_SIZE = 64
LR = 1e-4
WEIGHT_DECAY = 1e-4
SEED = 0
# losses (released: r1 = 0.01, r2 = 18, pairing weight 0.2)
R1, R2 = 0.01, 18.0
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
RESUME = False
LOG_EVERY = 20               # steps between TensorBoard scalars
MAX_STEPS = 0                # > 0 stops each epoch after this many steps (smoke tests, benchmarks)
# the released code's path, kept reachable for comparison (bench.py, benchmarks/compare_precision.py)
RELEASED_SETTINGS = ["--precision", "fp32", "--channels-last", "off", "--compile", "off", "--fused-adam", "off",
                     "--loader", "pil"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_common(p, face_root=FACE_ROOT, splits=SPLITS, out=OUT, device=DEVICE, workers=WORKERS,
                   image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, epochs=EPOCHS, seed=SEED)
    p.add_argument("--dataset", default=DATASET, choices=DATASETS)
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    p.add_argument("--val-max-frames", type=int, default=VAL_MAX_FRAMES)
    p.add_argument("--loader", default=LOADER, choices=("fast", "pil"))
    p.add_argument("--model", default=MODEL, choices=("detector", "xception"))
    p.add_argument("--compression", default=COMPRESSION, choices=ffpp.COMPRESSIONS)
    p.add_argument("--pretrained", default=PRETRAINED)
    p.add_argument("--lr", type=float, default=LR)
    p.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY)
    p.add_argument("--r1", type=float, default=R1)
    p.add_argument("--r2", type=float, default=R2)
    p.add_argument("--metric-weight", type=float, default=METRIC_WEIGHT)
    p.add_argument("--pairing-weight", type=float, default=PAIRING_WEIGHT)
    p.add_argument("--attention-weight", type=float, default=ATTENTION_WEIGHT)
    p.add_argument("--mask-weight", type=float, default=MASK_WEIGHT)
    p.add_argument("--classifier-weight", type=float, default=CLASSIFIER_WEIGHT)
    p.add_argument("--adversarial-weight", type=float, default=ADVERSARIAL_WEIGHT)
    p.add_argument("--gradient-penalty", type=float, default=GRADIENT_PENALTY)
    p.add_argument("--critic-lr", type=float, default=CRITIC_LR)
    p.add_argument("--precision", default=PRECISION, choices=("auto", "bf16", "fp32"))
    p.add_argument("--channels-last", default=CHANNELS_LAST, choices=("auto", "on", "off"))
    p.add_argument("--compile", default=COMPILE, choices=("auto", "on", "off"))
    p.add_argument("--fused-adam", default=FUSED_ADAM, choices=("auto", "on", "off"))
    p.add_argument("--resume", action="store_true", default=RESUME,
                   help="continue the run in --out from its last complete epoch")
    p.add_argument("--log-every", type=int, default=LOG_EVERY)
    p.add_argument("--max-steps", type=int, default=MAX_STEPS)
    return p.parse_args(argv)


def resolve_auto(args, device):
    cuda = device.type == "cuda"
    args.precision = ("bf16" if cuda else "fp32") if args.precision == "auto" else args.precision
    args.channels_last = cuda if args.channels_last == "auto" else args.channels_last == "on"
    args.compile = cuda if args.compile == "auto" else args.compile == "on"
    args.fused_adam = cuda if args.fused_adam == "auto" else args.fused_adam == "on"
    return args


def loss_weights(args):
    return LossWeights(r1=args.r1, r2=args.r2, metric=args.metric_weight, pairing=args.pairing_weight,
                       attention=args.attention_weight, mask=args.mask_weight,
                       classifier=args.classifier_weight, adversarial=args.adversarial_weight,
                       gradient_penalty=args.gradient_penalty)


def parts_of(model, args):
    """The modules saved one file each, with their own optimiser, as the released code did."""
    if args.model == "xception":
        return {"xception": model}
    parts = {name: getattr(model, name) for name in RUN_PARTS}
    if model.classifier is not None:
        parts["classifier"] = model.classifier
    return parts


def last_complete_epoch(out, names):
    epochs = [int(p.stem.rsplit("_", 1)[1]) for p in Path(out).glob(f"{names[0]}_*.tar")]
    history = read_json(Path(out) / "history.json", "training history") if (Path(out) / "history.json").exists() else []
    done = {h["epoch"] for h in history}
    complete = [e for e in epochs if e in done and all(checkpoint_path(out, n, e).exists() for n in names)]
    return max(complete, default=0), [h for h in history if h["epoch"] <= max(complete, default=0)]


def setup_distributed():
    """(rank, world size, local rank) under torchrun, else (0, 1, 0)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, 0
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


class Training:
    """The model, its optimisers and one training step, shared by the loop below and bench.py."""

    def __init__(self, args, device, world=1):
        self.args, self.device, self.world = args, device, world
        self.detector = args.model == "detector"
        self.model = build_model(args.model, classifier=args.classifier_weight > 0)
        self.weights = loss_weights(args)
        self.critic = CompressionCritic() if self.detector and self.weights.adversarial else None
        self.parts = parts_of(self.model, args)
        fused = args.fused_adam
        self.optims = {n: torch.optim.Adam(m.parameters(), lr=args.lr, weight_decay=args.weight_decay, fused=fused)
                       for n, m in self.parts.items()}
        self.saved = dict(self.parts)
        if self.critic is not None:
            self.saved["critic"] = self.critic
            self.optims["critic"] = torch.optim.Adam(self.critic.parameters(), lr=args.critic_lr, betas=(0.5, 0.9),
                                                     fused=fused)

    def load(self, out, epoch):
        for name, module in self.saved.items():
            optim_state = load_part(module, checkpoint_path(out, name, epoch))
            if optim_state:
                self.optims[name].load_state_dict(optim_state)

    def save(self, out, epoch):
        for name, module in self.saved.items():
            save_part(checkpoint_path(out, name, epoch), module, self.optims[name])

    def to_device(self):
        """Move everything to the device (and channels_last), then wrap for DDP and torch.compile."""
        device = self.device
        self.model.to(device)
        if self.critic is not None:
            self.critic.to(device)
        if self.args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        for optim in self.optims.values():  # state loaded on the CPU follows its parameters
            for state in optim.state.values():
                for k, v in state.items():
                    if torch.is_tensor(v) and k != "step":
                        state[k] = v.to(device)
        net = self.model
        if self.world > 1:
            net = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        self.step_model = torch.compile(net) if self.args.compile else net
        return self

    def step(self, images, mask, label):
        """One optimisation step on device tensors; returns (loss, terms) without a host sync."""
        args, critic, optims = self.args, self.critic, self.optims
        if self.detector:
            with autocast(self.device, args.precision):
                output = self.step_model(*images)
            if critic is not None:
                optims["critic"].zero_grad(set_to_none=True)
                critic_loss(critic, output["hq_feat"], output["lq_feat"], self.weights.gradient_penalty).backward()
                if self.world > 1:
                    for p in critic.parameters():
                        dist.all_reduce(p.grad)
                        p.grad /= self.world
                optims["critic"].step()
                critic.requires_grad_(False)
            loss, terms = detector_losses(output, label, mask, self.weights, critic)
            if critic is not None:
                critic.requires_grad_(True)
        else:
            with autocast(self.device, args.precision):
                logits = self.step_model(images[0])
            loss = classification_loss(logits, label)
            terms = {"cross_entropy": loss}
        for name in self.parts:
            optims[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in self.parts:
            optims[name].step()
        return loss, terms


def validate(model, args, device, val_frames):
    """Frame AUC of the validation split at c23 and c40 (the baseline: at its own quality) and the
    threshold of best accuracy at each, which test.py and eval.py can reuse. Runs the plain model (not the
    compiled or DDP-wrapped one), in eager mode."""
    labels = np.array([f.label for f in val_frames])
    qualities = (args.compression,) if args.model == "xception" else ffpp.COMPRESSIONS
    result = {}
    for quality in qualities:
        scores, _ = score_frames(model, args.face_root, val_frames, quality, device,
                                 args.image_size, args.batch_size, args.workers, args.precision,
                                 args.channels_last)
        result[f"val_auc_{quality}"] = float(roc_auc_score(labels, scores))
        result[f"val_threshold_{quality}"] = best_threshold(labels, scores)[0]
    result["val_auc"] = result[f"val_auc_{qualities[-1]}"]
    return result


def main(argv=None):
    args = parse_args(argv)
    rank, world, local_rank = setup_distributed()
    device = cli.resolve_device(args.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    args = resolve_auto(args, device)
    random.seed(args.seed + rank)
    np.random.seed(args.seed + rank)
    torch.manual_seed(args.seed + rank)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    out = Path(args.out)
    main_process = rank == 0

    # data: fail on an empty split before building anything heavy
    detector = args.model == "detector"
    qualities = ffpp.COMPRESSIONS if detector else (args.compression,)
    train_frames = index_frames(args.face_root, args.splits, "train", args.dataset, args.max_frames,
                                qualities, need_masks=detector, balance=args.dataset == "All")
    val_frames = index_frames(args.face_root, args.splits, "val", args.dataset, args.val_max_frames, qualities,
                              need_masks=False)
    dataset_cls = ReferenceFaceFrames if args.loader == "pil" else FaceFrames
    model_input = reference_model_input if args.loader == "pil" else to_model_input
    train_set = dataset_cls(args.face_root, train_frames, args.image_size, qualities, masks=detector)
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=args.seed) if world > 1 else None
    loader = make_loader(train_set, args.batch_size, args.workers, shuffle=True, sampler=sampler,
                         drop_last=len(train_set) >= args.batch_size * world, device=device)

    # model, one optimiser per saved part, and the critic
    training = Training(args, device, world)
    start_epoch, history = 0, []
    if args.resume:
        start_epoch, history = last_complete_epoch(out, list(training.saved))
        if start_epoch == 0:
            raise SystemExit(f"--resume: {out} holds no complete epoch; start without --resume")
        training.load(out, start_epoch)
        if main_process:
            print(f"resuming {out} after epoch {start_epoch}")
    elif args.pretrained != "none":
        training.model.init_from(args.pretrained)
    training.to_device()
    model = training.model

    if main_process:
        out.mkdir(parents=True, exist_ok=True)
        config = dict(vars(args), loss_weights=dataclasses.asdict(training.weights), world_size=world,
                      train_frames=len(train_frames), val_frames=len(val_frames), torch=torch.__version__)
        write_json(out / "config.json", config, indent=2)
        print(f"train: {len(train_frames)} frames, val: {len(val_frames)} frames, {args.model} on {device} "
              f"({args.precision}, channels_last={args.channels_last}, compile={args.compile}, world={world})")
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(out / "tensorboard")
    step = start_epoch * len(loader)

    for epoch in range(start_epoch + 1, args.epochs + 1):
        if sampler is not None:
            sampler.set_epoch(epoch)
        model.train()
        loss_sum, count, started = torch.zeros((), device=device), 0, time.time()
        bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", disable=not main_process, leave=False)
        for i, batch in enumerate(bar):
            if args.max_steps and i >= args.max_steps:
                break
            *images, mask, label, _ = batch
            images = [model_input(x, device, args.channels_last) for x in images]
            label = label.to(device, non_blocking=True)
            mask = mask.to(device, non_blocking=True)
            loss, terms = training.step(images, mask, label)
            loss_sum += loss.detach().float()
            count += 1
            step += 1
            if main_process and i % args.log_every == 0:
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
                     "pairs_per_s": round(count * args.batch_size * world / max(seconds, 1e-9), 1)}
            entry.update(validate(model, args, device, val_frames))
            history.append(entry)
            best = max(history, key=lambda h: h["val_auc"])
            write_json(out / "history.json", history, indent=2)
            write_json(out / "best.json", best, indent=2)
            for k, v in entry.items():
                if k.startswith("val_auc") or k == "train_loss":
                    writer.add_scalar(f"epoch/{k}", v, epoch)
            print(f"epoch {epoch}: loss {entry['train_loss']:.4f}, val AUC {entry['val_auc']:.4f} "
                  f"({entry['pairs_per_s']} pairs/s), best epoch {best['epoch']}", flush=True)
        if world > 1:
            dist.barrier()
    if main_process:
        writer.close()
    if world > 1:
        dist.destroy_process_group()
    return history


if __name__ == "__main__":
    main()
