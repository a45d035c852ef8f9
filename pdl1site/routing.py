"""Websocket routes of every app."""

from django.urls import path

from pdl1site.consumers import PingConsumer
from viewer.routing import websocket_urlpatterns as viewer_websocket_urlpatterns

websocket_urlpatterns = [
    path("ws/ping/", PingConsumer.as_asgi()),
    *viewer_websocket_urlpatterns,
]
