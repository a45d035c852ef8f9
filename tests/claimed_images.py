"""Tiny image files whose headers claim a huge size (what a hostile or broken upload looks like)."""

import struct
import zlib


def tiff_claiming(path, width: int, height: int):
    """A classic tiled TIFF of a few hundred KB claiming width x height: one 256x256 zlib tile is
    stored and every tile offset points at it."""
    tile = zlib.compress(bytes(256 * 256 * 3))
    tiles = (-(-width // 256)) * (-(-height // 256))
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 3, None), (259, 3, 1, 8), (262, 3, 1, 2),
               (277, 3, 1, 3), (322, 3, 1, 256), (323, 3, 1, 256), (324, 4, tiles, None), (325, 4, tiles, None)]
    ifd_at = 8
    bps_at = ifd_at + 2 + 12 * len(entries) + 4
    offsets_at = bps_at + 6
    counts_at = offsets_at + 4 * tiles
    data_at = counts_at + 4 * tiles
    pointers = {258: bps_at, 324: offsets_at, 325: counts_at}
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<H", len(entries)))
    for tag, typ, count, value in entries:
        if tag in pointers:
            out += struct.pack("<HHII", tag, typ, count, pointers[tag])
        elif typ == 3:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8)
    out += struct.pack("<I", data_at) * tiles + struct.pack("<I", len(tile)) * tiles + tile
    path.write_bytes(bytes(out))
    return path


def png_claiming(path, width: int, height: int):
    """A PNG of a few bytes whose header claims width x height (RGB)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
                     + chunk(b"IEND", b""))
    return path
