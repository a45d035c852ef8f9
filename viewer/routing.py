"""Websocket routes of the viewer (included from pdl1site/routing.py)."""

from django.urls import path

from viewer.consumers import JobProgressConsumer, SlideProgressConsumer

websocket_urlpatterns = [
    path("ws/jobs/<int:job_id>/", JobProgressConsumer.as_asgi()),
    path("ws/slides/<int:slide_id>/", SlideProgressConsumer.as_asgi()),
]
