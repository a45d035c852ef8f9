"""The ASGI application serves HTTP and authenticated websockets through the channel layer."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.conf import settings
from django.test import Client

from pdl1site.asgi import application


def test_channel_layer_matches_mode():
    expected = ("channels.layers.InMemoryChannelLayer" if settings.EMBEDDED_BROKER
                else "channels_redis.core.RedisChannelLayer")
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == expected


@pytest.mark.django_db(transaction=True)
def test_http_through_asgi():
    async def get():
        communicator = HttpCommunicator(application, "GET", "/accounts/login/", headers=[(b"host", b"localhost")])
        return await communicator.get_response()

    response = async_to_sync(get)()
    assert response["status"] == 200 and b"Log in" in response["body"]


@pytest.mark.django_db(transaction=True)
def test_websocket_echo_through_the_channel_layer(personas):
    web = Client()
    web.force_login(personas["pathologist"])
    cookie = f"sessionid={web.cookies['sessionid'].value}".encode()

    async def ping(headers):
        communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
        connected, _ = await communicator.connect()
        if not connected:
            return None
        await communicator.send_json_to({"hello": "pd-l1"})
        reply = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return reply

    origin = (b"origin", b"http://localhost")
    assert async_to_sync(ping)([origin, (b"cookie", cookie)]) == {"echo": {"hello": "pd-l1"}}
    assert async_to_sync(ping)([origin]) is None  # anonymous: refused
    assert async_to_sync(ping)([(b"origin", b"http://evil.example"), (b"cookie", cookie)]) is None


@pytest.mark.django_db(transaction=True)
def test_ping_echoes_only_to_its_sender(personas):
    """One user's message never reaches another connected user."""
    cookies = {}
    for name in ("pathologist", "outsider"):
        web = Client()
        web.force_login(personas[name])
        cookies[name] = f"sessionid={web.cookies['sessionid'].value}".encode()

    async def scenario():
        origin = (b"origin", b"http://localhost")
        sender = WebsocketCommunicator(application, "/ws/ping/", headers=[origin, (b"cookie", cookies["pathologist"])])
        bystander = WebsocketCommunicator(application, "/ws/ping/", headers=[origin, (b"cookie", cookies["outsider"])])
        assert (await sender.connect())[0] and (await bystander.connect())[0]
        await sender.send_json_to({"secret": "for me only"})
        own = await sender.receive_json_from(timeout=5)
        leaked = await bystander.receive_nothing(timeout=0.5)
        await sender.disconnect()
        await bystander.disconnect()
        return own, leaked

    own, nothing_for_bystander = async_to_sync(scenario)()
    assert own == {"echo": {"secret": "for me only"}}
    assert nothing_for_bystander
