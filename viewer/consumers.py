"""Live job progress for the viewer: /ws/jobs/<job_id>/ and /ws/slides/<slide_id>/.

Authenticated users who may see the slide only: anonymous → close 4401, no access (or no such
job/slide) → close 4403. On connect the current state is sent at once; then every `job.progress`
event of the Channels group (workers.progress) is forwarded as
{"type": "progress", "state": {...}, "points": {...} (if any), "eta_s": ...}.
Where the channel layer cannot carry worker events (embedded mode), the page polls
/api/viewer/jobs/<id>/state/ instead.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from viewer import access, eta
from workers.progress import job_group, slide_group

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _visible_job(user, job_id):
    if not access.check_may_view_slides(user):
        return None
    return access.viewable_jobs(user).filter(pk=job_id).first()


@database_sync_to_async
def _visible_slide_latest_job(user, slide_id):
    """(may see the slide, its latest job or None)."""
    if not access.check_may_view_slides(user) or not access.viewable_slides(user).filter(pk=slide_id).exists():
        return False, None
    from analysis.models import AnalysisJob

    return True, AnalysisJob.objects.filter(slide_id=slide_id).order_by("-created_at", "-pk").first()


@database_sync_to_async
def _fresh_user(scope):
    """The socket's user as a request would find it now, read without changing anything: its session read
    again from the store (logged out or expired: anonymous), the user loaded again by its backend
    (deactivated: anonymous), the session's password hash checked (changed password: anonymous), and no
    roles cached from connect (access.roles_of caches them on the user object). Unlike
    django.contrib.auth.get_user it never flushes or cycles the session (a socket cannot hand the browser a
    new session key). A scope authenticated without a session keeps its connect-time user."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.contrib.auth.models import AnonymousUser
    from django.utils.crypto import constant_time_compare

    session = scope.get("session")
    key = getattr(session, "session_key", None)
    if not key:
        user = scope.get("user")
        return user if user is not None and user.is_authenticated and session is None else AnonymousUser()
    stored = import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)
    try:
        user_id, backend_path = stored[SESSION_KEY], stored[BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return AnonymousUser()
    from django.contrib.auth import get_user_model

    user = load_backend(backend_path).get_user(get_user_model()._meta.pk.to_python(user_id))
    if user is None:
        return AnonymousUser()
    hashes = [user.get_session_auth_hash()]
    if hasattr(user, "get_session_auth_fallback_hash"):
        hashes += list(user.get_session_auth_fallback_hash())
    if not any(constant_time_compare(stored.get(HASH_SESSION_KEY, ""), h) for h in hashes):
        return AnonymousUser()
    return user


@database_sync_to_async
def _started_at(job_id):
    from analysis.models import AnalysisJob

    return AnalysisJob.objects.filter(pk=job_id).values_list("started_at", flat=True).first()


@database_sync_to_async
def _current_state(job_id):
    from analysis.models import AnalysisJob

    return eta.job_state_with_eta(AnalysisJob.objects.get(pk=job_id))


class _ProgressConsumer(AsyncJsonWebsocketConsumer):
    groups_to_join: list[str] = []

    async def _join(self, group):
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_to_join = [*self.groups_to_join, group]

    async def disconnect(self, code):
        for group in self.groups_to_join:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        pass  # read-only stream

    def _remember(self, job):
        self.started = {**getattr(self, "started", {}), job.pk: job.started_at}

    async def _eta(self, state: dict):
        started = getattr(self, "started", {})
        job_id = state.get("job")
        if started.get(job_id) is None and state.get("status") not in (None, "queued"):
            started = {**started, job_id: await _started_at(job_id)}
            self.started = started
        elapsed = None
        if started.get(job_id) is not None:
            from django.utils import timezone

            elapsed = (timezone.now() - started[job_id]).total_seconds()
        return eta.estimate_eta(state.get("status"), state.get("tiles_done") or 0, state.get("tiles_total") or 0,
                                     elapsed)

    async def _still_allowed(self, user) -> bool:
        """Whether `user` still sees what this socket follows (overridden per consumer)."""
        return True

    async def job_progress(self, event):
        # Access is read again for every event, not only at connect, for the user as a request would find
        # them now: logged out, deactivated, a role or department taken away, or the slide moved to another
        # department's case, and the socket closes before anything more is sent.
        user = await _fresh_user(self.scope)
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await self._still_allowed(user):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        message = {"type": "progress", "state": event["state"]}
        if event.get("points"):
            message["points"] = event["points"]
        message["eta_s"] = await self._eta(event["state"])
        await self.send_json(message)

    async def _send_current(self, job):
        state = await _current_state(job.pk)
        eta = state.pop("eta_s")
        await self.send_json({"type": "progress", "state": state, "eta_s": eta})


class JobProgressConsumer(_ProgressConsumer):
    async def _still_allowed(self, user) -> bool:
        return await _visible_job(user, self.job_id) is not None

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        job = await _visible_job(user, self.scope["url_route"]["kwargs"]["job_id"])
        if job is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self._remember(job)
        self.job_id = job.pk
        # Join before reading the state: an event between the two is then sent, never lost.
        await self._join(job_group(job.pk))
        await self.accept()
        await self._send_current(job)


class SlideProgressConsumer(_ProgressConsumer):
    """Every job of a slide; on connect, the state of its latest job (if any)."""

    async def _still_allowed(self, user) -> bool:
        allowed, _ = await _visible_slide_latest_job(user, self.scope["url_route"]["kwargs"]["slide_id"])
        return allowed

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        slide_id = self.scope["url_route"]["kwargs"]["slide_id"]
        allowed, job = await _visible_slide_latest_job(user, slide_id)
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self._join(slide_group(slide_id))
        await self.accept()
        if job is not None:
            self._remember(job)
            await self._send_current(job)
