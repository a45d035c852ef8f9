"""Two simultaneous saves on the same version: exactly one wins, the other gets a conflict (PostgreSQL)."""

import threading

import pytest
from django.db import connection

from annotations import services
from annotations.models import AnnotationRevision, AnnotationSession
from tests.annotations import project_with_field, session_of


@pytest.mark.django_db(transaction=True)
def test_simultaneous_saves_one_wins_one_conflicts(personas):
    if connection.vendor != "postgresql":
        pytest.skip("needs a server database with real concurrent connections")
    _, field = project_with_field(personas)
    pk = session_of(field, personas["annotator"]).pk
    barrier, results = threading.Barrier(4), []

    def save(n):
        from django.db import connections

        try:
            session = AnnotationSession.objects.select_related("field__project").get(pk=pk)
            barrier.wait()
            services.do_save_points(session, personas["annotator"], 0, [[1000 + n, 1000, "positive"]])
            results.append("ok")
        except services.ConflictError:
            results.append("conflict")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=save, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "conflict", "conflict", "ok"]
    session = AnnotationSession.objects.get(pk=pk)
    assert session.version == 1 and len(session.points) == 1
    assert AnnotationRevision.objects.filter(session=session).count() == 1
