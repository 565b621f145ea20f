"""Paired-seed experiments (experiments.py): named variants, each a set of train.py flags, each trained once per
seed and scored on the test split as a user would (train.py, then test.py and eval.py at c23 and at c40), and
their summary: each variant's mean and interval over seeds, and its paired difference against reference
variants (the same seed gives both the same data order, and the same initial weights where the model is the
same: the detector and the one-stream Xception draw theirs differently).

A run lives in OUT/<variant>_seed<N>; its state is read from its files, so an interrupted experiment goes on
where it stopped and seeds can be added later: scored at both compressions (at its best epoch) = done; all
epochs trained = scored only; some epochs complete = train.py --resume; a run's files but no complete epoch =
train.py --overwrite. A run is reused only if its config.json holds the settings asked for (runs.py compares
them), so runs that differ are never merged."""
import csv
import io
import re
import shlex
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from models.checkpoints import checkpoint_path

from . import ffpp, stats
from .cli import parse_labelled
from .fileio import read_json, write_bytes
from .grid import shell_line
from .runs import again_flags, best_epoch, checkpoint_files, read_history, run_config, run_parts, \
    setting_differences
from .training import RELEASED_SETTINGS, TrainConfig, as_flags

TEST_METRICS = {"auc": "frame AUC", "video_auc": "video AUC", "acc": "ACC"}  # from eval.py's metrics.json
NAME = re.compile(r"[A-Za-z0-9_-]+")  # a variant name is part of a folder name


def val_metrics(last):
    """The validation figures of history.json: the final epoch's AUC and the mean of the last epochs'."""
    return {"val_auc_final": "val AUC, final epoch", f"val_auc_last{last}": f"val AUC, mean of last {last} epochs"}


@dataclass(frozen=True)
class Variant:
    name: str
    flags: tuple = ()                             # train.py flags, after the set's and the user's
    compressions: tuple = ffpp.COMPRESSIONS       # where it is tested


@dataclass(frozen=True)
class ExperimentSet:
    variants: tuple
    references: tuple           # (variant name, compressions or None for all): differences are taken against them
    flags: tuple = ()           # train.py flags of every variant, before the user's
    epochs: int = 15
    margins: bool = False       # print the no-loss and equivalence tests (results.csv always has them)


CLASSIFIER_WEIGHT = "1"         # the ablation's weights for the two optional losses (train.py leaves both off)
ADVERSARIAL_WEIGHT = "0.1"

SETS = {
    # train.py's fast path (bf16 autocast, channels_last, torch.compile, fused Adam, uint8 loader on CUDA)
    # against the released fp32 path, from scratch, as benchmarks/README.md reports it
    "precision": ExperimentSet(
        variants=(Variant("default"), Variant("fp32", tuple(as_flags(RELEASED_SETTINGS)))),
        references=(("fp32", None),), flags=("--pretrained", "none"), epochs=6, margins=True),
    # the method, without each of its losses, with the optional ones, and the Xception baseline trained at
    # c23, at c40 and on both: does the method beat the baseline at c40, and which of its losses matter?
    "ablation": ExperimentSet(
        variants=(Variant("method"),
                  Variant("no_pairing", ("--pairing-weight", "0")),
                  Variant("no_attention", ("--attention-weight", "0")),
                  Variant("no_mask", ("--mask-weight", "0")),
                  Variant("mean_metric", ("--metric-reduction", "mean")),
                  Variant("classifier", ("--classifier-weight", CLASSIFIER_WEIGHT)),
                  Variant("adversarial", ("--adversarial-weight", ADVERSARIAL_WEIGHT)),
                  Variant("xception_c23", ("--model", "xception", "--compression", "c23")),
                  Variant("xception_c40", ("--model", "xception", "--compression", "c40")),
                  Variant("xception_both", ("--model", "xception", "--compression", "both"))),
        references=(("method", None), ("xception_c40", ("c40",)))),
}


def _qualified(name, qualifiers, what, text, valid=True):
    """(name, compressions or None) of NAME[@c23][@c40], or a ValueError naming the flag."""
    if not valid or not NAME.fullmatch(name) or any(q not in ffpp.COMPRESSIONS for q in qualifiers):
        raise ValueError(f"{what} {text!r}: a name of letters, digits, '-' and '_', optionally followed by "
                         f"@c23 or @c40")
    return name, tuple(dict.fromkeys(qualifiers)) or None


