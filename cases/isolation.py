"""Decode untrusted slide files in a child process with a memory ceiling and a time limit.

A file's header can pass every size check and still make a decoder allocate without bound (a
single 65536² tile, a compression bomb), and the C libraries under OpenSlide abort the whole
process when an allocation fails. So the validation that decodes pixels runs in a child forked
from a small fork server (never from the threaded web process), limited by RLIMIT_AS: the web
process never holds those pixels, and a failure is an error message, not a crash.
"""

from __future__ import annotations

import multiprocessing
import resource

from slideio.slidefile import SlideError

_READERS = ["slideio.slidefile", "slideio.ometiff", "numpy", "openslide", "PIL.Image", "tifffile"]
_context = multiprocessing.get_context("forkserver")
# The fork server imports only the slide readers (not Django, not the caller's __main__), so a
# child starts in milliseconds with them mapped.
_context.set_forkserver_preload(_READERS)


def _load_readers():
    """Map every reader library before the ceiling: loading one later would count against it."""
    import importlib

    for name in _READERS:
        importlib.import_module(name)
    from PIL import Image

    Image.init()  # PIL loads its format plugins lazily


def _child(conn, func, args, memory_bytes):
    _load_readers()
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        result = (True, func(*args))
    except MemoryError:
        result = (False, SlideError("decoding the image needs more memory than the limit allows "
                                    "(SLIDE_VALIDATION_MEMORY_BYTES)"))
    except Exception as exc:  # noqa: BLE001  sent back and raised in the parent
        result = (False, exc)
    try:
        conn.send(result)
    except Exception as exc:  # noqa: BLE001  an exception that does not pickle
        conn.send((False, SlideError(f"{type(exc).__name__}: {exc}"[:500])))
    finally:
        conn.close()


def run_limited(func, *args, memory_bytes: int, timeout_s: float):
    """func(*args) in a child process with at most `memory_bytes` of address space; its exceptions
    are raised here. A child that dies (an aborted allocation) or overruns `timeout_s` is a SlideError."""
    receiver, sender = _context.Pipe(duplex=False)
    process = _context.Process(target=_child, args=(sender, func, args, memory_bytes))
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise SlideError(f"validating the file took longer than {timeout_s:g} s")
        ok, value = receiver.recv()
    except EOFError:  # the child died without answering: killed, or aborted by a C library
        raise SlideError("the file could not be decoded within the memory limit "
                         "(SLIDE_VALIDATION_MEMORY_BYTES): it may be corrupt or a decompression bomb") from None
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()
    if not ok:
        raise value
    return value
