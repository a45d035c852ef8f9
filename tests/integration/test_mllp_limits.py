"""The MLLP listener's limits: idle and half-sent connections are closed, connections over the cap and
peers outside the allow-list are closed at once, and real senders are still answered (review findings,
2026-12-01: 80 connections that sent only <VT> held the listener's file descriptors). SYNTHETIC patients."""

import io
import ipaddress
import socket
import time

import pytest
from django.core.management import CommandError, call_command

from integration.mllp import Limits, allowed
from integration.models import InboundMessage
from tests.factories import DepartmentFactory
from tests.integration import Listener, fields, free_port, orm, send_order


@pytest.fixture
def department(transactional_db, settings):
    settings.PDL1_INTEGRATION_ORDER_DEPARTMENT = "pathology"
    settings.PDL1_INTEGRATION_MRN_AUTHORITY = "HOSP"
    return DepartmentFactory(code="pathology")


@pytest.fixture
def listen(department):
    started = []

    def start(**limits):
        started.append(Listener(free_port(), **limits))
        return started[-1]
    yield start
    for listener in started:
        listener.stop()


def closed_by_listener(sock: socket.socket, within: float = 5) -> bool:
    """Whether the listener closes the connection (without an answer) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_an_idle_connection_is_closed_and_the_listener_goes_on(listen):
    listener = listen(idle_timeout=0.3)
    with socket.create_connection(("127.0.0.1", listener.port)) as idle:
        started = time.monotonic()
        assert closed_by_listener(idle) and time.monotonic() - started < 3
    assert fields(send_order(listener.port, orm()), "MSA")[1] == "AA"


def test_a_message_begun_and_never_finished_is_closed_and_leaves_nothing(listen):
    listener = listen(idle_timeout=30, block_timeout=0.3)
    with socket.create_connection(("127.0.0.1", listener.port)) as slow:
        slow.sendall(b"\x0b")  # a start block, then nothing: the idle timeout alone never ends it
        assert closed_by_listener(slow)
    assert InboundMessage.objects.count() == 0


def test_connections_over_the_cap_are_closed_at_once(listen):
    listener = listen(max_connections=2)
    held = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(2)]
    time.sleep(0.2)  # both accepted
    with socket.create_connection(("127.0.0.1", listener.port)) as extra:
        assert closed_by_listener(extra, within=2)
    held.pop().close()
    for _ in range(50):  # the listener notices the closed one
        try:
            answer = send_order(listener.port, orm())
            break
        except ConnectionError:
            time.sleep(0.1)
    assert fields(answer, "MSA")[1] == "AA"
    held.pop().close()


def test_a_peer_outside_the_allow_list_is_closed_at_once(listen):
    elsewhere = listen(allow=(ipaddress.ip_network("10.0.0.0/8"),))
    with socket.create_connection(("127.0.0.1", elsewhere.port)) as sock:
        assert closed_by_listener(sock, within=2)
    assert InboundMessage.objects.count() == 0
    here = listen(allow=(ipaddress.ip_network("127.0.0.0/8"),))
    assert fields(send_order(here.port, orm()), "MSA")[1] == "AA"


@pytest.mark.parametrize("address, networks, ok", [
    ("192.0.2.7", (), True),
    ("192.0.2.7", ("192.0.2.0/24",), True),
    ("::ffff:192.0.2.7", ("192.0.2.0/24",), True),  # an IPv4 peer on a dual-stack socket
    ("198.51.100.1", ("192.0.2.0/24", "2001:db8::/32"), False),
    (None, ("192.0.2.0/24",), False),
])
def test_allowed(address, networks, ok):
    assert allowed(address, tuple(ipaddress.ip_network(n) for n in networks)) is ok


def test_mllp_listen_passes_its_limits(monkeypatch, settings):
    import integration.mllp

    seen = {}

    async def serve(host, port, limit, ready=None, limits=Limits()):
        seen.update(host=host, port=port, limits=limits)

    monkeypatch.setattr(integration.mllp, "serve", serve)
    call_command("mllp_listen", "--port", "2575", "--idle-timeout", "5", "--max-connections", "3",
                 "--allow", "10.1.0.0/16", "--allow", "192.0.2.9", stdout=io.StringIO())
    assert seen["limits"] == Limits(5.0, 60.0, 3, (ipaddress.ip_network("10.1.0.0/16"),
                                                  ipaddress.ip_network("192.0.2.9/32")))
    call_command("mllp_listen", stdout=io.StringIO())
    assert seen["limits"] == Limits()  # the defaults: 60 s, 60 s, 64 connections, any peer
    with pytest.raises(CommandError, match="--allow"):
        call_command("mllp_listen", "--allow", "10.1.0.0/33", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("mllp_listen", "--max-connections", "0", stdout=io.StringIO())