def parse_variant(text):
    """--variant NAME='train.py flags' (NAME@c40=... tests it at c40 only; cli.parse_labelled's grammar) as
    a Variant."""
    name, qualifiers, flags = parse_labelled(text)
    if flags is None:
        raise ValueError(f"--variant {text!r}: use NAME='train.py flags', e.g. no_mask='--mask-weight 0'")
    name, compressions = _qualified(name, qualifiers, "--variant", text)
    return Variant(name, tuple(shlex.split(flags)), compressions or ffpp.COMPRESSIONS)


def parse_reference(text):
    """--reference NAME or NAME@c40 as (name, compressions or None)."""
    name, qualifiers, value = parse_labelled(text)
    return _qualified(name, qualifiers, "--reference", text, valid=value is None)


def choose_variants(set_name, custom, only=None):
    """The set's variants followed by the user's, or with only those of them named in only (in their own
    order); a name used twice or an unknown name in only is refused."""
    variants = list(SETS[set_name].variants if set_name else ()) + list(custom)
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"variant {twice[0]} is named twice; give each --variant its own name")
    unknown = [n for n in only or () if n not in names]
    if unknown:
        raise ValueError(f"--only {unknown[0]}: not a variant here ({', '.join(names)})")
    if only:
        variants = [v for v in variants if v.name in only]
    if not variants:
        raise ValueError("no variants: pass --set precision|ablation and/or --variant NAME='flags'")
    return variants


def flag_values(flags):
    """{name: value} of a train.py flag list, the last one winning as in argparse; a flag alone is True."""
    values, i = {}, 0
    while i < len(flags):
        token = str(flags[i])
        if token.startswith("--"):
            name, sep, value = token[2:].partition("=")
            if not sep:
                has_value = i + 1 < len(flags) and not str(flags[i + 1]).startswith("--")
                value = str(flags[i + 1]) if has_value else True
                i += has_value
            values[name] = value
        i += 1
    return values


@dataclass
class Run:
    """One (variant, seed): its folder, its train.py flags and how it is tested."""
    variant: Variant
    seed: int
    out: Path
    epochs: int
    train_args: list            # data, budget and system flags, the set's and the user's: before the variant's
    test_args: list = field(default_factory=list)   # test.py's data and system flags

    @property
    def name(self):
        return self.out.name

    @property
    def train_flags(self):
        return [*self.train_args, *self.variant.flags, "--out", str(self.out), "--seed", str(self.seed)]

    def flag(self, name, default=None):
        return flag_values(self.train_flags).get(name, default)

    def settings(self):
        """This run's train.py flags by config.json's names: {'mask_weight': '0', ...}, as text."""
        return {name.replace("-", "_"): value for name, value in flag_values(self.train_flags).items()}

    def parts(self):
        """The files one epoch of this run saves."""
        return run_parts(self.out, self.settings())

    def history(self):
        return read_history(self.out)

    def trained(self):
        return [h["epoch"] for h in self.history()] == list(range(1, self.epochs + 1))

    def best_epoch(self):
        return best_epoch(self.out)

    def metrics_path(self, compression):
        return self.out / f"test_{compression}" / "metrics.json"

    def scored(self, compression):
        """Whether eval.py's metrics at this compression are those of the run's current best epoch."""
        path = self.metrics_path(compression)
        return path.exists() and read_json(path, "metrics").get("epoch") == self.best_epoch()

    def state(self):
        """done, test (trained, not scored), unscorable (trained, not scored, checkpoints removed), resume,
        overwrite (a run's files but no complete epoch) or new."""
        if self.trained():
            if all(self.scored(c) for c in self.variant.compressions):
                return "done"
            best = self.best_epoch()
            scorable = best is not None and all(checkpoint_path(self.out, p, best).exists() for p in self.parts())
            return "test" if scorable else "unscorable"
        if len(self.history()) > self.epochs:
            raise ValueError(f"{self.out}: holds {len(self.history())} epochs, more than --epochs {self.epochs}; "
                             "pass its number of epochs, or another --out")
        again = again_flags(self.out, self.parts())
        return again[0][2:] if again else "new"

    def check(self):
        """Refuse to reuse a run whose config.json differs from what this run's flags (over train.py's defaults)
        ask for: the same folder name with another --lr, --image-size or variant definition is another run."""
        wanted = {**asdict(TrainConfig()), **self.settings()}
        found = setting_differences(run_config(self.out), wanted)
        if found:
            raise ValueError(f"{self.out}: trained with other settings than variant {self.variant.name} asks for "
                             f"here: {', '.join(found)}. Runs with other settings are not merged: pass the settings "
                             "it was trained with, give the variant a new name, or use another --out")

    def commands(self, python="python", repo=None):
        """The commands that finish this run from its state, as (log name, command)."""
        script = (lambda s: s) if repo is None else (lambda s: str(Path(repo) / s))
        state = self.state()
        steps = []
        if state in ("new", "resume", "overwrite"):
            again = {"resume": ["--resume"], "overwrite": ["--overwrite"]}.get(state, [])
            steps.append(("train", [python, script("train.py"), *self.train_flags, *again]))
        if state in ("new", "resume", "overwrite", "test"):
            precision = self.flag("precision")
            for c in self.variant.compressions:
                if state == "test" and self.scored(c):
                    continue
                folder = self.out / f"test_{c}"
                steps.append((f"test_{c}", [
                    python, script("test.py"), *self.test_args, "--checkpoint-dir", str(self.out), "--epoch", "best",
                    "--compression", c, "--dataset", self.flag("dataset", "All"), "--out", str(folder),
                    *(["--precision", precision] if precision and precision is not True else [])]))
                steps.append((f"eval_{c}", [python, script("eval.py"), "--scores", str(folder / "scores.csv"),
                                            "--no-plots"]))
        return steps

    def results(self, last):
        """{(compression, metric): value} of a trained run: eval.py's test metrics where scored, and the
        validation AUCs of its history (final epoch, mean of the last `last`)."""
        values = {}
        if not self.trained():
            return values
        for c in self.variant.compressions:
            if self.scored(c):
                metrics = read_json(self.metrics_path(c), "metrics")
                values.update({(c, m): metrics[m] for m in TEST_METRICS if metrics.get(m) is not None})
        history = self.history()
        for c in ffpp.COMPRESSIONS:
            key = f"val_auc_{c}"
            if all(key in h for h in history):
                values[c, "val_auc_final"] = history[-1][key]
                values[c, f"val_auc_last{last}"] = statistics.mean(h[key] for h in history[-last:])
        return values


