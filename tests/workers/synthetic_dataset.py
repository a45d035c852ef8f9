"""A SYNTHETIC exported-dataset folder (analysis.datasets folder:PATH format) for training-run tests:
a few rendered H-DAB fields with their exact points, split train / val. Not tissue."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from analysis.datasets import DATASET_FORMAT, DATASET_VERSION, synthetic_samples
from analysis.labels import LABEL_NAMES


def write_synthetic_dataset(root: Path, train: int = 2, val: int = 1, size: int = 96, mpp: float = 0.5,
                            marker: str | None = "PD-L1") -> Path:
    """`marker`: the manifest's (the synthetic fields are rendered as PD-L1 fields); None writes none."""
    root.mkdir(parents=True, exist_ok=True)
    fields = []
    for split, n in (("train", train), ("val", val)):
        for sample in synthetic_samples(n, split, mpp=mpp, size=size):
            Image.fromarray(sample.rgb).save(root / f"{sample.name}.png")
            height, width = sample.rgb.shape[:2]
            # The renderer may centre a nucleus on the field's outer edge; a point file keeps inside pixels.
            rows = ["x,y,label"] + [f"{x:.2f},{y:.2f},{LABEL_NAMES[int(c)]}" for (x, y), c in
                                    zip(np.asarray(sample.xy), np.asarray(sample.labels))
                                    if -0.5 <= x < width - 1 and -0.5 <= y < height - 1]
            (root / f"{sample.name}.csv").write_text("\n".join(rows) + "\n")
            fields.append({"id": sample.name, "image": f"{sample.name}.png", "points": f"{sample.name}.csv",
                           "mpp": mpp, "split": split})
    manifest = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "name": "SYNTHETIC training-run test data",
                "synthetic": True, "licence": "SYNTHETIC (analysis.synthetic)", "fields": fields}
    if marker is not None:
        manifest["marker"] = marker
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root
