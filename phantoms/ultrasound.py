"""The B-mode rendering pipeline.

A phantom is described as an *echogenicity map* (mean backscatter amplitude per pixel: tissue about
0.5, fluid about 0.02, bone 2-3) plus *shadow casters* and *enhancers*. The map is drawn at a working
resolution (longest side at most ``WORK_MAX`` pixels) and turned into a B-mode image by

1. acoustic shadowing / posterior enhancement below casters (along the beam, i.e. downwards),
2. depth attenuation partly compensated by time-gain compensation,
3. Rayleigh speckle: a complex Gaussian field blurred by an anisotropic point-spread function
   (longer laterally than axially), whose magnitude multiplies the map,
4. log compression to a fixed dynamic range, upsampling to the native size, and the probe's field
   of view (a curvilinear fan or a linear rectangle; black outside).

Ground-truth masks are drawn at the native resolution from the same polygons (``Canvas.mask``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from phantoms.shapes import Points

WORK_MAX = 384  # longest side of the working canvas in pixels
_SHIFT = 4  # sub-pixel bits for cv2 polygon drawing
REF_LEVEL = 14.0  # echo amplitude mapped to white (before gain jitter)


@dataclass(frozen=True)
class Field:
    """The probe's field of view in native pixels: a curvilinear fan or a linear rectangle."""

    width: int
    height: int
    kind: str  # "curved" or "linear"
    apex: tuple[float, float] = (0.0, 0.0)
    r0: float = 0.0
    r1: float = 0.0
    half_angle: float = 0.0  # radians
    rect: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def polygon(self) -> Points:
        if self.kind == "linear":
            x0, y0, x1, y1 = self.rect
            return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
        t = np.linspace(-self.half_angle, self.half_angle, 96)
        ax, ay = self.apex
        outer = np.stack([ax + self.r1 * np.sin(t), ay + self.r1 * np.cos(t)], axis=1)
        inner = np.stack([ax + self.r0 * np.sin(t[::-1]), ay + self.r0 * np.cos(t[::-1])], axis=1)
        return np.concatenate([outer, inner], axis=0)

    def safe_box(self) -> tuple[float, float, float, float]:
        """An axis-aligned box (x0, y0, x1, y1) that lies wholly inside the field, with a margin."""
        if self.kind == "linear":
            x0, y0, x1, y1 = self.rect
            mx, my = 0.04 * (x1 - x0), 0.05 * (y1 - y0)
            return x0 + mx, y0 + my, x1 - mx, y1 - my
        ax, ay = self.apex
        h = self.height
        top = ay + self.r0 + 0.04 * h
        bottom = ay + self.r1 - 0.10 * h
        hw_angle = (top - ay) * np.tan(self.half_angle - np.deg2rad(3))
        hw_radius = np.sqrt(max((self.r1 - 0.02 * h) ** 2 - (bottom - ay) ** 2, 0.0))
        hw = min(hw_angle, hw_radius, 0.46 * self.width)
        return ax - hw, top, ax + hw, bottom

    def depth_map(self, w: int, h: int, scale: float) -> np.ndarray:
        """Normalised depth (0 at the probe face, 1 at the deepest line) on a working grid."""
        ys = (np.arange(h, dtype=np.float32) + 0.5) / scale
        xs = (np.arange(w, dtype=np.float32) + 0.5) / scale
        if self.kind == "linear":
            _, y0, _, y1 = self.rect
            d = (ys - y0) / max(y1 - y0, 1.0)
            return np.clip(np.broadcast_to(d[:, None], (h, w)), 0, 1).astype(np.float32)
        r = np.hypot(xs[None, :] - self.apex[0], ys[:, None] - self.apex[1])
        return np.clip((r - self.r0) / (self.r1 - self.r0), 0, 1).astype(np.float32)


def make_field(rng: np.random.Generator, width: int, height: int, kind: str) -> Field:
    """A random but plausible field of view for a ``width`` x ``height`` image."""
    if kind == "linear":
        mx = width * rng.uniform(0.06, 0.14)
        top = height * rng.uniform(0.04, 0.09)
        bottom = height * rng.uniform(0.94, 0.98)
        return Field(width, height, "linear", rect=(mx, top, width - mx, bottom))
    a = height * rng.uniform(0.4, 0.75)
    r0 = a + height * rng.uniform(0.03, 0.07)
    r1 = a + height * rng.uniform(0.94, 0.98)
    half = min(np.deg2rad(rng.uniform(32, 40)), float(np.arcsin(min(0.49 * width / r1, 1.0))))
    return Field(width, height, "curved", apex=(width / 2, -a), r0=r0, r1=r1, half_angle=half)


