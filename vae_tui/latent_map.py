"""The latent map: the atlas' encodings projected on a plane, as a class-coloured half-block scatter.

Pure code: planes, views and the scatter's cells; vae_tui.widgets.map_view draws them.
"""

import functools
from dataclasses import dataclass

import torch

from models.atlas import Atlas
from vae_tui.state import Z_LIMIT

# Ten colours of the xterm 6x6x6 cube, so a 256-colour terminal shows exactly what truecolor does; chosen by a
# max-min search over the cube's colours lighter than L* 45: every pair is at least 30 apart in CIEDE2000.
CLASS_COLOURS = (
    "#ff005f",
    "#ffd700",
    "#00ff00",
    "#af00ff",
    "#5fffff",
    "#af5f00",
    "#87afff",
    "#5f8700",
    "#ffd7d7",
    "#008787",
)
OTHER_CLASSES_COLOUR = "#808080"  # past ten classes, the classes without a colour of their own (the xterm grey ramp's)
CURSOR_STEPS = 40  # a cursor step is 1/40 of the view
VIEW_QUANTILE = 0.005  # the view spans the points between these quantiles on each axis ...
VIEW_MARGIN = 0.08  # ... widened by this fraction on each side
MANIFOLD_SIDE = 15  # images per side of the manifold grid `g` saves in map mode


@dataclass(frozen=True)
class ClassColours:
    """Which classes the map colours: all of them, one colour each, up to ten classes; past ten, the nine with the
    most points and the current class (the tenth colour, when it is not among them), the others grey. Ten colours
    are as many as stay distinguishable (tests/test_map.py); repeating them would make two classes look one."""

    coloured: tuple[int, ...]  # the classes with a colour, in class order
    palette: tuple[str, ...]  # colour i is coloured[i]'s; the last one is grey when some classes are not coloured
    num_classes: int

    @property
    def others(self) -> int:
        """How many classes are drawn grey."""
        return self.num_classes - len(self.coloured)

    def codes(self, labels: torch.Tensor) -> torch.Tensor:
        """Each point's index into palette (N,), from its class labels (N,)."""
        lookup = torch.full((self.num_classes,), len(self.palette) - 1, dtype=torch.long)
        lookup[list(self.coloured)] = torch.arange(len(self.coloured))
        return lookup[labels.long()]


def class_colours(labels: torch.Tensor, num_classes: int, current: int) -> ClassColours:
    """The map's colours for points of classes labels (N,) of num_classes, current the explorer's class. Each of the
    nine largest classes keeps its colour whatever the current class."""
    if num_classes <= len(CLASS_COLOURS):
        return ClassColours(tuple(range(num_classes)), CLASS_COLOURS[:num_classes], num_classes)
    counts = torch.bincount(labels.long(), minlength=num_classes).tolist()
    largest = sorted(range(num_classes), key=lambda label: (-counts[label], label))[: len(CLASS_COLOURS) - 1]
    coloured = sorted({*largest, current})
    nine = iter(CLASS_COLOURS[:-1])  # the largest classes', in class order; the tenth is the current class's
    palette = tuple(next(nine) if label in largest else CLASS_COLOURS[-1] for label in coloured)
    return ClassColours(tuple(coloured), (*palette, OTHER_CLASSES_COLOUR), num_classes)


@dataclass(frozen=True)
class Plane:
    """A plane through latent space: the points origin + u * axes[0] + v * axes[1], axes orthonormal (or zero)."""

    origin: torch.Tensor  # (D,)
    axes: torch.Tensor  # (2, D)
    names: tuple[str, str]  # how the caption names the x and y axes

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, 2): the coordinates of z's foot on the plane."""
        return (z.float() - self.origin) @ self.axes.T

    def coordinates(self, z: list[float]) -> tuple[float, float]:
        """One point's (u, v), in plain Python: the map asks on every cursor move and nudge, where torch's
        per-call cost is most of the time."""
        origin, (x_axis, y_axis) = self._lists
        u = v = 0.0
        for value, o, x, y in zip(z, origin, x_axis, y_axis, strict=True):
            u += (value - o) * x
            v += (value - o) * y
        return u, v

    @functools.cached_property
    def _lists(self) -> tuple[list[float], list[list[float]]]:
        return self.origin.float().tolist(), self.axes.float().tolist()

    def place(self, z: list[float], u: float, v: float) -> list[float]:
        """z moved within the plane to coordinates (u, v); its components off the plane are kept. Each component is
        finite and within +-Z_LIMIT, whatever the plane and (u, v): one that would not be finite keeps z's."""
        point = torch.tensor(z, dtype=torch.float32).nan_to_num(0.0, Z_LIMIT, -Z_LIMIT)
        now = self.project(point[None])[0]
        moved = point + (torch.tensor([u, v]) - now) @ self.axes
        return torch.where(moved.isfinite(), moved, point).clamp(-Z_LIMIT, Z_LIMIT).tolist()


def principal_plane(atlas: Atlas) -> Plane:
    """The plane of the encodings' first two principal components; for a 2-D latent, z0 and z1 exactly."""
    latent_dim = atlas.mu.shape[1]
    if latent_dim == 2:
        return latent_plane(0, 1, 2)
    return Plane(atlas.pca_mean, atlas.pca_axes, ("PC1", "PC2"))


def latent_plane(x: int, y: int, latent_dim: int) -> Plane:
    """The plane of latent dimensions x and y through the origin."""
    axes = torch.zeros(2, latent_dim)
    axes[0, x] = 1.0
    if y != x:
        axes[1, y] = 1.0
    return Plane(torch.zeros(latent_dim), axes, (f"z{x}", f"z{y}" if y != x else "-"))


