"""Tile ETags: opaque keyed hashes of what a tile's bytes depend on, and If-None-Match matching."""

from __future__ import annotations


def tile_etag_prefix(slide) -> str:
    """What a tile's bytes depend on besides its address (the file's content and the tiling), as an
    opaque keyed hash: the file's sha256 itself, shown to annotators, would link a pseudonymous
    slide to its identified record."""
    from django.utils.crypto import salted_hmac

    from viewer.tiles import TILE_SIZE, OVERLAP, _jpeg_quality

    return salted_hmac("viewer.tile-etag", f"{slide.sha256}-{TILE_SIZE}-{OVERLAP}-q{_jpeg_quality()}",
                       algorithm="sha256").hexdigest()[:32]


def tile_etag(slide, level: int, col: int, row: int) -> str:
    return f'"{tile_etag_prefix(slide)}-{level}-{col}-{row}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return etag in tags
