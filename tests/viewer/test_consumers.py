"""Websocket progress: access checks, the initial state at once, and live events of a real job run
through the channel layer (in-memory when embedded, Redis with REDIS_URL)."""

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from pdl1site.asgi import application
from tests.workers.conftest import synthetic_slide, synthetic_slide_file  # noqa: F401  fixtures
from workers import queue
from workers.services import do_start_job

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")
HOST = (b"host", b"localhost")  # a browser's page on this site: the same host and port as its Origin
PARAMS = {"batch_size": 4, "tile_px": 256}


def headers_for(user):
    if user is None:
        return [ORIGIN, HOST]
    web = Client()
    web.force_login(user)
    return [ORIGIN, HOST, (b"cookie", f"sessionid={web.cookies['sessionid'].value}".encode())]


def queued_job(slide):
    """A job created with its first stage held back, so a test can listen before it runs."""
    with queue.collecting() as pending:
        job = do_start_job(slide, detector="classic", parameters=PARAMS)
        held = list(pending)
    return job, held


@database_sync_to_async
def run_stages(held):
    with queue.collecting() as pending:
        pending.extend(held)
        while pending:
            queue.run(*pending.pop(0))


async def try_connect(path, headers):
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=5)
    if connected:
        await communicator.disconnect()
    return connected, code


def test_connect_is_refused_without_access(personas, synthetic_slide):  # noqa: F811
    job, _ = queued_job(synthetic_slide)
    for path in (f"/ws/jobs/{job.pk}/", f"/ws/slides/{synthetic_slide.pk}/"):
        assert async_to_sync(try_connect)(path, headers_for(None)) == (False, 4401)
        for persona in ("outsider", "annotator", "clinician"):
            assert async_to_sync(try_connect)(path, headers_for(personas[persona])) == (False, 4403), persona
        assert async_to_sync(try_connect)(path, headers_for(personas["pathologist"]))[0] is True
    assert async_to_sync(try_connect)("/ws/jobs/999999/", headers_for(personas["pathologist"])) == (False, 4403)


def test_a_listener_gets_the_state_at_once_then_every_progress_event(personas, synthetic_slide):  # noqa: F811
    job, held = queued_job(synthetic_slide)
    headers = headers_for(personas["pathologist"])

    async def scenario():
        by_job = WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/", headers=headers)
        by_slide = WebsocketCommunicator(application, f"/ws/slides/{synthetic_slide.pk}/", headers=headers)
        assert (await by_job.connect(timeout=5))[0] and (await by_slide.connect(timeout=5))[0]
        initial = [await by_job.receive_json_from(timeout=5), await by_slide.receive_json_from(timeout=5)]
        await run_stages(held)
        received = {"job": [], "slide": []}
        for name, communicator in (("job", by_job), ("slide", by_slide)):
            while True:
                message = await communicator.receive_json_from(timeout=10)
                received[name].append(message)
                if message["state"]["status"] in ("done", "failed"):
                    break
            await communicator.disconnect()
        return initial, received

    initial, received = async_to_sync(scenario)()
    for message in initial:
        assert message["type"] == "progress" and message["state"]["job"] == job.pk
        assert message["state"]["status"] == "queued" and message["eta_s"] is None
    for messages in received.values():
        statuses = [m["state"]["status"] for m in messages]
        assert statuses[0] == "running" and statuses[-1] == "done", statuses
        batches = [m for m in messages if "points" in m]
        assert len(batches) == messages[-1]["state"]["batches_total"] > 1
        assert all(len(m["points"]["xy"]) == len(m["points"]["labels"]) for m in batches)
        tiles_done = [m["state"]["tiles_done"] for m in batches]
        assert tiles_done == sorted(tiles_done) and tiles_done[-1] == messages[-1]["state"]["tiles_total"]
        assert all("eta_s" in m for m in messages) and messages[-1]["eta_s"] == 0
        running = [m["eta_s"] for m in batches if m["state"]["status"] == "running"]
        assert running and all(e is not None and e >= 0 for e in running)
        before = messages[-1]["state"]["detections_before_review"]  # the merge's counts, labelled, no TPS
        assert before["detections"] > 0 and "tps" not in before and "uncorrected" in before["note"]


