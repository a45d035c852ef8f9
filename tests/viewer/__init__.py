"""Factories and helpers of the viewer tests."""

import hashlib

import factory
import numpy as np
from django.conf import settings
from django.test import Client

from analysis.choices import JobStatus
from analysis.detection_store import write_store
from analysis.models import AnalysisJob
from cases.models import Slide


class SlideFactory(factory.django.DjangoModelFactory):
    """A slide row without pixels (for overlay and corrections: no file is read)."""

    class Meta:
        model = Slide

    file = factory.Sequence(lambda n: f"slides/fake-{n}.tiff")
    original_name = factory.Sequence(lambda n: f"fake-{n}.tiff")
    sha256 = factory.Sequence(lambda n: hashlib.sha256(f"fake-{n}".encode()).hexdigest())
    size_bytes = 1000
    format = "generic-tiff"
    width = 8000
    height = 6000
    level_count = 1
    level_dimensions = factory.LazyAttribute(lambda o: [[o.width, o.height]])
    level_downsamples = [1.0]
    mpp_x = 0.5
    mpp_y = 0.5


class DoneJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AnalysisJob

    slide = factory.SubFactory(SlideFactory)
    detector = "classic"
    status = JobStatus.DONE


def random_detections(n, width, height, seed=0, positive_fraction=0.4):
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0, 0], [width, height], size=(n, 2)).astype(np.float32)
    labels = np.where(rng.random(n) < positive_fraction, 1, 2).astype(np.int8)
    scores = rng.random(n).astype(np.float32)
    return xy, labels, scores


def job_with_result(case, n=5000, seed=0, **slide_kwargs):
    """A done job on a fresh slide of `case`, with `n` random detections in its store."""
    slide = SlideFactory(case=case, **slide_kwargs)
    xy, labels, scores = random_detections(n, slide.width, slide.height, seed)
    relative = f"jobs/test-{slide.pk}/detections.store"
    write_store(settings.MEDIA_ROOT / relative, xy, labels, scores, width=slide.width, height=slide.height,
                mpp=slide.mpp_x)
    pos, neg = int((labels == 1).sum()), int((labels == 2).sum())
    job = DoneJobFactory(slide=slide, result_file=relative,
                         summary={"counts": {"positive": pos, "negative": neg, "other": 0},
                                  "tps": 100 * pos / (pos + neg), "detections": n})
    job.truth = (xy, labels, scores)
    return job


def client_for(user):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client
