"""Evaluate detectors on held-out data and write a comparison table: thin wrapper over analysis.evaluation."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from analysis import evaluation
from analysis.choices import CLASSIC_DETECTOR
from analysis.argtypes import positive_float, positive_int


class Command(BaseCommand):
    help = ("Evaluate nucleus detectors (one-to-one matching within --radius-um) on SYNTHETIC held-out "
            "fields, the real DeepLIIF, SHIDC-B-Ki-67 and BCData fields or an exported folder; writes "
            "detectors.md/.json to --out.")

    def add_arguments(self, parser):
        parser.add_argument("--detector", action="append",
                            help="classic, a registered model name or a checkpoint path (repeatable; default classic)")
        parser.add_argument("--data", action="append", help=f"{' | '.join(evaluation.DATA_KINDS)} (repeatable; "
                            "default synthetic and deepliif)")
        # Checked by the parser: a negative field count or an infinite radius used to write a table of NaN scores.
        parser.add_argument("--radius-um", type=positive_float, default=4.0, help="matching radius in µm")
        parser.add_argument("--synthetic-fields", type=positive_int, default=6)
        parser.add_argument("--out", default="evaluation", help="output folder")

    def handle(self, *args, **opts):
        from analysis.detectors import ClassicDetector, load_detector
        from analysis.postprocess import NonFiniteOutputs

        names = opts["detector"] or [CLASSIC_DETECTOR]
        models = {}
        for name in names:
            if name == CLASSIC_DETECTOR:
                continue
            try:
                models[name] = load_detector(name)
            except LookupError as exc:
                raise CommandError(str(exc)) from None
            except DatabaseError as exc:
                raise CommandError(f"the model registry is unavailable ({exc}): run `manage.py migrate`") from None
            except (ValueError, OSError, RuntimeError) as exc:
                raise CommandError(f"detector {name!r} could not be loaded: {exc}") from None
        scores, skipped = [], []
        for spec in opts["data"] or ["synthetic", "deepliif"]:
            try:
                kwargs = {"n": opts["synthetic_fields"]} if spec == "synthetic" else {}
                data = evaluation.load_data(spec, **kwargs)
            except evaluation.EvaluationDataMissing as exc:
                self.stderr.write(f"skipped {spec}: {exc}")
                skipped.append(f"{spec}: {exc}")
                continue
            except ValueError as exc:  # unknown spec, or a folder that fails validation
                raise CommandError(str(exc)) from None
            for name in names:
                # Classic measures DAB where the marker is: membrane for PD-L1, nucleus for Ki67 (DeepLIIF).
                detector = ClassicDetector(compartment=data.compartment) if name == CLASSIC_DETECTOR else models[name]
                try:
                    score = evaluation.score_detector(detector, data, opts["radius_um"])
                except NonFiniteOutputs:  # broken weights: postprocess refuses to read NaN / infinite maps
                    raise CommandError(f"the checkpoint of detector {name!r} (sha256 {detector.sha256[:12]}) produced "
                                       f"NaN or infinite outputs on {spec}: its weights are broken (a diverged "
                                       "training run?); evaluate another checkpoint") from None
                scores.append(score)
                self.stdout.write(f"{score.detector} on {score.data}: F1 {score.f1['detection']:.3f} "
                                  f"(pos {score.f1['positive']:.3f}, neg {score.f1['negative']:.3f})")
        if not scores:
            raise CommandError("no evaluation data available: " + "; ".join(skipped))
        context = {"machine": evaluation.machine_description(), "radius_um": opts["radius_um"],
                   "skipped": skipped}
        md, js = evaluation.write_table(scores, f"{opts['out']}/detectors", "Detector evaluation", context)
        self.stdout.write(f"wrote {md} and {js}")