def test_a_user_who_loses_access_stops_receiving_progress(personas, synthetic_slide):  # noqa: F811
    from channels.layers import get_channel_layer

    from workers.progress import job_group, slide_group

    job, _ = queued_job(synthetic_slide)
    headers = headers_for(personas["pathologist"])
    event = {"type": "job.progress", "state": {"job": job.pk, "status": "running", "tiles_done": 1,
                                               "tiles_total": 4}}

    @database_sync_to_async
    def leave_department():
        personas["pathologist"].profile.departments.clear()

    async def scenario():
        layer = get_channel_layer()
        by_job = WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/", headers=headers)
        by_slide = WebsocketCommunicator(application, f"/ws/slides/{synthetic_slide.pk}/", headers=headers)
        assert (await by_job.connect(timeout=5))[0] and (await by_slide.connect(timeout=5))[0]
        await by_job.receive_json_from(timeout=5), await by_slide.receive_json_from(timeout=5)
        await layer.group_send(job_group(job.pk), event)
        await layer.group_send(slide_group(synthetic_slide.pk), event)
        still = [(await c.receive_json_from(timeout=5))["state"]["tiles_done"] for c in (by_job, by_slide)]
        await leave_department()
        await layer.group_send(job_group(job.pk), event)
        await layer.group_send(slide_group(synthetic_slide.pk), event)
        closed = [await c.receive_output(timeout=5) for c in (by_job, by_slide)]
        return still, closed

    still, closed = async_to_sync(scenario)()
    assert still == [1, 1]
    assert all(out == {"type": "websocket.close", "code": 4403} for out in closed), closed


@pytest.mark.parametrize("revoke, code", [("role", 4403), ("deactivate", 4401), ("logout", 4401)])
def test_a_socket_stops_when_its_user_loses_a_role_is_deactivated_or_logs_out(personas, synthetic_slide, revoke,
                                                                               code):  # noqa: F811
    """The user object loaded at connect caches its roles, and its session was never read again: a
    pathologist whose role was removed, who was deactivated or who logged out kept receiving points."""
    from channels.layers import get_channel_layer
    from django.contrib.sessions.models import Session

    from workers.progress import job_group

    job, _ = queued_job(synthetic_slide)
    headers = headers_for(personas["pathologist"])
    event = {"type": "job.progress", "state": {"job": job.pk, "status": "running", "tiles_done": 1, "tiles_total": 4}}

    @database_sync_to_async
    def take_away():
        user = personas["pathologist"]
        if revoke == "role":
            user.groups.clear()
        elif revoke == "deactivate":
            user.is_active = False
            user.save()
        else:
            Session.objects.all().delete()  # what logging out does to the session

    async def scenario():
        layer = get_channel_layer()
        socket = WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/", headers=headers)
        assert (await socket.connect(timeout=5))[0]
        await socket.receive_json_from(timeout=5)
        await take_away()
        await layer.group_send(job_group(job.pk), event)
        return await socket.receive_output(timeout=5)

    assert async_to_sync(scenario)() == {"type": "websocket.close", "code": code}


def test_the_per_event_user_check_never_changes_the_session(personas, settings):
    """django.contrib.auth.get_user cycles a session whose hash matches only a fallback key (a key
    rotation): done from a socket, the browser lost its session. The socket's check reads, never writes."""
    from django.contrib.sessions.models import Session

    from viewer.consumers import _fresh_user

    old_key = settings.SECRET_KEY
    web = Client()
    web.force_login(personas["pathologist"])
    key = web.cookies["sessionid"].value
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret-key-" + "x" * 40, [old_key]

    from importlib import import_module

    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    user = async_to_sync(_fresh_user)({"session": session, "user": personas["pathologist"]})
    assert user.is_authenticated and user.pk == personas["pathologist"].pk
    assert Session.objects.filter(session_key=key).exists()  # not cycled away
