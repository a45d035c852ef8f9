"""Export accepted annotation sessions as a training dataset folder for train_detector (folder:PATH)."""

from django.core.management.base import BaseCommand, CommandError

from analysis.argtypes import share
from annotations import dataset, services
from annotations.models import AnnotationProject
from cases.choices import Marker


class Command(BaseCommand):
    help = "Write accepted annotation sessions as an analysis.datasets folder (manifest.json, images, points)."

    def add_arguments(self, parser):
        parser.add_argument("out", help="new folder to write")
        # One of them: without either every project of every marker went into one folder, and a folder source
        # has no marker per field (PD-L1 and Ki-67 "positive" mean different things).
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--project", type=int, help="project id")
        which.add_argument("--marker", choices=Marker.values, help="every project of this marker")
        parser.add_argument("--mpp", type=float, default=0.5, help="training resolution, µm/px (default 0.5)")
        parser.add_argument("--name", default="", help="dataset name shown in model cards")
        # A nan or negative share put every slide in train without a word (annotations.dataset._split_of).
        parser.add_argument("--val", type=share, default=0.15, help="share of slides in the val split")
        parser.add_argument("--test", type=share, default=0.15, help="share of slides in the test split")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        if opts["val"] + opts["test"] >= 1:
            # Nothing left to train on: the split would put every slide in train, not what was asked.
            raise CommandError(f"--val {opts['val']:g} and --test {opts['test']:g} leave no share of slides to train on")
        if opts["project"] is not None:
            project = AnnotationProject.objects.filter(pk=opts["project"]).first()
            if project is None:
                raise CommandError(f"no annotation project {opts['project']}")
            sessions, name = dataset.accepted_sessions(project), project.name
        else:
            sessions = dataset.accepted_sessions().filter(field__project__marker=opts["marker"])
            name = f"{opts['marker']} annotations"
        try:
            manifest = dataset.do_export_dataset(sessions, opts["out"], mpp=opts["mpp"], name=opts["name"] or name,
                                                 val=opts["val"], test=opts["test"], seed=opts["seed"])
        except services.AnnotationError as exc:
            raise CommandError(str(exc)) from None
        splits = {}
        for entry in manifest["fields"]:
            splits[entry["split"]] = splits.get(entry["split"], 0) + 1
        self.stdout.write(f"{len(manifest['fields'])} {manifest['marker']} field(s) written to {opts['out']} "
                          f"{splits}; train with --source folder:{opts['out']}")
        for left in manifest["left_out"]:
            self.stderr.write(f"left out: session {left['session']} (field {left['field']}): {left['reason']}")
