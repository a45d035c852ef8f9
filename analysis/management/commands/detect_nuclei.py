"""Detect PD-L1 tumour nuclei in one image: thin wrapper over analysis.imageio + analysis.detectors."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from analysis import geojson
from analysis.choices import CLASSIC_DETECTOR
from analysis.imageio import ImageInputError, check_mpp, parse_region, read_image
from analysis.labels import LABEL_NAMES



class Command(BaseCommand):
    help = (
        "Detect tumour nuclei and classify them PD-L1 positive/negative. Writes a CSV with header "
        "x,y,label,score where x,y are pixel coordinates (column, row; pixel centres at integers) of the "
        "FULL input image at level 0 - with --region the region's offset is added back - and label is "
        "positive or negative. --geojson also writes QuPath-compatible detections."
    )

    def add_arguments(self, parser):
        parser.add_argument("image", help="PNG, JPEG, TIFF/OME-TIFF or any OpenSlide whole-slide file")
        parser.add_argument("--mpp", help="µm per pixel of the image; required unless the file stores it "
                            "(a given value overrides the stored one)")
        parser.add_argument("--detector", help="classic, a registered model name or a checkpoint path "
                            "(default: the active model, else classic)")
        parser.add_argument("--compartment", default="membrane", choices=("membrane", "nucleus"),
                            help="classic detector only: where DAB is measured (nucleus for Ki67-like stains)")
        parser.add_argument("--region", help="x,y,w,h in level-0 pixels; required for whole slides larger "
                            "than 8192x8192. Output coordinates stay in full-image pixels")
        parser.add_argument("--out", required=True, help="CSV file to write")
        parser.add_argument("--geojson", help="also write a QuPath GeoJSON FeatureCollection here")

    def handle(self, *args, **opts):
        from analysis import detectors

        try:
            region = parse_region(opts["region"])
            given_mpp = check_mpp(opts["mpp"]) if opts["mpp"] is not None else None
            image = read_image(opts["image"], region)
        except ImageInputError as exc:
            raise CommandError(str(exc)) from None
        mpp = given_mpp or image.source_mpp
        if mpp is None:
            raise CommandError(f"{Path(opts['image']).name} stores no resolution: give --mpp (µm per pixel)")

        try:
            name = opts["detector"] or _default_detector()
            detector = detectors.load_detector(name, compartment=opts["compartment"])
        except LookupError as exc:  # registry.UnknownDetector
            raise CommandError(str(exc).strip("'\"")) from None
        except DatabaseError as exc:
            raise CommandError(f"the model registry is unavailable ({exc}): run `manage.py migrate`, "
                               "or give --detector classic") from None
        except (ValueError, OSError, RuntimeError) as exc:  # unreadable or incompatible checkpoint
            raise CommandError(f"detector {name!r} could not be loaded: {exc}") from None
        found = detector.detect(image.rgb, mpp)
        xy = found.xy.astype(float) + image.origin  # back to full-image coordinates

        _write_atomic(opts["out"], lambda fh: _write_csv(fh, xy, found.labels, found.scores))
        if opts["geojson"]:
            _write_atomic(opts["geojson"], lambda fh: json.dump(to_geojson(xy, found.labels, found.scores), fh))
        n_pos = int((found.labels == 1).sum())
        self.stdout.write(f"{len(found)} nuclei ({n_pos} positive) with {detector.name} at {mpp:g} µm/px "
                          f"-> {opts['out']}")


def _default_detector() -> str:
    try:
        from analysis.registry import default_detector_name
    except ImportError:
        return CLASSIC_DETECTOR
    return default_detector_name()


def _write_csv(fh, xy, labels, scores) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(["x", "y", "label", "score"])
    for (x, y), label, score in zip(xy, labels, scores):
        writer.writerow([f"{x:.2f}", f"{y:.2f}", LABEL_NAMES[int(label)], f"{score:.4f}"])


def to_geojson(xy, labels, scores) -> dict:
    """QuPath detections: Point features with a classification and a score measurement."""
    classes = geojson.qupath_classes()
    features = []
    for (x, y), label, score in zip(xy, labels, scores):
        name, colour = classes[LABEL_NAMES[int(label)]]
        features.append(geojson.point_feature(round(float(x), 2), round(float(y), 2), name, colour,
                                              measurements={"score": round(float(score), 4)}))
    return geojson.feature_collection(features)


def _write_atomic(path, write) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written output."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