def plan(variants, seeds, out, epochs, train_args, test_args):
    """Every (variant, seed), seed by seed, so the pairs of a seed finish together."""
    return [Run(v, s, Path(out) / f"{v.name}_seed{s}", epochs, list(train_args), list(test_args))
            for s in seeds for v in variants]


def print_line(run, python="python"):
    """One shell line that finishes a run (for a cluster's job array), or None when it is done."""
    steps = run.commands(python)
    return " && ".join(shell_line(cmd) for _, cmd in steps) if steps else None


def execute(run, python, repo, keep_checkpoints):
    """Finish one run as a user would from the shell, each step's output in RUN/<step>.log; returns None, or
    the failed step's description."""
    state = run.state()
    if state == "done":
        print(f"{run.name}: reusing its {run.epochs} epochs and test metrics", flush=True)
        return None
    if state == "unscorable":
        print(f"{run.name}: trained, but its checkpoints were removed before it was scored: only its validation "
              "figures are reported (delete the folder to train and score it again)", flush=True)
        return None
    if state == "overwrite" and run.history():
        print(f"{run.name}: its {len(run.history())} epochs cannot be resumed (checkpoints removed): trained again "
              "from the start", flush=True)
    run.out.mkdir(parents=True, exist_ok=True)
    if state in ("new", "overwrite"):  # test figures of an earlier training must not pass for the new one's
        for c in ffpp.COMPRESSIONS:
            run.metrics_path(c).unlink(missing_ok=True)
    for step, cmd in run.commands(python, repo):
        log = run.out / f"{step}.log"
        with open(log, "a" if step == "train" else "w") as f:
            f.write(f"$ {shell_line(cmd)}\n")
            f.flush()
            code = subprocess.run(cmd, cwd=repo, stdout=f, stderr=subprocess.STDOUT).returncode
        if code != 0:
            return f"{run.name}: {Path(cmd[1]).name} exited with {code}; see {log}"
        print(f"{run.name}: {step} done" + (f" ({state})" if step == "train" and state != "new" else ""),
              flush=True)
    if not keep_checkpoints:  # about 0.3 GB an epoch; scored already
        for path in checkpoint_files(run.out):
            path.unlink()
    return None


