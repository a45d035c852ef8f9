"""Compare FCN-ResNet101, DeepLabV3-ResNet101, U-Net and the classic pipeline on the same data.

    DEBUG=1 .venv/bin/python bench/detector_comparison.py [--fcn CKPT] [--deeplabv3 CKPT] [--unet CKPT]

Writes bench/RESULTS-detectors.md and .json.  A network without a checkpoint
is built with random weights and its row says "untrained (random weights)":
such numbers only show that the pipeline runs, not what the architecture can
do.  The shipped starter model (analysis/starter/) is added when present.
Kept small so that it runs in a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdl1site.settings")

UNTRAINED = "untrained (random weights)"


def network(arch: str, checkpoint: str | None):
    from analysis.detectors import ModelDetector
    from analysis.nets import DetectorConfig, build_detector

    if checkpoint:
        return ModelDetector.from_checkpoint(checkpoint, name=f"{arch} ({Path(checkpoint).name})"), "trained checkpoint"
    import torch

    torch.manual_seed(0)
    backbone = "resnet101" if arch != "unet" else ""
    config = DetectorConfig(arch=arch, backbone=backbone or "resnet101", mpp=0.5)
    model = build_detector(arch, config.backbone).eval()
    label = f"{arch}-{backbone}" if backbone else "unet"
    return ModelDetector(model, config, name=label, version="untrained"), UNTRAINED


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for arch in ("fcn", "deeplabv3", "unet"):
        parser.add_argument(f"--{arch}", metavar="CKPT", help=f"trained {arch} checkpoint (else random weights)")
    parser.add_argument("--synthetic-fields", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--radius-um", type=float, default=4.0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-detectors"))
    args = parser.parse_args(argv)

    import django

    django.setup()
    import torch

    from analysis import evaluation
    from analysis.detectors import ClassicDetector

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    datasets = [evaluation.synthetic_data(args.synthetic_fields, args.size)]
    skipped = []
    try:
        datasets.append(evaluation.deepliif_data())
        datasets.append(evaluation.deepliif_data(heldout=True))  # never trained on by the starter
    except evaluation.EvaluationDataMissing as exc:
        skipped.append(str(exc))
        print(f"skipped DeepLIIF: {exc}")

    detectors = [network(arch, getattr(args, arch)) for arch in ("fcn", "deeplabv3", "unet")]
    starter = ROOT / "analysis" / "starter"
    for ckpt in sorted(starter.glob("*.pt")) if starter.is_dir() else []:
        from analysis.detectors import ModelDetector

        detectors.append((ModelDetector.from_checkpoint(ckpt, name=ckpt.stem),
                          "shipped starter model, trained on SYNTHETIC fields + the left halves of the DeepLIIF fields "
                          "(so its whole-field DeepLIIF row is partly in-sample; analysis/starter/MODEL_CARD.md)"))

    scores = []
    for data in datasets:
        # Honest caveat: classic's defaults were tuned on this generator and on these two DeepLIIF fields.
        tuned = "defaults tuned on the same generator" if data.synthetic else "defaults tuned on these fields (in-sample)"
        runs = detectors + [(ClassicDetector(compartment=data.compartment),
                             f"classic, {data.compartment} compartment; {tuned}")]
        for detector, note in runs:
            score = evaluation.score_detector(detector, data, args.radius_um, note=note)
            scores.append(score)
            print(f"{score.detector:28s} {data.name[:40]:40s} F1 {score.f1['detection']:.3f} {score.seconds:.1f}s",
                  flush=True)
    context = {
        "machine": f"{evaluation.machine_description()} (this run: torch {torch.__version__}, "
                   f"{torch.get_num_threads()} threads, fp32 on CPU)",
        "date": time.strftime("%Y-%m-%d"),
        "radius_um": args.radius_um,
        "networks": "FCN / DeepLabV3 with dilated ResNet-101 (output stride 8), U-Net width 32 (analysis.nets); "
                    "rows marked 'untrained (random weights)' had no checkpoint",
        "data": "; ".join(d.name for d in datasets),
        "skipped": skipped,
        "command": " ".join(["python bench/detector_comparison.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    md, js = evaluation.write_table(scores, args.out, "Detector comparison", context)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
