"""Slide I/O: open, inspect and validate whole-slide files (OpenSlide, plain images, OME-TIFF).

The lowest layer of the platform (see the README's layout section): it imports no app, so the
clinical record (cases), the science (analysis) and the workers all read slides through it.
"""
