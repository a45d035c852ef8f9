"""The viewer API's input, parsed by DRF serializers: query parameters (viewport, density grid, hot
spots, export format) and request bodies (a correction, a region, the base_version of a save).

`parse()` turns a refused input into ViewerInputError (HTTP 400) with one message that names the
field, the first problem in the order the fields are declared. Checks that need the database or the
job's detections (does this detection exist, is it already deleted) stay in viewer.corrections.
"""

from __future__ import annotations

import math

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analysis.labels import LABEL_CODES, LABEL_NAMES
from viewer.choices import CorrectionOp, ExportFormat, RegionKind
from viewer.errors import ViewerInputError

MAX_POINTS_LIMIT = 100_000
DEFAULT_MAX_POINTS = 20_000
GRID_PX_RANGE = (16, 1 << 20)
MAX_DENSITY_CELLS = 1 << 20
HOTSPOT_FIELD_MM2 = 1.0
HOTSPOT_MIN_CELLS = 20
MAX_REGION_VERTICES = 1000
DATABASE_ID_LIMIT = 2**63  # larger ids overflow the query


def parse(serializer_class, data, **context) -> dict:
    """The validated input of `serializer_class`; raises ViewerInputError with the first problem."""
    found = serializer_class(data=data, context=context)
    if not found.is_valid():
        raise ViewerInputError(_first_message(found.errors))
    return dict(found.validated_data)


def _first_message(errors) -> str:
    while isinstance(errors, (dict, list)) and errors:
        errors = next(iter(errors.values())) if isinstance(errors, dict) else errors[0]
    return str(errors)


class _Input(serializers.Serializer):
    default_error_messages = {"invalid": "expected a JSON object"}


class _Number(serializers.FloatField):
    """A finite number; infinity and NaN get their own message. json_number: a JSON number only (a request
    body's coordinate), not a string such as "12.5" (query parameters are strings, and accepted)."""

    def __init__(self, *, json_number: bool = False, **kwargs):
        self.json_number = json_number
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        if self.json_number and not isinstance(data, (int, float)):
            if isinstance(data, str) and not _finite_text(data):
                self.fail("not_finite")  # "nan", "inf": named as the problem they are
            self.fail("invalid")
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError:
            try:
                finite = math.isfinite(float(data))
            except (TypeError, ValueError, OverflowError):
                finite = True
            if not finite:
                self.fail("not_finite")
            raise


def _finite_text(text: str) -> bool:
    """False for a string that reads as infinity or NaN ("nan", "-inf"); True otherwise."""
    try:
        return math.isfinite(float(text))
    except (ValueError, OverflowError):
        return True


def number(name: str, *, what: str = "a number", low=None, high=None, **kwargs) -> _Number:
    """A finite number field; json_number=True refuses strings (a request body's coordinates)."""
    between = f"{name} must be between {low:g} and {high:g}" if low is not None and high is not None else None
    return _Number(min_value=low, max_value=high, error_messages={
        "required": f"{name} is required", "null": f"{name} is required", "invalid": f"{name} must be {what}",
        "not_finite": f"{name} must be finite", "overflow": f"{name} must be finite",
        "max_string_length": f"{name} must be {what}", "min_value": between, "max_value": between}, **kwargs)


def integer(name: str, *, low=None, high=None, required: str | None = None, **kwargs) -> serializers.IntegerField:
    """An integer; `required`: the message when it is missing."""
    between = f"{name} must be between {low} and {high}" if low is not None and high is not None else None
    return serializers.IntegerField(min_value=low, max_value=high, error_messages={
        "required": required or f"{name} is required", "null": required or f"{name} is required",
        "invalid": f"{name} must be an integer", "max_string_length": f"{name} must be an integer",
        "min_value": between, "max_value": between}, **kwargs)


def choice(name: str, values, **kwargs) -> serializers.ChoiceField:
    message = f"{name} must be one of {', '.join(values)}"
    return serializers.ChoiceField(choices=list(values), error_messages={
        "required": message, "null": message, "invalid_choice": message}, **kwargs)


