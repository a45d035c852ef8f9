"""Export accepted annotation sessions as a training dataset folder for train_detector (folder:PATH)."""

from django.core.management.base import BaseCommand, CommandError

from annotations import dataset, services
from annotations.models import AnnotationProject


class Command(BaseCommand):
    help = "Write accepted annotation sessions as an analysis.datasets folder (manifest.json, images, points)."

    def add_arguments(self, parser):
        parser.add_argument("out", help="new folder to write")
        parser.add_argument("--project", type=int, help="project id (default: every project)")
        parser.add_argument("--mpp", type=float, default=0.5, help="training resolution, µm/px (default 0.5)")
        parser.add_argument("--name", default="", help="dataset name shown in model cards")
        parser.add_argument("--val", type=float, default=0.15, help="share of slides in the val split")
        parser.add_argument("--test", type=float, default=0.15, help="share of slides in the test split")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        project = None
        if opts["project"] is not None:
            project = AnnotationProject.objects.filter(pk=opts["project"]).first()
            if project is None:
                raise CommandError(f"no annotation project {opts['project']}")
        try:
            manifest = dataset.do_export_dataset(dataset.accepted_sessions(project), opts["out"], mpp=opts["mpp"],
                                                 name=opts["name"] or (project.name if project else ""),
                                                 val=opts["val"], test=opts["test"], seed=opts["seed"])
        except services.AnnotationError as exc:
            raise CommandError(str(exc)) from None
        splits = {}
        for entry in manifest["fields"]:
            splits[entry["split"]] = splits.get(entry["split"], 0) + 1
        self.stdout.write(f"{len(manifest['fields'])} field(s) written to {opts['out']} {splits}; "
                          f"train with --source folder:{opts['out']}")
        for left in manifest["left_out"]:
            self.stderr.write(f"left out: session {left['session']} (field {left['field']}): {left['reason']}")