@dataclass(frozen=True)
class View:
    """The rectangle of the plane the map shows: x from left to right, y from bottom to top."""

    left: float
    right: float
    bottom: float
    top: float

    @property
    def step(self) -> tuple[float, float]:
        """One cursor step along x and y."""
        return (self.right - self.left) / CURSOR_STEPS, (self.top - self.bottom) / CURSOR_STEPS

    def clamp(self, u: float, v: float) -> tuple[float, float]:
        """(u, v) moved into the view."""
        return min(max(u, self.left), self.right), min(max(v, self.bottom), self.top)

    def centres(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """count x values left to right and count y values top to bottom, each the centre of its 1/count slice."""
        fractions = (torch.arange(count) + 0.5) / count
        return (
            self.left + fractions * (self.right - self.left),
            self.top - fractions * (self.top - self.bottom),
        )


def view_of(points: torch.Tensor) -> View:
    """The view that shows points (N, 2): each axis between its 0.5% and 99.5% quantiles, widened by 8% a side."""
    low = torch.quantile(points, VIEW_QUANTILE, dim=0)
    high = torch.quantile(points, 1 - VIEW_QUANTILE, dim=0)
    span = (high - low).clamp(min=1e-3)  # a dead axis still gets a view around its value
    low, high = low - VIEW_MARGIN * span, high + VIEW_MARGIN * span
    return View(low[0].item(), high[0].item(), low[1].item(), high[1].item())


def pixel_of(view: View, uv: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel columns and rows (N,) of points uv (N, 2) in a width x height pixel image of the view (may be
    outside it)."""
    columns = ((uv[:, 0] - view.left) / (view.right - view.left) * width).floor().long()
    rows = ((view.top - uv[:, 1]) / (view.top - view.bottom) * height).floor().long()
    return columns, rows


def scatter(uv: torch.Tensor, labels: torch.Tensor, view: View, width: int, height: int) -> torch.Tensor:
    """The class at each pixel of a width x height image of the view, -1 where no point falls; where points share
    a pixel, the one stored last is drawn (stored order mixes the classes)."""
    columns, rows = pixel_of(view, uv, width, height)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    index = (rows * width + columns)[inside]
    order = torch.arange(len(uv))[inside]
    last = torch.full((width * height,), -1, dtype=torch.long).scatter_reduce(0, index, order, "amax")
    drawn = torch.full((width * height,), -1, dtype=torch.long)
    hit = last >= 0
    drawn[hit] = labels[last[hit]]
    return drawn.view(height, width)


def point_images(atlas: Atlas) -> torch.Tensor:
    """For each encoding (N,), the index into atlas.images of the same test image (the first, if stored twice), or -1
    where it has none: the image indices sorted and searched, so time and memory grow with N + M, not N * M."""
    stored, order = atlas.image_indices.sort(stable=True)
    position = torch.searchsorted(stored, atlas.indices).clamp(max=len(stored) - 1)
    return torch.where(stored[position] == atlas.indices, order[position], -1)


def nearest(uv: torch.Tensor, u: float, v: float, view: View) -> int:
    """The index of the point of uv (N, 2) nearest to (u, v), distances measured in view widths and heights."""
    scale = torch.tensor([view.right - view.left, view.top - view.bottom])
    return int((((uv - torch.tensor([u, v])) / scale) ** 2).sum(1).argmin())


class MapAxes:
    """Which plane the map shows: the principal plane, or latent axes with x the selected dimension and y cycling
    through the active dimensions (`A`); each plane's projected points and view computed once."""

    def __init__(self, atlas: Atlas, active: list[bool]) -> None:
        self.atlas, self.active = atlas, active
        self.latent_dim = atlas.mu.shape[1]
        self.y: int | None = None  # None: the principal plane
        self._layouts: dict[tuple[str, str], tuple[torch.Tensor, View]] = {}

    def plane(self, selected: int) -> Plane:
        if self.y is None:
            return principal_plane(self.atlas)
        return latent_plane(selected, self.y, self.latent_dim)

    def cycle(self, selected: int) -> None:
        """The next plane: principal -> y the first active dimension other than x -> the next ... -> principal."""
        others = [d for d in range(self.latent_dim) if d != selected]
        candidates = [d for d in others if self.active[d]] or others
        later = [d for d in candidates if self.y is None or d > self.y]
        self.y = later[0] if later else None

    def layout(self, plane: Plane) -> tuple[torch.Tensor, View]:
        """The atlas' encodings projected on plane (N, 2) and the view that shows them."""
        if plane.names not in self._layouts:
            uv = plane.project(self.atlas.mu)
            self._layouts[plane.names] = (uv, view_of(uv))
        return self._layouts[plane.names]

    @functools.cached_property
    def point_images(self) -> torch.Tensor:
        """point_images(atlas), computed once."""
        return point_images(self.atlas)

    def nearest_images(self, z: list[float], count: int) -> list[int]:
        """The stored test images (indices into atlas.images) whose encodings lie nearest to z in the whole latent
        space, nearest first: at most count, fewer when fewer are stored."""
        with_images = (self.point_images >= 0).nonzero().squeeze(1)
        distances = ((self.atlas.mu[with_images] - torch.tensor(z)) ** 2).sum(1)
        order = distances.argsort(stable=True)[:count]
        return self.point_images[with_images[order]].tolist()

    def nearest_image(self, plane: Plane, u: float, v: float) -> int | None:
        """The stored test image (an index into atlas.images) whose encoding lies nearest to (u, v) on plane; None
        when no encoding's image is stored."""
        with_images = (self.point_images >= 0).nonzero().squeeze(1)
        if not len(with_images):
            return None
        uv, view = self.layout(plane)
        return int(self.point_images[with_images[nearest(uv[with_images], u, v, view)]])
