"""Training: the configuration, the model with one optimiser per saved part, one optimisation step,
validation, and the distributed set-up. train.py runs the loop; bench.py times the same step."""
import dataclasses
import os
import random

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from torch.nn.parallel import DistributedDataParallel

from models import INPUT_SIZE, TAIL_BATCHES, CompressionCritic, build_model
from models.checkpoints import CheckpointError, checkpoint_path, load_part, part_state, read_checkpoint

from . import cli, ffpp
from .cli import SWITCH
from .data import DECODERS
from .device import autocast, resolve_precision, resolve_switch
from .fileio import write_torch
from .losses import METRIC_REDUCTIONS, LossWeights, classification_loss, critic_loss, detector_losses
from .metrics import best_threshold
from .runs import epoch_parts, last_complete_epoch
from .scoring import ScoreOptions, score_frames

MODELS = ("detector", "xception")
BOTH = "both"  # the baseline's --compression that trains on every frame at c23 and at c40
BASELINE_COMPRESSIONS = ffpp.COMPRESSIONS + (BOTH,)


def _setting(default, help=None, choices=None, loss=None):
    """A TrainConfig field: its default, its train.py flag's help and choices (a shared flag's come from
    cli.HELP and cli.CHOICES), and the LossWeights field it sets, if any. A callable default is called for
    each config."""
    metadata = {"help": help, "choices": choices, "loss": loss}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run depends on, and the one place its defaults are written: train.py has a flag
    for every field (max_frames -> --max-frames) with this default and help (cli.add_config), config.json
    records every field, and the loss weights are the fields that name one (loss_weights)."""
    # data
    face_root: str = _setting("face")
    splits: str = _setting("jsons")
    dataset: str = _setting("All", "the manipulation to train on, or All", ffpp.DATASETS)
    max_frames: int = _setting(270, "first frames of each training video (released: 270)")
    val_max_frames: int = _setting(140, "first frames of each validation video (released test: 140)")
    strict: bool = _setting(False, "stop on any warning about the data (a method or quality missing, a damaged crop)")
    verify: bool = _setting(False, "decode every crop before the first step (slow on FF++)")
    image_size: int = _setting(INPUT_SIZE)
    workers: int = _setting(cli.default_workers)
    loader: str = _setting("fast", "fast: uint8 PNG decode in the workers, normalised on the device; pil: the "
                                   "released per-sample path", DECODERS)
    # model
    model: str = _setting("detector", "detector, or xception for the one-stream baseline", MODELS)
    tail_batch: str = _setting("per-stream", "per-stream: the tail runs once per stream, as released; joint: once "
                                             "on both streams at once", TAIL_BATCHES)
    compression: str = _setting("c23", "the baseline's training quality: c23, c40 or both (the detector trains on "
                                       "c23+c40 pairs)", BASELINE_COMPRESSIONS)
    pretrained: str = _setting("imagenet", "imagenet (timm, needs a network once), a local Xception file, or none")
    # optimisation (released: Adam, lr 1e-4, weight decay 1e-4, batch 64, 15 epochs)
    epochs: int = _setting(15)
    batch_size: int = _setting(64)
    lr: float = _setting(1e-4, "Adam's learning rate")
    weight_decay: float = _setting(1e-4, "Adam's weight decay")
    seed: int = _setting(0)
    # losses (released: r1 = 0.01, r2 = 18, pairing weight 0.2, the metric hinge summed and divided by batch^2)
    r1: float = _setting(0.01, "metric loss: real embeddings within this distance of the centre", loss="r1")
    r2: float = _setting(18.0, "metric loss: fake embeddings beyond this distance of the centre", loss="r2")
    metric_reduction: str = _setting("released", "released: the metric hinge summed and divided by batch^2; mean: "
                                                 "the per-sample mean (batch times the weight)", METRIC_REDUCTIONS,
                                     loss="metric_reduction")
    metric_weight: float = _setting(1.0, "weight of each stream's metric loss", loss="metric")
    pairing_weight: float = _setting(0.2, "weight of the HQ-LQ embedding pairing loss", loss="pairing")
    attention_weight: float = _setting(1.0, "weight of the attention transfer loss", loss="attention")
    mask_weight: float = _setting(1.0, "weight of each regression map's mask loss", loss="mask")
    classifier_weight: float = _setting(0.0, "> 0 adds a classification head with cross-entropy", loss="classifier")
    adversarial_weight: float = _setting(0.0, "> 0 adds the compression-insensitivity critic (WGAN-GP)",
                                         loss="adversarial")
    gradient_penalty: float = _setting(10.0, "the critic's gradient penalty weight", loss="gradient_penalty")
    critic_lr: float = _setting(1e-4, "the critic's learning rate")
    # system
    out: str = _setting("runs/detector")
    device: str = _setting("auto")
    precision: str = _setting("auto")
    channels_last: str = _setting("auto", "channels_last memory format; auto: on CUDA", SWITCH)
    compile: str = _setting("auto", "torch.compile; auto: on CUDA", SWITCH)
    fused_adam: str = _setting("auto", "the fused Adam kernel; auto: on CUDA", SWITCH)
    resume: bool = _setting(False, "continue the run in --out from its last complete epoch")
    overwrite: bool = _setting(False, "start over in an --out that holds another run: its checkpoints, history and "
                                      "logs are deleted")
    log_every: int = _setting(20, "steps between TensorBoard scalars")
    max_steps: int = _setting(0, "> 0 stops each epoch after this many steps (smoke tests, benchmarks)")

    @property
    def qualities(self):
        """The crops a sample reads: both for the detector and the baseline trained on both, else the
        baseline's own quality."""
        return ffpp.COMPRESSIONS if self.model == "detector" or self.compression == BOTH else (self.compression,)

    @property
    def reads_masks(self):
        """Whether training reads mask crops: only the detector's mask loss uses them, so --mask-weight 0
        trains on a tree without masks."""
        return self.model == "detector" and self.mask_weight != 0

    def loss_weights(self):
        """The LossWeights of the fields that name one."""
        return LossWeights(**{f.metadata["loss"]: getattr(self, f.name) for f in dataclasses.fields(self)
                              if f.metadata["loss"]})

    def resolved(self, device):
        """A copy with the 'auto' settings decided for this device (the fast path on CUDA only)."""
        return dataclasses.replace(
            self, precision=resolve_precision(self.precision, device),
            channels_last=resolve_switch(self.channels_last, device), compile=resolve_switch(self.compile, device),
            fused_adam=resolve_switch(self.fused_adam, device))


