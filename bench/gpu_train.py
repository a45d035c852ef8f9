"""Train and evaluate the detectors on the lent GPU machine (issue 3), with the project's own commands.

    python3 bench/gpu_train.py --smoke --out SMOKE  # 30 steps per run: checks the set-up, times a step
    python3 bench/gpu_train.py --auto-steps SMOKE --train-seconds 240 --out DIR
                                                    # the measurement: steps sized to fit (bench/GPU.md)
    python3 bench/gpu_train.py --suite loso ...     # issue 15 item 5: real Ki-67, leave-one-source-out

Runs in parallel, one process each (the GPU is shared; the loss's watershed work runs on the CPU):

  fcn-r101       torchvision fcn_resnet101 (dilated, output stride 8), from scratch: the paper's model
  deeplabv3-r101 torchvision deeplabv3_resnet101, same recipe (comparison, issue 3 item 7)
  unet           the project's U-Net, same recipe (comparison)
  r18-ft         the shipped starter (analysis/starter) fine-tuned further: a candidate next starter

Each process calls `manage.py train_detector` (the same command and options as on a workstation)
and then `manage.py evaluate_detector` on the held-out SYNTHETIC test fields (20, seeds 9500000-19),
the DeepLIIF held-out right halves and the whole DeepLIIF fields.  The classic detector is scored on
the same data by the parent.  Every score goes into one table (Markdown + JSON).

The device image has python3 with torch, torchvision, numpy, scipy, scikit-image, Pillow and tqdm
but not this project's venv: carry Django, asgiref, sqlparse and django-auditlog as wheels
(bench/GPU.md).  Django is configured here with only the apps the two commands import (cases,
annotations, analysis and their dependencies) and an in-memory SQLite database per process, migrated
at start: no server, no Redis, no OpenSlide.  DeepLIIF fields are read from
../shared/data/ihc/deepliif_train (bench/GPU.md links the carried copy there); the licence is
non-commercial, and nothing of them is written to the output.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The shipped starter (analysis/starter/*.pt, one file): 2026-11-27's run fine-tuned v2 into v3.
STARTER = next(iter(sorted((ROOT / "analysis" / "starter").glob("*.pt"))), ROOT / "analysis" / "starter" / "missing.pt")
COMMON = ["--source", "synthetic", "--source", "deepliif", "--source-weights", "3,1",
          "--synthetic-fields", "128", "--synthetic-val", "4", "--batch-size", "16", "--no-progress"]
# name -> train_detector options besides COMMON.  From scratch: lr 5e-4 with a 50-step warm-up (the
# recipe of the starter's phase 2, which trained stably); the fine-tune uses the v2 fine-tune's lr.
RUNS = {
    "fcn-r101": ["--arch", "fcn", "--backbone", "resnet101", "--lr", "5e-4"],
    "deeplabv3-r101": ["--arch", "deeplabv3", "--backbone", "resnet101", "--lr", "5e-4"],
    "unet": ["--arch", "unet", "--lr", "5e-4"],
    "r18-ft": ["--arch", "fcn", "--backbone", "resnet18", "--lr", "1e-4", "--warmup-steps", "20",
               "--init-from", str(STARTER), "--half"],
}
EVAL_DATA = ["--data", "synthetic", "--data", "deepliif:heldout", "--data", "deepliif"]

# Issue 15 item 5, suite "loso": the paper's network and its comparisons trained leave-one-source-out on
# the real Ki-67 fields, from scratch (no starter: it saw DeepLIIF), each scored on the source it never
# saw, so the rows sit beside the classic and CPU rows of bench/RESULTS-accuracy.md.  The recipe is
# bench/train_loso.py's (no false-positive term, point weight 20, scale jitter 0.25 around each source's
# pixel size, HED stain jitter 0.1 / 0.08) at the from-scratch learning rate above.
LOSO_SOURCES = ("bcdata", "shidc", "deepliif")
LOSO_RECIPE = ["--false-positive-weight", "0", "--point-weight", "20", "--scale-jitter", "0.25",
               "--stain-sigma", "0.1", "--stain-bias", "0.08", "--batch-size", "16", "--no-progress"]
LOSO_ARCHS = {name: RUNS[name] for name in ("fcn-r101", "deeplabv3-r101", "unet")}


def loso_runs() -> dict[str, tuple[list[str], list[str]]]:
    """Run name -> (train_detector options, evaluate_detector data) for every (architecture, held-out)."""
    out = {}
    for arch, options in LOSO_ARCHS.items():
        for held in LOSO_SOURCES:
            sources = [a for s in LOSO_SOURCES if s != held for a in ("--source", s)]
            out[f"{arch}-without-{held}"] = ([*sources, *LOSO_RECIPE, *options], ["--data", held])
    return out


def suite_runs(suite: str) -> dict[str, tuple[list[str], list[str]]]:
    """Run name -> (train_detector options, evaluate_detector data) of a suite."""
    if suite == "loso":
        return loso_runs()
    return {name: ([*COMMON, *options], EVAL_DATA) for name, options in RUNS.items()}


SUITE_CLASSIC_DATA = {"synthetic": EVAL_DATA, "loso": [a for s in LOSO_SOURCES for a in ("--data", s)]}


def setup_django(tmp: Path) -> None:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="gpu-bench-only", USE_TZ=True, DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "auditlog",
                        "cases", "annotations", "analysis"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        MEDIA_ROOT=str(tmp / "media"), FILE_UPLOAD_TEMP_DIR=str(tmp / "upload"),
    )
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the model registry is queried by evaluate_detector


def steps_for(name: str, smoke_dir: Path, seconds: float) -> int:
    """Steps that fit `seconds`, from the step rate the smoke run measured (after its first 10 steps,
    which include cuDNN's algorithm search), with all runs sharing the machine as they will."""
    history = json.loads((smoke_dir / name / "train" / "model_card.json").read_text())["training"]["loss_history"]
    first, last = history[0], history[-1]
    if last["step"] > first["step"]:
        rate = (last["seconds"] - first["seconds"]) / (last["step"] - first["step"])
    else:  # a single record: the whole run's mean
        rate = last["seconds"] / last["step"]
    return max(100, min(4000, int(seconds / rate)))


def child(name: str, steps: int, max_minutes: float, out: Path, suite: str) -> int:
    """One run: train_detector, then evaluate_detector on its model."""
    from django.core.management import call_command

    work = out / name
    train_options, data = suite_runs(suite)[name]
    setup_django(Path(tempfile.mkdtemp()))
    call_command("train_detector", *train_options, "--steps", str(steps), "--max-minutes", str(max_minutes),
                 "--checkpoint-every", str(max(steps, 1)), "--out", str(work / "train"), "--name", name)
    call_command("evaluate_detector", "--detector", str(work / "train" / "model.pt"), *data,
                 "--synthetic-fields", "20", "--out", str(work))
    return 0


def score_classic(out: Path, suite: str) -> None:
    """The classic detector on the suite's data (nuclear compartment for the real Ki-67 sources)."""
    from django.core.management import call_command

    setup_django(Path(tempfile.mkdtemp()))
    call_command("evaluate_detector", "--detector", "classic", *SUITE_CLASSIC_DATA[suite], "--synthetic-fields", "20",
                 "--out", str(out / "classic"))


def combine(out: Path, names: list[str], suite: str = "synthetic") -> str:
    """One table of every score, the trained models' validation metrics and timings."""
    from analysis import evaluation

    scores, notes = [], []
    for name in ["classic", *names]:
        path = out / name / "detectors.json"
        if not path.is_file():
            notes.append(f"{name}: no scores (see its log)")
            continue
        for row in json.loads(path.read_text())["rows"]:
            if name != "classic":
                card = json.loads((out / name / "train" / "model_card.json").read_text())
                t = card["training"]
                a = card["architecture"]
                row["detector"] = f"{name} ({a['arch'] if a['arch'] == 'unet' else a['arch'] + '/' + a['backbone']})"
                row["note"] = f"{t['steps']} steps{'' if t['finished'] else ' (time cap)'}, {t['seconds']:.0f} s"
            scores.append(evaluation.DetectorScore(**{k: (float("nan") if v is None else v) for k, v in row.items()}))
    context = {"machine": evaluation.machine_description(), "radius_um": 4.0,
               "runs": "; ".join(f"{n}: train_detector {' '.join(suite_runs(suite)[n][0])}" for n in names)}
    md, _ = evaluation.write_table(scores, out / "detectors-gpu", "Detectors trained on the GPU", context)
    return md.read_text() + "".join(f"\n- {n}" for n in notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--max-minutes", type=float, default=4.5, help="each run stops (and is evaluated) after this")
    parser.add_argument("--suite", choices=("synthetic", "loso"), default="synthetic",
                        help="synthetic: SYNTHETIC + DeepLIIF (issue 3); loso: real Ki-67, leave-one-source-out (issue 15)")
    parser.add_argument("--runs", default="", help="comma-separated subset (default: every run of the suite)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads per run (0: cores / runs)")
    parser.add_argument("--smoke", action="store_true", help="30 steps per run, to check the set-up and time a step")
    parser.add_argument("--auto-steps", type=Path, metavar="SMOKE_DIR",
                        help="size each run's steps to --train-seconds from the step rate of this smoke run")
    parser.add_argument("--train-seconds", type=float, default=240.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--classic", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.child:
        steps = steps_for(args.child, args.auto_steps, args.train_seconds) if args.auto_steps else args.steps
        return child(args.child, steps, args.max_minutes, args.out, args.suite)
    if args.classic:
        score_classic(args.out, args.suite)
        return 0

    runs = suite_runs(args.suite)
    names = [n for n in args.runs.split(",") if n] or list(runs)
    unknown = set(names) - set(runs)
    if unknown:
        parser.error(f"unknown runs {sorted(unknown)}; choose from {', '.join(runs)}")
    steps = 30 if args.smoke else args.steps
    if args.auto_steps:  # a safety cap: the schedule is sized to end well before it
        args.max_minutes = 1.25 * args.train_seconds / 60
    threads = args.threads or max(1, (os.cpu_count() or 2) // (len(names) + 1))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    began = time.monotonic()
    procs = {}
    for name in names:
        log = open(args.out / f"{name}.log", "w")
        sizing = ["--auto-steps", str(args.auto_steps), "--train-seconds", str(args.train_seconds)] if args.auto_steps else []
        procs[name] = subprocess.Popen([sys.executable, __file__, "--child", name, "--suite", args.suite,
                                        "--steps", str(steps), *sizing,
                                        "--max-minutes", str(args.max_minutes), "--out", str(args.out)],
                                       stdout=log, stderr=subprocess.STDOUT, env=env)
    with open(args.out / "classic.log", "w") as log:
        subprocess.run([sys.executable, __file__, "--classic", "--suite", args.suite, "--out", str(args.out)], stdout=log,
                       stderr=subprocess.STDOUT, env=env)
    for name, proc in procs.items():
        rc = proc.wait()
        print(f"{name}: exit {rc} after {time.monotonic() - began:.0f} s", flush=True)
        if rc:
            print((args.out / f"{name}.log").read_text()[-3000:], flush=True)
    for name in names:  # step time, for sizing the main run from the smoke run
        card = args.out / name / "train" / "model_card.json"
        if card.is_file():
            t = json.loads(card.read_text())["training"]
            print(f"{name}: {t['steps']} steps in {t['seconds']:.1f} s = {t['seconds'] / max(t['steps'], 1):.3f} s/step")
    print(combine(args.out, names, args.suite), flush=True)
    print(f"total {time.monotonic() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
