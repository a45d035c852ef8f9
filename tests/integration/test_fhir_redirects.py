"""A FHIR server (or a proxy in front of it) that answers the results POST with a redirect: urllib followed
301/302/303 with a GET without the bundle, sent the Authorization header to the Location's host, and
recorded the GET's 200 as delivered, so the result never reached the EHR and was never sent again. Now no
redirect is followed: the row is rejected for an administrator, with the status and the Location."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integration.choices import OutboxState
from integration.delivery import deliver_due, send_fhir
from integration.models import OutboxMessage
from tests.factories import ReportFactory

BUNDLE = b'{"resourceType": "Bundle", "type": "collection"}'


class Recorder:
    """An HTTP server on loopback that records every request; POSTs get `status` (with `location`), GETs 200."""

    def __init__(self, status=200, location=None):
        self.requests, outer = [], self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, self.headers.get("Authorization"),
                                       self.rfile.read(length)))

            def do_POST(self):
                self._record()
                self._answer(status, location)

            def do_GET(self):
                self._record()
                self._answer(200, None)

            def _answer(self, code, where):
                body = b'{"resourceType": "Bundle", "type": "searchset", "total": 0}'
                self.send_response(code)
                if where:
                    self.send_header("Location", where)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers(settings):
    settings.PDL1_INTEGRATION_RESULTS_FHIR_AUTHORIZATION = "Bearer SYNTHETIC-secret"
    settings.PDL1_INTEGRATION_TIMEOUT_SECONDS = 5
    target = Recorder(201)
    made = [target]

    def redirector(status, location):
        made.append(Recorder(status, location.replace("TARGET", target.url)))
        return made[-1]

    yield target, redirector
    for server in made:
        server.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirected_post_is_not_followed_nor_counted_as_delivered(servers, status):
    target, redirector = servers
    elsewhere = redirector(status, "TARGET/fhir/Bundle")  # another host:port, which would get the token
    attempt = send_fhir(elsewhere.url, BUNDLE, "PDL1R1F")
    assert not attempt.delivered and attempt.rejected
    assert attempt.error.startswith(f"HTTP {status} redirect from {elsewhere.url}/Bundle to {target.url}/fhir/Bundle: "
                                    "not followed, not delivered")
    assert target.requests == []  # the redirect target is never contacted: no GET, no token
    assert elsewhere.requests == [("POST", "/Bundle", "Bearer SYNTHETIC-secret", BUNDLE)]

    same_host = redirector(status, "/fhir/Bundle")  # a relative Location: same host, moved base path
    attempt = send_fhir(same_host.url, BUNDLE, "PDL1R1F")
    assert not attempt.delivered and f"to {same_host.url}/fhir/Bundle: not followed" in attempt.error
    assert [r[:2] for r in same_host.requests] == [("POST", "/Bundle")]  # no GET after it


@pytest.mark.django_db
def test_a_redirected_row_waits_for_an_administrator_and_holds_nothing_back(servers):
    target, redirector = servers
    moved = redirector(301, "TARGET/fhir/Bundle")
    first = OutboxMessage.objects.create(report=ReportFactory(), channel="fhir", message_id="PDL1R1F",
                                         destination=moved.url, payload=BUNDLE)
    assert deliver_due() == {"delivered": 0, "failed": 0, "rejected": 1}
    first.refresh_from_db()
    assert first.state == OutboxState.REJECTED and first.delivered_at is None and first.attempts == 1
    assert "HTTP 301 redirect" in first.last_error and f"{target.url}/fhir/Bundle" in first.last_error
    assert target.requests == []
    # The address corrected for later results: they are not held back behind the rejected row.
    later = OutboxMessage.objects.create(report=ReportFactory(), channel="fhir", message_id="PDL1R2F",
                                         destination=target.url + "/fhir", payload=BUNDLE)
    assert deliver_due() == {"delivered": 1, "failed": 0, "rejected": 0}
    later.refresh_from_db()
    assert later.state == OutboxState.DELIVERED and [r[:2] for r in target.requests] == [("POST", "/fhir/Bundle")]
