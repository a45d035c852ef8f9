"""The ASGI application serves HTTP and authenticated websockets through the channel layer."""

import os

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.test import Client

from pdl1site.asgi import application


def test_channel_layer_follows_the_environment():
    """The layer the ASGI application publishes through is chosen by REDIS_URL, the deployment's
    input (not re-derived from the settings flag it is computed from): Redis when it is set."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if os.environ.get("REDIS_URL"):
        assert type(layer).__module__ + "." + type(layer).__name__ == "channels_redis.core.RedisChannelLayer"
        assert layer.hosts[0]["address"] == os.environ["REDIS_URL"]
    else:
        assert type(layer).__module__ + "." + type(layer).__name__ == "channels.layers.InMemoryChannelLayer"


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

    origin, host = (b"origin", b"http://localhost"), (b"host", b"localhost")
    assert async_to_sync(ping)([origin, host, (b"cookie", cookie)]) == {"echo": {"hello": "pd-l1"}}
    assert async_to_sync(ping)([origin, host]) is None  # anonymous: refused
    assert async_to_sync(ping)([(b"origin", b"http://evil.example"), host, (b"cookie", cookie)]) is None


@pytest.mark.django_db(transaction=True)
def test_ping_echoes_only_to_its_sender(personas):
    """One user's message never reaches another connected user."""
    cookies = {}
    for name in ("pathologist", "outsider"):
        web = Client()
        web.force_login(personas[name])
        cookies[name] = f"sessionid={web.cookies['sessionid'].value}".encode()

    async def scenario():
        site = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
        sender = WebsocketCommunicator(application, "/ws/ping/", headers=[*site, (b"cookie", cookies["pathologist"])])
        bystander = WebsocketCommunicator(application, "/ws/ping/", headers=[*site, (b"cookie", cookies["outsider"])])
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


@pytest.mark.django_db(transaction=True)
def test_websocket_origin_must_match_host_and_port(personas, settings):
    """A page on another port of the same host is another origin: its websockets are refused."""
    settings.CSRF_TRUSTED_ORIGINS = ["https://pdl1.hospital.example"]
    settings.ALLOWED_HOSTS = ["localhost", "pdl1.hospital.example"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    web = Client()
    web.force_login(personas["pathologist"])
    cookie = (b"cookie", f"sessionid={web.cookies['sessionid'].value}".encode())

    async def connects(origin, host, proto=None):
        headers = [cookie] + ([(b"origin", origin)] if origin else []) + ([(b"host", host)] if host else [])
        headers += [(b"x-forwarded-proto", proto)] if proto else []
        communicator = WebsocketCommunicator(application, "/ws/ping/", headers=headers)
        connected, _ = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected

    cases = {
        (b"http://localhost:8000", b"localhost:8000"): True,
        (b"http://localhost", b"localhost:80"): True,  # the scheme's default port, written or not
        (b"https://pdl1.hospital.example", b"pdl1.hospital.example"): True,  # trusted origin (TLS proxy)
        (b"http://localhost:9999", b"localhost:8000"): False,  # same host, another port
        (b"http://localhost:8000", b"localhost"): False,
        # The scheme is the connection's: a plain-http page is not the https site, nor the reverse.
        (b"https://localhost:8000", b"localhost:8000"): False,
        (b"https://localhost:8000", b"localhost:8000", b"https"): True,  # behind the TLS proxy
        (b"http://localhost:8000", b"localhost:8000", b"https"): False,
        (b"http://pdl1.hospital.example", b"pdl1.hospital.example", b"https"): False,
        (b"https://pdl1.hospital.example", b"pdl1.hospital.example", b"https"): True,
        (b"http://localhost:443", b"localhost:443", b"https"): False,
        (b"https://localhost", b"localhost", b"http"): False,
        (b"http://evil.example:8000", b"localhost:8000"): False,
        (b"http://evil.example", b"evil.example"): False,  # not an allowed host
        (b"null", b"localhost"): False,
        (None, b"localhost"): False,  # no Origin: not a browser page of this site
        (b"http://localhost", None): False,
    }
    got = {key: async_to_sync(connects)(*key) for key in cases}
    assert got == cases


@pytest.mark.django_db(transaction=True)
def test_a_host_mounting_the_websockets_under_a_prefix_keeps_the_origin_check(personas, settings):
    """pdl1site.routing.websocket_application(prefix): what the README tells a host project to serve."""
    from pdl1site.routing import websocket_application

    settings.ALLOWED_HOSTS = ["his.hospital.example"]
    host_app = websocket_application("pathology/")
    web = Client()
    web.force_login(personas["pathologist"])
    cookie = (b"cookie", f"sessionid={web.cookies['sessionid'].value}".encode())

    async def connects(origin):
        headers = [cookie, (b"host", b"his.hospital.example"), (b"origin", origin)]
        communicator = WebsocketCommunicator(host_app, "/pathology/ws/ping/", headers=headers)
        connected, _ = await communicator.connect()
        if connected:
            await communicator.disconnect()
        return connected

    assert async_to_sync(connects)(b"http://his.hospital.example") is True
    assert async_to_sync(connects)(b"http://portal.hospital.example") is False  # a sibling site