def smooth_noise(rng: np.random.Generator, w: int, h: int, cells: int, sigma: float) -> np.ndarray:
    """Log-normal multiplicative variation with about ``cells`` blobs across: exp(sigma * N(0,1) field)."""
    cw = max(2, cells)
    ch = max(2, int(round(cells * h / max(w, 1))))
    small = rng.standard_normal((ch, cw)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.exp(sigma * big).astype(np.float32)


@dataclass
class Canvas:
    """Working-resolution echogenicity map plus a native-resolution label mask, drawn from one geometry."""

    width: int
    height: int
    rng: np.random.Generator
    field: Field
    scale: float = 1.0
    echo: np.ndarray = field(init=False)
    caster: np.ndarray = field(init=False)
    enhancer: np.ndarray = field(init=False)
    mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.scale = min(1.0, WORK_MAX / max(self.width, self.height))
        self.w = max(8, int(round(self.width * self.scale)))
        self.h = max(8, int(round(self.height * self.scale)))
        self.echo = np.full((self.h, self.w), 0.5, np.float32)
        self.caster = np.zeros((self.h, self.w), np.float32)
        self.enhancer = np.zeros((self.h, self.w), np.float32)
        self.mask = np.zeros((self.height, self.width), np.uint8)
        self._fov: np.ndarray | None = None

    # -- geometry helpers -------------------------------------------------------------------
    def box(self) -> tuple[float, float, float, float]:
        return self.field.safe_box()

    @property
    def unit(self) -> float:
        """The smaller side of the safe box: the size reference for structures."""
        x0, y0, x1, y1 = self.box()
        return min(x1 - x0, y1 - y0)

    def place(self, half_w: float, half_h: float, fx: tuple[float, float] = (0, 1), fy: tuple[float, float] = (0, 1)):
        """A random centre at which a shape of the given half extents lies inside the safe box.

        ``fx``/``fy`` restrict the centre to a fraction range of the admissible interval.
        """
        x0, y0, x1, y1 = self.box()
        lo_x, hi_x = x0 + half_w, x1 - half_w
        lo_y, hi_y = y0 + half_h, y1 - half_h
        if hi_x < lo_x:
            lo_x = hi_x = (x0 + x1) / 2
        if hi_y < lo_y:
            lo_y = hi_y = (y0 + y1) / 2
        u = self.rng.uniform(*fx)
        v = self.rng.uniform(*fy)
        return lo_x + u * (hi_x - lo_x), lo_y + v * (hi_y - lo_y)

    @staticmethod
    def _fixed(pts: Points, scale: float) -> np.ndarray:
        """cv2 fixed-point vertices; pixel i spans [i, i+1) so its centre is at i + 0.5."""
        return np.round((np.asarray(pts, float) * scale - 0.5) * (1 << _SHIFT)).astype(np.int32)

    def region(self, pts: Points) -> np.ndarray:
        """Boolean working-resolution mask of a polygon."""
        m = np.zeros((self.h, self.w), np.uint8)
        cv2.fillPoly(m, [self._fixed(pts, self.scale)], 1, cv2.LINE_8, _SHIFT)
        return m.astype(bool)

    # -- drawing ----------------------------------------------------------------------------
    def background(self, level: float, variation: float = 0.25, cells: int = 5, layers: int = 0) -> None:
        """Fill with tissue of mean ``level``, slow variation, and optional bright horizontal fascia layers."""
        self.echo[:] = level * smooth_noise(self.rng, self.w, self.h, cells, variation)
        x0, y0, x1, y1 = self.box()
        for _ in range(layers):
            y = self.rng.uniform(y0 - 0.05 * self.height, y1)
            xs = np.linspace(0, self.width, 24)
            ys = y + np.cumsum(self.rng.normal(0, 0.006 * self.height, 24))
            self.stroke(np.stack([xs, ys], 1), self.rng.uniform(0.004, 0.01) * self.height, level * 2.2)

    def fill(
        self,
        pts: Points,
        level: float,
        cls: int | None = None,
        mode: str = "set",
        shadow: float = 0.0,
        enhance: float = 0.0,
        texture: float = 0.0,
        texture_cells: int = 12,
    ) -> np.ndarray:
        """Paint a polygon: ``set`` replaces the echo level, ``mul`` scales it. Returns the working mask."""
        m = self.region(pts)
        value: np.ndarray | float = level
        if texture > 0:
            value = level * smooth_noise(self.rng, self.w, self.h, texture_cells, texture)[m]
        if mode == "set":
            self.echo[m] = value
            self.caster[m] = shadow
            self.enhancer[m] = enhance
        else:
            self.echo[m] *= value
            if shadow:
                self.caster[m] = np.maximum(self.caster[m], shadow)
            if enhance:
                self.enhancer[m] = np.maximum(self.enhancer[m], enhance)
        if cls is not None:
            self.label(pts, cls)
        return m

    def label(self, pts: Points, cls: int) -> None:
        """Draw a polygon into the native-resolution label mask only."""
        cv2.fillPoly(self.mask, [self._fixed(pts, 1.0)], int(cls), cv2.LINE_8, _SHIFT)

    def stroke(self, pts: Points, width: float, level: float, closed: bool = False, shadow: float = 0.0) -> None:
        """Draw a thick polyline (width in native pixels) into the echo map."""
        m = np.zeros((self.h, self.w), np.uint8)
        t = max(1, int(round(width * self.scale)))
        cv2.polylines(m, [self._fixed(pts, self.scale)], closed, 1, t, cv2.LINE_8, _SHIFT)
        sel = m.astype(bool)
        self.echo[sel] = level
        self.caster[sel] = np.maximum(self.caster[sel], shadow)

    def dots(self, centres: Points, radius: float, level: float, shadow: float = 0.0) -> None:
        """Small filled discs (radius in native pixels) into the echo map."""
        m = np.zeros((self.h, self.w), np.uint8)
        r = max(1, int(round(radius * self.scale)))
        for x, y in np.asarray(centres, float):
            cv2.circle(m, (int(round(x * self.scale)), int(round(y * self.scale))), r, 1, -1)
        sel = m.astype(bool)
        self.echo[sel] = level
        self.caster[sel] = np.maximum(self.caster[sel], shadow)

    # -- rendering --------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """The B-mode image at the native size (uint8, single channel), black outside the field."""
        rng = self.rng
        sx, sy = rng.uniform(1.8, 2.6), rng.uniform(0.6, 0.9)  # lateral, axial PSF widths (working px)
        e = cv2.GaussianBlur(self.echo, (0, 0), sigmaX=0.6 * sx, sigmaY=0.8 * sy)
        e *= _beam_profile(self.caster, darken=True)
        e *= _beam_profile(self.enhancer, darken=False)
        depth = self.field.depth_map(self.w, self.h, self.scale)
        atten = rng.uniform(1.2, 2.0)
        tgc = rng.uniform(0.55, 0.8)
        e *= np.exp(-atten * (1 - tgc) * depth) * (1.0 + rng.uniform(0.3, 0.8) * np.exp(-depth / 0.03))
        iq = rng.standard_normal((self.h, self.w, 2), dtype=np.float32)
        iq = cv2.GaussianBlur(iq, (0, 0), sigmaX=sx, sigmaY=sy)
        speckle = cv2.magnitude(iq[..., 0], iq[..., 1])
        speckle *= 1.0 / max(float(speckle.mean()), 1e-6)
        speckle = 0.25 + 0.75 * speckle  # partly developed speckle: fewer black dropouts
        amp = e * speckle + 0.004 * np.abs(rng.standard_normal((self.h, self.w), dtype=np.float32))
        dyn = rng.uniform(42.0, 50.0)
        ref = REF_LEVEL * 10 ** (rng.uniform(-2.0, 2.0) / 20)
        db = 20.0 * np.log10(np.maximum(amp, 1e-5) * (1.0 / ref))
        img = np.clip((db + dyn) * (255.0 / dyn) + 0.5, 0, 255).astype(np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 0.6)
        img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return img * self.field_mask()

    def field_mask(self) -> np.ndarray:
        """Native mask of the field of view (uint8, 1 inside), computed once."""
        if self._fov is None:
            fov = np.zeros((self.height, self.width), np.uint8)
            cv2.fillPoly(fov, [self._fixed(self.field.polygon(), 1.0)], 1, cv2.LINE_8, _SHIFT)
            self._fov = fov
        return self._fov


def _beam_profile(source: np.ndarray, darken: bool) -> np.ndarray:
    """Multiplicative gain below casters (shadow) or enhancers, along the beam (downwards)."""
    if not source.any():
        return np.ones_like(source)
    below = np.maximum.accumulate(source, axis=0)
    below = cv2.GaussianBlur(below, (0, 0), sigmaX=2.0, sigmaY=0.5)
    below[source > 0] = 0.0  # the structure itself is not in its own shadow
    return (1.0 - below) if darken else (1.0 + below)
