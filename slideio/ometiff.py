"""OME-TIFF reader with OpenSlide's interface, for files that OpenSlide refuses.

Reads regions through tifffile's zarr store, so only the tiles a region touches are decoded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np

from slideio.pyramid import pyramid_problem

_UNIT_TO_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


class OmeTiffSlide:
    def __init__(self, path: str):
        import tifffile
        import zarr

        self._tif = tifffile.TiffFile(path)
        series = self._tif.series[0]
        self._axes = series.axes
        if not set(self._axes) >= {"Y", "X"}:
            self._tif.close()
            raise ValueError(f"OME-TIFF series has axes {self._axes}, expected Y and X")
        store = series.aszarr()
        root = zarr.open(store, mode="r")
        # A single-level series opens as an array, a pyramid as a group of "0", "1", ...
        self._levels = [root] if hasattr(root, "shape") else [root[str(i)] for i in range(len(series.levels))]
        shapes = [lvl.shape for lvl in self._levels]
        yi, xi = self._axes.index("Y"), self._axes.index("X")
        self.level_dimensions = tuple((int(s[xi]), int(s[yi])) for s in shapes)
        self.dimensions = self.level_dimensions[0]
        self.level_count = len(self._levels)
        # As OpenSlide: the mean of the width and height ratios (the width alone hid a level whose
        # height is reduced by another factor); a level that no one factor explains is refused.
        width0, height0 = self.dimensions
        self.level_downsamples = tuple((width0 / w + height0 / h) / 2 for w, h in self.level_dimensions)
        problem = pyramid_problem(self.level_dimensions, self.level_downsamples)
        if problem is not None:
            self._tif.close()
            raise ValueError(problem)
        self.properties = self._read_properties()
        self.associated_images = {}
        self._scale = self._intensity_scale()

    def _intensity_scale(self) -> float | None:
        """Factor to 8 bits, one for the whole file (None: already uint8).  A per-region scale (its own
        brightest pixel) made one pixel read differently in every tile that holds it: glass and tissue
        alike stretched to white, the DAB and tissue thresholds moved from tile to tile."""
        dtype = np.dtype(self._levels[0].dtype)
        if dtype == np.uint8:
            return None
        if dtype.kind != "u":
            self._tif.close()
            raise ValueError(f"OME-TIFF pixels are {dtype}: only unsigned integer brightfield images are read "
                             "(export the slide as 8- or 16-bit RGB)")
        bits = dtype.itemsize * 8
        try:
            pixels = next(el for el in ET.fromstring(self._tif.ome_metadata or "").iter() if el.tag.endswith("Pixels"))
            declared = int(pixels.get("SignificantBits") or bits)
            bits = declared if 8 <= declared <= bits else bits
        except (ET.ParseError, StopIteration, ValueError):
            pass
        return 255.0 / float(2 ** bits - 1)

    def _read_properties(self) -> dict[str, str]:
        props = {"openslide.vendor": "ome-tiff", "tiff.ImageDescription": "OME-XML"}
        xml = self._tif.ome_metadata or ""
        try:
            root = ET.fromstring(xml)
        except ET.ParseError:
            return props
        pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
        if pixels is None:
            return props
        for axis in ("X", "Y"):
            size = pixels.get(f"PhysicalSize{axis}")
            unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
            if size is not None and unit in _UNIT_TO_UM:
                props[f"openslide.mpp-{axis.lower()}"] = str(float(size) * _UNIT_TO_UM[unit])
        return props

    def get_best_level_for_downsample(self, downsample: float) -> int:
        best = 0
        for i, ds in enumerate(self.level_downsamples):
            if ds <= downsample:
                best = i
        return best

    def read_region(self, location, level, size):
        """RGBA region: `location` in level-0 pixels, `size` in pixels of `level` (as OpenSlide)."""
        from PIL import Image

        x0 = int(round(location[0] / self.level_downsamples[level]))
        y0 = int(round(location[1] / self.level_downsamples[level]))
        w, h = int(size[0]), int(size[1])
        lw, lh = self.level_dimensions[level]
        out = np.zeros((h, w, 4), dtype=np.uint8)  # transparent outside the image, as OpenSlide
        xs, ys = max(0, x0), max(0, y0)
        xe, ye = min(lw, x0 + w), min(lh, y0 + h)
        if xe > xs and ye > ys:
            rgb = self._read_rgb(level, ys, ye, xs, xe)
            out[ys - y0:ye - y0, xs - x0:xe - x0, :3] = rgb
            out[ys - y0:ye - y0, xs - x0:xe - x0, 3] = 255
        return Image.fromarray(out, "RGBA")

    def _read_rgb(self, level, ys, ye, xs, xe) -> np.ndarray:
        index = []
        for axis in self._axes:
            index.append(slice(ys, ye) if axis == "Y" else slice(xs, xe) if axis == "X" else
                         slice(None) if axis in "CS" else 0)
        data = np.asarray(self._levels[level][tuple(index)])
        kept = [a for a in self._axes if a in "YXCS"]
        data = np.moveaxis(data, [kept.index("Y"), kept.index("X")], [0, 1])
        if data.ndim == 2:
            data = np.repeat(data[:, :, None], 3, axis=2)
        data = data[:, :, :3]
        if self._scale is not None:
            data = np.clip(np.rint(data.astype(np.float32) * self._scale), 0, 255).astype(np.uint8)
        return data

    def get_thumbnail(self, size):
        from PIL import Image

        downsample = max(self.dimensions[0] / size[0], self.dimensions[1] / size[1])
        level = self.get_best_level_for_downsample(downsample)
        tile = self.read_region((0, 0), level, self.level_dimensions[level])
        background = Image.new("RGB", tile.size, "white")
        background.paste(tile, mask=tile.split()[3])
        background.thumbnail(size)
        return background

    def close(self):
        self._tif.close()
