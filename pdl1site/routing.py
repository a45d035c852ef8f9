"""Websocket routes of every app, and the websocket application a site (or a host project) serves them with."""

from django.urls import path

from pdl1site.consumers import PingConsumer
from viewer.routing import websocket_urlpatterns as viewer_websocket_urlpatterns

websocket_urlpatterns = [
    path("ws/ping/", PingConsumer.as_asgi()),
    *viewer_websocket_urlpatterns,
]


def websocket_application(prefix: str = ""):
    """The module's websockets under `prefix` (e.g. "pathology/"), as a host project mounts them:
    signed-in users (AuthMiddlewareStack) on pages of this site only (origin.SameOriginWebsocketValidator:
    the connection's scheme, host and port).  A host routing websocket_urlpatterns itself would skip the
    origin check, and any page of a sibling site could open the user's progress streams."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import URLRouter

    from pdl1site.origin import SameOriginWebsocketValidator

    routes = [path(prefix, URLRouter(websocket_urlpatterns))] if prefix else websocket_urlpatterns
    return SameOriginWebsocketValidator(AuthMiddlewareStack(URLRouter(routes)))