def run_all(runs, jobs, python, repo, keep_checkpoints):
    """Finish every run, `jobs` at a time; a failed run stops nothing else and is reported at the end."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        failures = [f for f in pool.map(lambda r: execute(r, python, repo, keep_checkpoints), runs) if f]
    if failures:
        raise SystemExit("experiments: " + "; ".join(failures) + ". Rerun the same command to go on from there.")


def collect(runs, last):
    return {(r.variant.name, r.seed): r.results(last) for r in runs}


def metrics_of(last):
    return {**TEST_METRICS, **val_metrics(last)}


def summarise(values, variants, seeds, references, metrics, tolerance, level=stats.LEVEL):
    """Rows of results.csv: each variant's statistics per (compression, metric), then its paired difference
    against each reference (only seeds where both have the value)."""
    rows = []
    for v in variants:
        for c in ffpp.COMPRESSIONS:
            for m in metrics:
                have = [s for s in seeds if (c, m) in values.get((v.name, s), {})]
                if have:
                    rows.append({"kind": "variant", "variant": v.name, "reference": "", "compression": c,
                                 "metric": m, "seeds": have, **stats.describe(
                                     [values[v.name, s][c, m] for s in have], level)})
    for ref, compressions in references:
        for v in variants:
            if v.name == ref:
                continue
            for c in compressions or ffpp.COMPRESSIONS:
                for m in metrics:
                    have = [s for s in seeds if (c, m) in values.get((v.name, s), {})
                            and (c, m) in values.get((ref, s), {})]
                    if have:
                        rows.append({"kind": "difference", "variant": v.name, "reference": ref, "compression": c,
                                     "metric": m, "seeds": have, **stats.paired(
                                         [values[v.name, s][c, m] for s in have],
                                         [values[ref, s][c, m] for s in have], tolerance, level)})
    return rows


CSV_COLUMNS = ("kind", "variant", "reference", "compression", "metric", "n", "mean", "sd", "se", "ci_low",
               "ci_high", "p", "p_no_loss", "p_equivalent", "sd_reference_pair", "seeds", "values")


def results_csv(rows, values):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        own = [values[r["variant"], s][r["compression"], r["metric"]] for s in r["seeds"]]
        cells = {"ci_low": r["ci"][0] if r["ci"] else None, "ci_high": r["ci"][1] if r["ci"] else None,
                 "seeds": " ".join(map(str, r["seeds"])),
                 "values": " ".join(repr(v) for v in (r["differences"] if r["kind"] == "difference" else own))}
        writer.writerow({k: "" if v is None else v for k, v in
                         {**{k: r.get(k) for k in CSV_COLUMNS}, **cells}.items()})
    return buffer.getvalue()


def runs_csv(runs, values, metrics):
    """One row per run: every figure it has, for one's own analysis."""
    columns = [f"{c}_{m}" for c in ffpp.COMPRESSIONS for m in metrics]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["variant", "seed", "best_epoch", *columns])
    for r in runs:
        v = values.get((r.variant.name, r.seed))
        if v:
            writer.writerow([r.variant.name, r.seed, r.best_epoch(),
                             *("" if v.get((c, m)) is None else v[c, m] for c in ffpp.COMPRESSIONS for m in metrics)])
    return buffer.getvalue()


def _num(value, sign=False):
    return "n/a" if value is None else f"{value:+.4f}" if sign else f"{value:.4f}"


def _p(value):
    return "n/a" if value is None else "< 0.001" if value < 0.001 else f"{value:.3f}"


def _cell(row, sign=False):
    if row is None:
        return "n/a"
    text = _num(row["mean"], sign)
    if row["sd"] is not None:
        text += f" ± {row['sd']:.4f}"
    if row["ci"] is not None:
        text += f" [{_num(row['ci'][0], sign)}, {_num(row['ci'][1], sign)}]"
    if row["kind"] == "difference" and row["p"] is not None:
        text += f", p {_p(row['p'])}"
    return text


def _header(first, metrics):
    return ["| " + " | ".join([first, "n", *metrics.values()]) + " |", "|---|---:|" + "---|" * len(metrics)]


def _verdict(p, alpha):
    return "n/a" if p is None else f"{'shown' if p < alpha else 'not shown'} (p {_p(p)})"


