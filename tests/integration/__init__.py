"""Helpers of the integration tests: real MLLP peers and a FHIR endpoint on loopback, and sample orders."""

import asyncio
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def frame(message: bytes) -> bytes:
    return VT + message + FS + CR


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orm(control_id="MSG0001", *, mrn="123456", accession="S26-00042", placer=None, clone="85147-7^PD-L1 22C3^LN",
        indication="lung_squamous", family="Doe", given="Jane", birth="19600517", sex="F", message_type="ORM^O01",
        control="NW", extra=(), authority="HOSP") -> bytes:
    """An ORM^O01 as a hospital sends it (SYNTHETIC patient); `placer`: by default one order number per accession
    (one placer order number is one case)."""
    placer = f"PLC-{accession}" if placer is None else placer
    segments = [
        f"MSH|^~\\&|HIS|HOSP|PDL1|PATHOLOGY|20261130120000||{message_type}|{control_id}|P|2.5.1||||||UNICODE UTF-8",
        f"PID|1||{mrn}^^^{authority}^MR~990011^^^NATIONAL^NI||{family}^{given}||{birth}|{sex}",
        f"ORC|{control}|{placer}|{accession}",
        f"OBR|1|{placer}|{accession}|{clone}|||||||||{indication}||Lung, right upper lobe core biopsy",
        *extra,
    ]
    return "\r".join(segments).encode("utf-8") + b"\r"


def oml(control_id="OML0001", *, mrn="223344", accession="S26-00077") -> bytes:
    """An OML^O21 with an SPM segment (SYNTHETIC patient)."""
    segments = [
        f"MSH|^~\\&|LIS|HOSP|PDL1|PATHOLOGY|20261130120500||OML^O21^OML_O21|{control_id}|P|2.5.1||||||UNICODE UTF-8",
        f"PID|1||{mrn}^^^HOSP^MR||Smith^John||19551201|M",
        f"ORC|NW|PLC-88|{accession}",
        "OBR|1|PLC-88|{0}|PDL1^PD-L1 IHC SP263^L|||||||||Non-squamous non-small cell lung carcinoma (NSCLC)".format(accession),
        "SPM|1|||TISS^Tissue core biopsy^L||||LUL^Left upper lobe of lung^L",
    ]
    return "\r".join(segments).encode("utf-8") + b"\r"


def read_block(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(FS + CR):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} bytes")
        data += chunk
    assert data.startswith(VT)
    return data[1:-2]


def send_order(port: int, message: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(message))
        return read_block(sock)


def fields(message: bytes, segment: str) -> list[str]:
    for line in message.decode("utf-8").split("\r"):
        if line.startswith(segment + "|"):
            return line.split("|")
    raise KeyError(segment)


class Listener:
    """The order listener (integration.mllp.serve) in a thread with its own event loop; `limits`: those of
    integration.mllp.Limits to change."""

    def __init__(self, port: int, limit: int = 1024 * 1024, **limits):
        from integration.mllp import Limits, serve

        self.port, self.loop = port, asyncio.new_event_loop()
        ready = threading.Event()
        self.task = None

        def run():
            asyncio.set_event_loop(self.loop)
            self.task = self.loop.create_task(serve("127.0.0.1", port, limit, ready, Limits(**limits)))
            try:
                self.loop.run_until_complete(self.task)
            except asyncio.CancelledError:
                pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10), "the listener did not start"

    def stop(self):
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.thread.join(10)


class ResultsPeer:
    """A hospital system's MLLP receiver on loopback: keeps each message and answers it as told.

    `answers`: a list of "AA", "AE", "AR" or "drop" (close without answering), used in order, then AA;
    it acknowledges with the received MSH-10 and drops repeats of a control id it already accepted."""

    def __init__(self, port: int, answers=(), delay: float = 0):
        self.port, self.answers, self.delay = port, list(answers), delay
        self.received, self.accepted = [], {}
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                try:
                    message = read_block(conn)
                except (ConnectionError, OSError):
                    continue
                self.received.append(message)
                time.sleep(self.delay)  # a slow receiver: the sender waits for its ACK
                control_id = fields(message, "MSH")[9]
                answer = self.answers.pop(0) if self.answers else "AA"
                if answer == "drop":
                    continue
                if answer == "AA":
                    self.accepted.setdefault(control_id, message)
                text = "" if answer == "AA" else "Unknown patient"
                conn.sendall(frame(f"MSH|^~\\&|HIS|HOSP|PDL1|PATHOLOGY|20261130||ACK^R01^ACK|A{len(self.received)}|P|2.5.1"
                                   f"\rMSA|{answer}|{control_id}|{text}\r".encode()))

    def stop(self):
        self.running = False
        self.server.close()
        self.thread.join(5)


class FhirServer:
    """A FHIR endpoint on loopback: validates every POSTed Bundle with fhir.resources; 201 for a valid one
    (stored once per Idempotency-Key), 400 with an OperationOutcome otherwise; `refuse`: statuses (503,
    422, ...) answered first, in order."""

    def __init__(self, refuse=()):
        from fhir.resources.R4B.bundle import Bundle

        self.stored, self.requests, self.refuse = {}, [], list(refuse)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, dict(self.headers), body))
                if outer.refuse:
                    return self._answer(outer.refuse.pop(0), {"resourceType": "OperationOutcome", "issue": [
                        {"severity": "error", "code": "transient", "diagnostics": "refused as told"}]})
                try:
                    bundle = Bundle.model_validate_json(body)
                except Exception as exc:
                    return self._answer(400, {"resourceType": "OperationOutcome", "issue": [
                        {"severity": "error", "code": "invalid", "diagnostics": str(exc)[:200]}]})
                outer.stored.setdefault(self.headers.get("Idempotency-Key"), bundle)
                self._answer(201, json.loads(body))

            def _answer(self, status, data):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