class _Layers(serializers.CharField):
    def to_internal_value(self, data) -> set[int]:
        names = [n.strip() for n in str(data).split(",") if n.strip()]
        if not names or any(n not in LABEL_CODES for n in names):
            raise serializers.ValidationError(f"layers must be a comma-separated list of {', '.join(LABEL_CODES)}")
        return {LABEL_CODES[n] for n in names}


@extend_schema_field({"type": "string", "enum": sorted(LABEL_CODES)})
class _Label(serializers.Field):
    """A cell label by name (positive, negative) or by its code."""

    def __init__(self, **kwargs):
        message = "label must be positive or negative"
        super().__init__(error_messages={"required": message, "null": message, "invalid": message}, **kwargs)

    def to_internal_value(self, data) -> int:
        if isinstance(data, str) and data in LABEL_CODES:
            return LABEL_CODES[data]
        if isinstance(data, int) and not isinstance(data, bool) and data in LABEL_NAMES:
            return data
        self.fail("invalid")


@extend_schema_field({"type": "string", "example": "c7"})
class _PointRef(serializers.Field):
    """A point id from the overlay: a store index ("12", 12) or an added point ("c7")."""

    def __init__(self, **kwargs):
        super().__init__(error_messages={"required": "detection is required: a point id from the overlay",
                                         "null": "detection is required: a point id from the overlay"}, **kwargs)

    def to_internal_value(self, value) -> tuple[int | None, int | None]:
        """(store index, added-point correction id)."""
        if isinstance(value, str) and value.startswith("c"):
            try:
                return None, int(value[1:])
            except ValueError:
                raise serializers.ValidationError(f"detection {value!r} is not a point id") from None
        if isinstance(value, bool):
            raise serializers.ValidationError("detection must be a point id")
        try:
            index = int(value)
        except (TypeError, ValueError, OverflowError):
            raise serializers.ValidationError(f"detection {str(value)[:40]!r} is not a point id") from None
        if isinstance(value, float) and value != index:
            raise serializers.ValidationError(f"detection {value!r} is not a point id")
        return index, None


@extend_schema_field({"type": "array", "minItems": 3, "maxItems": MAX_REGION_VERTICES,
                     "items": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}})
class _Vertices(serializers.Field):
    """[[x, y], ...] level-0 px inside the slide (context: width, height), rounded to 0.1 px."""

    def __init__(self, **kwargs):
        message = "vertices must be a list of [x, y] level-0 px"
        super().__init__(error_messages={"required": message, "null": message, "invalid": message}, **kwargs)

    def to_internal_value(self, raw) -> list[list[float]]:
        if not isinstance(raw, list):
            self.fail("invalid")
        width, height = self.context["width"], self.context["height"]
        vertices = []
        for i, v in enumerate(raw):
            if not (isinstance(v, (list, tuple)) and len(v) == 2
                    and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v)):
                raise serializers.ValidationError(f"vertex {i} must be [x, y] (numbers, level-0 px)")
            try:  # a JSON integer of 400 digits is an int that no float holds
                x, y = float(v[0]), float(v[1])
            except OverflowError:
                raise serializers.ValidationError(f"vertex {i} must be finite") from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise serializers.ValidationError(f"vertex {i} must be finite")
            if not (0 <= x <= width and 0 <= y <= height):
                raise serializers.ValidationError(
                    f"vertex {i} ({x:g}, {y:g}) is outside the slide (0 to {width} x 0 to {height} px)")
            vertices.append([round(x, 1), round(y, 1)])
        if len(vertices) > 1 and vertices[0] == vertices[-1]:
            vertices.pop()  # a closed ring: drop the repeated first vertex
        if len(vertices) < 3:
            raise serializers.ValidationError(f"a region needs at least 3 vertices, got {len(vertices)}")
        if len(vertices) > MAX_REGION_VERTICES:
            raise serializers.ValidationError(
                f"a region has at most {MAX_REGION_VERTICES} vertices, got {len(vertices)}")
        if len({tuple(v) for v in vertices}) != len(vertices):
            raise serializers.ValidationError("the region repeats a vertex")
        return vertices