def results_markdown(rows, metrics, title, references, tolerance, alpha, margins):
    index = {(r["kind"], r["variant"], r["reference"], r["compression"], r["metric"]): r for r in rows}
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    lines = [f"# {title}", "",
             "Test-split figures are those of each run's validation-chosen epoch (best.json), with eval.py's "
             "threshold of best validation accuracy; validation AUCs come from history.json. Each cell: mean "
             "± SD over seeds [95% confidence interval]; n = seeds.", ""]
    for c in ffpp.COMPRESSIONS:
        lines += [f"## Variants at {c}", "", *_header("variant", metrics)]
        for v in variants:
            cells = [index.get(("variant", v, "", c, m)) for m in metrics]
            if any(cells):
                n = max(r["n"] for r in cells if r)
                lines.append(f"| {v} | {n} | " + " | ".join(_cell(r) for r in cells) + " |")
        lines.append("")
    for ref, compressions in references:
        for c in compressions or ffpp.COMPRESSIONS:
            body = []
            for v in variants:
                cells = [index.get(("difference", v, ref, c, m)) for m in metrics]
                if any(cells):
                    n = max(r["n"] for r in cells if r)
                    body.append(f"| {v} - {ref} | {n} | " + " | ".join(_cell(r, sign=True) for r in cells) + " |")
            if body:
                lines += [f"## Paired differences against {ref} at {c}", "",
                          "Same seed, variant minus reference: mean ± SD [95% CI], p of the two-sided paired t-test.",
                          "", *_header("difference", metrics), *body, ""]
    if margins:
        lines += [f"## Margin tests against ±{tolerance} (level {alpha})", "",
                  f"no loss: the variant is not worse than the reference by {tolerance} or more (one-sided t-test); "
                  f"equivalent: neither worse nor better by that much (TOST). SD ref - ref: the SD of the "
                  "difference between two reference runs of different seeds, what one pair can resolve.", "",
                  "| difference | compression | figure | n | mean (SE) | 95% CI | SD ref - ref | no loss "
                  "| equivalent |", "|---|---|---|---:|---:|---|---:|---|---|"]
        for r in rows:
            if r["kind"] == "difference":
                ci = "n/a" if r["ci"] is None else f"[{_num(r['ci'][0], True)}, {_num(r['ci'][1], True)}]"
                cells = [f"{r['variant']} - {r['reference']}", r["compression"], metrics[r["metric"]], str(r["n"]),
                         f"{_num(r['mean'], True)} ({_num(r['se'])})", ci, _num(r["sd_reference_pair"]),
                         _verdict(r["p_no_loss"], alpha), _verdict(r["p_equivalent"], alpha)]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def plot(rows, path, references):
    """One panel per (compression, test figure): each variant's mean and 95% interval; the references'
    means as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(len(ffpp.COMPRESSIONS), len(TEST_METRICS), squeeze=False,
                             figsize=(4 * len(TEST_METRICS), 1 + (1.2 + 0.3 * len(variants)) * len(ffpp.COMPRESSIONS)))
    index = {(r["variant"], r["compression"], r["metric"]): r for r in rows if r["kind"] == "variant"}
    for ax, (c, (m, label)) in zip(axes.flat, ((c, mm) for c in ffpp.COMPRESSIONS for mm in TEST_METRICS.items())):
        for y, v in enumerate(variants):
            r = index.get((v, c, m))
            if r is None:
                continue
            ci = r["ci"] or [r["mean"], r["mean"]]
            ax.errorbar(r["mean"], y, xerr=[[r["mean"] - ci[0]], [ci[1] - r["mean"]]], fmt="o", color="C0",
                        capsize=3)
        for i, (ref, compressions) in enumerate(references):
            if (ref, c, m) in index and c in (compressions or ffpp.COMPRESSIONS):
                ax.axvline(index[ref, c, m]["mean"], color=f"C{i + 1}", ls="--", lw=0.8, label=ref)
        ax.set_yticks(range(len(variants)), variants)
        ax.set_ylim(len(variants) - 0.5, -0.5)
        ax.set_title(f"{label}, test {c}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    lines = {}  # a reference tested at c40 only has no line in the c23 panels: gather each from any panel
    for ax in axes.flat:
        lines.update((label, handle) for handle, label in zip(*ax.get_legend_handles_labels()) if label not in lines)
    labels, handles = list(lines), list(lines.values())
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize=8, title="reference mean")
    fig.suptitle("mean and 95% interval over seeds")
    fig.tight_layout(rect=(0, 0.8 / fig.get_figheight() if handles else 0, 1, 1))  # 0.8 inch for the legend
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def write_results(out, runs, values, rows, metrics, title, references, tolerance, alpha, margins):
    """results.csv, results.md, results.png and runs.csv in out; returns the Markdown text."""
    out = Path(out)
    text = results_markdown(rows, metrics, title, references, tolerance, alpha, margins)
    write_bytes(out / "results.md", text.encode())
    write_bytes(out / "results.csv", results_csv(rows, values).encode())
    write_bytes(out / "runs.csv", runs_csv(runs, values, metrics).encode())
    plot(rows, out / "results.png", references)
    return text
