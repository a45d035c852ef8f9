"""ASGI entry point: HTTP through Django, websockets through Channels (served by daphne)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pdl1site.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.routing import ProtocolTypeRouter  # noqa: E402

from pdl1site.routing import websocket_application  # noqa: E402
from viewer.fastpath import TileFastPath  # noqa: E402


def tune_gc(threshold0: int) -> bool:
    """Fewer, cheaper garbage collections in the server process.

    Why: with Python's defaults a busy daphne runs a collection every 700 net allocations, and the
    older generations scan everything Django loaded; those pauses stall every open connection and
    were most of the tile latency tail (p95 ~100 ms at 50 clients, bench/RESULTS-viewer.md).
    gc.freeze() moves what start-up loaded out of the collector's sight, and a larger first
    threshold collects young garbage in fewer, still small passes; cycles are still collected.
    threshold0 = 0 keeps Python's defaults (settings.SERVER_GC_THRESHOLD)."""
    if threshold0 <= 0:
        return False
    gc.freeze()
    gc.set_threshold(threshold0, 50, 100)
    return True


from django.conf import settings  # noqa: E402

tune_gc(settings.SERVER_GC_THRESHOLD)

application = ProtocolTypeRouter(
    {
        # Repeat tile requests of a session already granted the slide skip Django (viewer/fastpath.py).
        "http": TileFastPath(django_asgi_app),
        # Same origin only: scheme, host and port (pdl1site/origin.py).
        "websocket": websocket_application(),
    }
)