# --- Query parameters ----------------------------------------------------------------------------

class ViewportParams(_Input):
    """x0, y0, x1, y1 (level-0 px), max points and layers of an overlay query."""

    x0, y0, x1, y1 = (number(n) for n in ("x0", "y0", "x1", "y1"))
    max = integer("max", low=1, high=MAX_POINTS_LIMIT, required=False, default=DEFAULT_MAX_POINTS)
    layers = _Layers(required=False, allow_blank=True, default=None)

    def validate(self, attrs):
        if attrs["x1"] <= attrs["x0"] or attrs["y1"] <= attrs["y0"]:
            raise serializers.ValidationError("the viewport must have x1 > x0 and y1 > y0")
        return attrs


class GridParams(_Input):
    """grid_px of the density layer; context: store (its size bounds the grid's cells)."""

    grid_px = integer("grid_px", low=GRID_PX_RANGE[0], high=GRID_PX_RANGE[1], required=False, default=512)

    def validate(self, attrs):
        store, grid_px = self.context["store"], attrs["grid_px"]
        if math.ceil(store.width / grid_px) * math.ceil(store.height / grid_px) > MAX_DENSITY_CELLS:
            raise serializers.ValidationError("grid_px is too small for this slide: the grid would have over a "
                                              "million cells")
        return attrs


class HotspotParams(_Input):
    field_mm2 = number("field_mm2", low=0.01, high=100, required=False, default=HOTSPOT_FIELD_MM2)
    min_cells = integer("min_cells", low=1, high=100_000, required=False, default=HOTSPOT_MIN_CELLS)


class ExportParams(_Input):
    format = choice("format", ExportFormat.values, required=False, default=ExportFormat.CSV)


def check_viewport_params(params) -> dict:
    """x0, y0, x1, y1 (level-0 px), max_points and layers from a query string; raises ViewerInputError."""
    found = parse(ViewportParams, params)
    found["max_points"] = found.pop("max")
    found["layers"] = found["layers"] or set(LABEL_NAMES)
    return found


def check_grid_px(params, store) -> int:
    return parse(GridParams, params, store=store)["grid_px"]


def check_hotspot_params(params) -> dict:
    return parse(HotspotParams, params)


def check_export_format(params) -> str:
    return parse(ExportParams, {"format": params.get("format") or ExportFormat.CSV})["format"]


# --- Request bodies ------------------------------------------------------------------------------

class BaseVersion(_Input):
    base_version = integer("base_version", required="base_version is required: the version of the corrections "
                                                    "you loaded")


class CorrectionOpInput(_Input):
    op = choice("op", CorrectionOp.values)


class AddedPoint(_Input):
    """An added cell: x, y inside the slide (context: width, height) and its label."""

    # JSON numbers only, as a region's vertices: "12.5" is refused in both.
    x = number("x", what="a number (level-0 px)", json_number=True)
    y = number("y", what="a number (level-0 px)", json_number=True)
    label = _Label()

    def validate(self, attrs):
        for name, limit in (("x", self.context["width"]), ("y", self.context["height"])):
            if not 0 <= attrs[name] < limit:
                raise serializers.ValidationError(f"{name}={attrs[name]:g} is outside the slide (0 to {limit} px)")
        return attrs


class PointRef(_Input):
    """The point a delete or reclassify names (`detection`, or `id`)."""

    detection = _PointRef()


class Relabel(_Input):
    label = _Label()


class UndoTarget(_Input):
    target = integer("target", low=1, high=DATABASE_ID_LIMIT - 1,
                     required="target is required: the id of the correction to undo")


class RegionInput(BaseVersion):
    """base_version, kind and vertices of a drawn region; context: the slide's width and height.
    replaces: the id of an active region this one takes the place of (an edit of its vertices, or its undo),
    deleted in the same save."""

    kind = choice("kind", RegionKind.values)
    vertices = _Vertices()
    replaces = integer("replaces", low=1, high=DATABASE_ID_LIMIT - 1, default=None, allow_null=True)


def check_base_version(data) -> int:
    return parse(BaseVersion, data if isinstance(data, dict) else {})["base_version"]
