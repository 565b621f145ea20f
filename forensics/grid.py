"""The runs the paper's table needs, as train.py commands: the method on each manipulation and on All, the
Xception baseline on each at c23 and at c40. A run that holds all its epochs is skipped, one that stopped
part-way is resumed; the same plan, printed, is a job array for a cluster."""
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import ffpp
from .runs import again_flags, last_complete_epoch, run_parts

METHOD_LABEL = "method"
BASELINE_LABEL = "Xception baseline"


@dataclass
class GridRun:
    """One train.py run of the grid."""
    label: str         # the table row it fills
    dataset: str       # what it trains (and is tested) on
    compression: str   # the baseline's quality; None for the method (trained on c23+c40 pairs)
    out: Path
    epochs: int

    @property
    def flags(self):
        model = ["--model", "detector"] if self.compression is None else \
            ["--model", "xception", "--compression", self.compression]
        return ["--dataset", self.dataset, *model, "--epochs", str(self.epochs), "--out", str(self.out)]

    def parts(self):
        """The files of one epoch: its config.json's (the user's flags may add the classifier or the critic),
        else the model's."""
        return run_parts(self.out, {"model": "detector" if self.compression is None else "xception"})

    def done_epochs(self):
        return last_complete_epoch(self.out, self.parts())[0]


def plan(out, datasets=ffpp.DATASETS, *, epochs, baseline_epochs=None):
    """Every run of the grid under out/: method_<Dataset>, xception_<c23|c40>_<Dataset>."""
    out = Path(out)
    runs = [GridRun(METHOD_LABEL, d, None, out / f"method_{d}", epochs) for d in datasets]
    runs += [GridRun(BASELINE_LABEL, d, c, out / f"xception_{c}_{d}", baseline_epochs or epochs)
             for c in ffpp.COMPRESSIONS for d in datasets]
    return runs


def command(run, train_args, python=sys.executable, nproc=1, script="train.py"):
    """The train.py (or torchrun) command of a run: --resume when it stopped after a complete epoch,
    --overwrite when it stopped inside its first (its files are this run's own)."""
    launcher = [python, script] if nproc <= 1 else \
        ["torchrun", "--standalone", f"--nproc_per_node={nproc}", script]
    return [*launcher, *train_args, *run.flags, *again_flags(run.out, run.parts())]


def pending(runs):
    return [r for r in runs if r.done_epochs() < r.epochs]


def shell_line(cmd):
    return " ".join(shlex.quote(str(c)) for c in cmd)


def train_all(runs, train_args, repo, nproc=1):
    """Train every unfinished run, one after the other, as a user would from the shell."""
    for run in pending(runs):
        cmd = command(run, train_args, nproc=nproc, script=str(Path(repo) / "train.py"))
        print(f"\n$ {shell_line(cmd)}", flush=True)
        if subprocess.run(cmd, cwd=repo).returncode != 0:
            raise SystemExit(f"paper_grid: training {run.out} failed (see above); rerun the same command to "
                             "resume it")


def checkpoints(runs):
    """The grid's runs as paper_table's checkpoints: one folder per (row, dataset, compression)."""
    table = {}
    for run in runs:
        table.setdefault(run.label, {})[run.dataset, run.compression] = str(run.out)
    return table
