"""python manage.py analysis_job list|start|cancel|retry ... — manage queued analyses from a shell."""

import json

from django.core.management.base import BaseCommand, CommandError

from analysis.models import AnalysisJob
from cases.models import Slide
from workers.api import AnalysisJobSerializer
from workers.services import JobError, do_cancel_job, do_retry_job, do_start_job


class Command(BaseCommand):
    help = "List, start (on the queue), cancel or retry analysis jobs; prints jobs as JSON."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list")
        listing.add_argument("--slide", type=int)
        listing.add_argument("--status")
        start = sub.add_parser("start", help="queue an analysis for qcluster workers")
        start.add_argument("slide", type=int, help="slide id")
        start.add_argument("--detector")
        for name in ("cancel", "retry"):
            sub.add_parser(name).add_argument("job", type=int)

    def handle(self, *args, action, **options):
        try:
            if action == "list":
                jobs = AnalysisJob.objects.all()
                if options["slide"]:
                    jobs = jobs.filter(slide_id=options["slide"])
                if options["status"]:
                    jobs = jobs.filter(status=options["status"])
                return self._print(list(jobs[:100]))
            if action == "start":
                slide = Slide.objects.filter(pk=options["slide"]).first()
                if slide is None:
                    raise CommandError(f"no slide with id {options['slide']}")
                return self._print([do_start_job(slide, detector=options["detector"])])
            job = AnalysisJob.objects.filter(pk=options["job"]).first()
            if job is None:
                raise CommandError(f"no analysis job with id {options['job']}")
            return self._print([(do_cancel_job if action == "cancel" else do_retry_job)(job)])
        except JobError as exc:
            raise CommandError(str(exc)) from None

    def _print(self, jobs):
        self.stdout.write(json.dumps(AnalysisJobSerializer(jobs, many=True).data, indent=2, default=str))