# The released code's arithmetic and input path (fp32, eager, plain Adam, PIL decoding per sample), kept
# reachable for comparison: bench.py's reference, the fp32 runs of experiments.py's precision set.
RELEASED_SETTINGS = {"precision": "fp32", "channels_last": "off", "compile": "off", "fused_adam": "off",
                     "loader": "pil"}


def as_flags(settings):
    """{name: value} as train.py flags: {'fused_adam': 'off'} -> ['--fused-adam', 'off']."""
    return [item for k, v in settings.items() for item in ("--" + k.replace("_", "-"), str(v))]


def save_part(path, module, optimizer=None):
    """One part's checkpoint in the released format (models.checkpoints.part_state), written atomically."""
    write_torch(path, part_state(module, optimizer))


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    """The random number generators' states (Python, NumPy, torch, CUDA) as tensors and plain values, so
    that torch.load(weights_only=True) reads them back."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached": float(cached)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    python, numpy = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss"]))
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def setup_distributed():
    """(rank, world size, local rank) under torchrun, else (0, 1, 0)."""
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return 0, 1, 0
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


class Training:
    """The model, its optimisers and one training step, for a resolved TrainConfig."""

    def __init__(self, config, device, world=1):
        self.config, self.device, self.world = config, device, world
        self.detector = config.model == "detector"
        names = epoch_parts(dataclasses.asdict(config))  # the files of an epoch: one module each, as released
        self.model = build_model(config.model, classifier="classifier" in names, tail_batch=config.tail_batch)
        self.weights = config.loss_weights()
        self.critic = CompressionCritic() if "critic" in names else None
        self.parts = {n: self.model if n == "xception" else getattr(self.model, n) for n in names if n != "critic"}
        fused = config.fused_adam
        self.optims = {n: torch.optim.Adam(m.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           fused=fused) for n, m in self.parts.items()}
        self.saved = dict(self.parts)
        if self.critic is not None:
            self.saved["critic"] = self.critic
            self.optims["critic"] = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr,
                                                     betas=(0.5, 0.9), fused=fused)

    def load(self, out, epoch):
        for name, module in self.saved.items():
            optim_state = load_part(module, checkpoint_path(out, name, epoch))
            if optim_state:
                self.optims[name].load_state_dict(optim_state)

    def save(self, out, epoch):
        for name, module in self.saved.items():
            save_part(checkpoint_path(out, name, epoch), module, self.optims[name])

    @staticmethod
    def save_rng(out, epoch):
        """The generators' states at the end of an epoch (after its validation): where a resumed run goes on,
        so that on the CPU it repeats the uninterrupted run exactly. Data order does not depend on them (the
        sampler is seeded with --seed and the epoch)."""
        write_torch(checkpoint_path(out, "rng", epoch), {"rng": rng_state()})

    def resume(self, out):
        """Load the newest complete epoch of out (model, optimisers, generators); a newest epoch that cannot be
        read gives way to the one before, with a line saying so. Returns (epoch, history up to it)."""
        epoch, history = last_complete_epoch(out, list(self.saved))
        while epoch:
            try:
                self.load(out, epoch)
                rng = checkpoint_path(out, "rng", epoch)
                if rng.exists():
                    set_rng_state(read_checkpoint(rng)["rng"])
                else:
                    print(f"note: {rng} not found (a run from before it was saved): the resumed run goes on with "
                          "other random numbers than an uninterrupted one would")
                return epoch, history
            except CheckpointError as e:
                previous, history = last_complete_epoch(out, list(self.saved), before=epoch)
                print(f"{e}: resuming from epoch {previous} instead" if previous else f"{e}; no earlier epoch")
                epoch = previous
        return 0, []

    def to_device(self):
        """Move everything to the device (and channels_last), then wrap for DDP and torch.compile."""
        device = self.device
        self.model.to(device)
        if self.critic is not None:
            self.critic.to(device)
        if self.config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        for optim in self.optims.values():  # state loaded on the CPU follows its parameters
            for state in optim.state.values():
                for k, v in state.items():
                    if torch.is_tensor(v) and k != "step":
                        state[k] = v.to(device)
        net = self.model
        if self.world > 1:
            net = DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        self.step_model = torch.compile(net) if self.config.compile else net
        return self

    def step(self, batch):
        """One optimisation step on a batch already on the device; returns (loss, terms) without a host sync."""
        config, critic, optims = self.config, self.critic, self.optims
        if self.detector:
            with autocast(self.device, config.precision):
                output = self.step_model(*(batch.images[q] for q in ffpp.COMPRESSIONS))
            if critic is not None:
                optims["critic"].zero_grad(set_to_none=True)
                critic_loss(critic, output["hq_feat"], output["lq_feat"], self.weights.gradient_penalty).backward()
                if self.world > 1:
                    for p in critic.parameters():
                        dist.all_reduce(p.grad)
                        p.grad /= self.world
                optims["critic"].step()
                critic.requires_grad_(False)
            loss, terms = detector_losses(output, batch.label, batch.mask, self.weights, critic, self.world)
            if critic is not None:
                critic.requires_grad_(True)
        else:  # trained on both: each frame at c23 and at c40 in one batch, as many images as the method's streams
            images = [batch.images[q] for q in config.qualities]
            with autocast(self.device, config.precision):
                logits = self.step_model(torch.cat(images) if len(images) > 1 else images[0])
            loss = classification_loss(logits, batch.label.repeat(len(images)))
            terms = {"cross_entropy": loss}
        for name in self.parts:
            optims[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in self.parts:
            optims[name].step()
        return loss, terms


def validate(model, config, device, val_frames):
    """Frame AUC of the validation split at c23 and c40 (the baseline: at its own quality) and the
    threshold of best accuracy at each, which test.py and eval.py can reuse. val_auc, which picks
    best.json, is the AUC at the last of these qualities: c40 for the detector. Runs the plain model
    (not the compiled or DDP-wrapped one), in eager mode."""
    labels = np.array([f.label for f in val_frames])
    options = ScoreOptions(image_size=config.image_size, batch_size=config.batch_size, workers=config.workers,
                           precision=config.precision, channels_last=config.channels_last)
    result = {}
    for quality in config.qualities:
        scores, _, _ = score_frames(model, config.face_root, val_frames, quality, device, options)
        scored = ~np.isnan(scores)  # a crop that does not decode is skipped and scores NaN
        result[f"val_auc_{quality}"] = float(roc_auc_score(labels[scored], scores[scored]))
        result[f"val_threshold_{quality}"] = best_threshold(labels[scored], scores[scored])[0]
    result["val_auc"] = result[f"val_auc_{config.qualities[-1]}"]
    return result
