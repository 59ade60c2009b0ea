"""The explorer's map: the scatter of the test set's encodings in place of the preview, and a cursor that moves z
in the map's plane.

A MapPanel owns what the map shows (its axes, whether it is shown, whether it has the arrows) and draws the map
area's widgets (#map-area in the explorer's compose); the explorer screen binds the keys and owns z.
"""

from textual.screen import Screen
from textual.widgets import Label, Static

from models import Atlas
from models.text import printable
from vae_tui.latent_map import MANIFOLD_SIDE, ClassColours, MapAxes, class_colours
from vae_tui.state import ExplorerState
from vae_tui.widgets.image_view import ImageView
from vae_tui.widgets.map_view import RAMP, MapView, legend, ramp_legend, ramp_steps

MANIFOLD_PNG_SCALE = 2  # 15 images of 30 px a side: 904 px
NO_ATLAS = (
    "This checkpoint has no atlas (an older vae-tui wrote it) and its dataset is not installed: no map (m), picker "
    "(o) or inactive marks. Install the dataset, or run `python -m train.bundle CKPT OUT` where it is"
)
NO_IMAGES = "None of the map's points has its test image stored in the checkpoint: nothing to start from (o lists them)"
NO_LOSSES = (
    "This checkpoint's atlas has no per-image losses (an older vae-tui wrote it): no colouring by reconstruction "
    "error, and no fit for a picked image. `python -m train.bundle CKPT OUT` adds them, where the dataset is installed"
)
WIDE_TITLE = 56  # map columns from which its title also says what A and tab do
MAP_ONLY = {"toggle_focus", "cycle_axes", "pick_nearest", "cycle_colour", "toggle_map_image"}
COLOURINGS = ("class", "value", "error")  # what `c` cycles the points' colour through (class: with two classes or more)


class MapPanel:
    """The map's state and drawing; `axes` is None without an atlas."""

    def __init__(self, atlas: Atlas | None, active: list[bool], num_classes: int) -> None:
        self.axes: MapAxes | None = None
        self.shown = False
        self.focus = True  # the map has the arrows; tab gives them to the latent panel
        self.num_classes = num_classes
        # "class", "value" (of the selected dimension) or "error" (each point's reconstruction); one class would
        # colour every point alike, so a model of one class starts on the value
        self.colouring = "class" if num_classes > 1 else "value"
        self.nearest_shown = False  # beside the map: the test image nearest to the cursor, not the decoded z
        self._legend: str | None = None
        self.rebuild(atlas, active)

    def rebuild(self, atlas: Atlas | None, active: list[bool]) -> None:
        """New encodings (another checkpoint of the same run): the scatter is drawn again."""
        self.axes = None if atlas is None else MapAxes(atlas, active)
        self._drawn: tuple | None = None  # what the scatter shows: its plane, colouring and coloured dimension
        self._edges: list[float] = []  # the ramp's step edges for what the scatter shows
        self._colours: tuple[int, ClassColours] | None = None  # the class colours, for the current class
        if self.colouring == "error" and (atlas is None or not atlas.has_losses):
            self.colouring = self.colourings()[0]  # the new atlas has no losses to colour by

    def colourings(self) -> tuple[str, ...]:
        """What `c` cycles through for this model and atlas: by class only with two classes or more, by error only
        with per-image losses."""
        has_losses = self.axes is not None and self.axes.atlas.has_losses
        return tuple(c for c in COLOURINGS if (c != "class" or self.num_classes > 1) and (c != "error" or has_losses))

    def next_colouring(self) -> str | None:
        """Go to the next colouring; the one skipped for want of per-image losses, if any (said as the cycle starts
        again)."""
        order = self.colourings()
        self.colouring = order[(order.index(self.colouring) + 1) % len(order)]
        skipped = "error" not in order and self.colouring == order[0]
        return "error" if skipped else None

    def class_colours(self, current: int) -> ClassColours:
        """The points' class colours while current is the explorer's class (past ten classes, it is coloured)."""
        if self._colours is None or self._colours[0] != current:
            self._colours = (current, class_colours(self.axes.atlas.labels, self.num_classes, current))
        return self._colours[1]

    @property
    def has_keys(self) -> bool:
        """Whether the arrows and hjkl move the map's cursor rather than the latent panel's selection and value."""
        return self.shown and self.focus

    def moved(self, state: ExplorerState, dx: int, dy: int) -> list[float]:
        """z with the cursor moved by dx, dy steps (1/40 of the view; y grows downwards, like the screen's rows)."""
        plane = self.axes.plane(state.selected)
        _, view = self.axes.layout(plane)
        u, v = plane.coordinates(state.z)
        step_x, step_y = view.step
        return self.placed(state, u + dx * step_x, v - dy * step_y)

    def placed(self, state: ExplorerState, u: float, v: float) -> list[float]:
        """z moved within the map's plane to (u, v), kept inside the view; the other components stay."""
        plane = self.axes.plane(state.selected)
        _, view = self.axes.layout(plane)
        return plane.place(state.z, *view.clamp(u, v))

    def nearest_image(self, state: ExplorerState) -> int | None:
        """The stored test image nearest to the cursor (None when no point has its image stored)."""
        plane = self.axes.plane(state.selected)
        return self.axes.nearest_image(plane, *plane.coordinates(state.z))

    def manifold(self, state: ExplorerState) -> tuple[list[list[float]], tuple[str, str]]:
        """The z of the 15x15 grid over the map's view (x left to right, y top to bottom, the other components of
        z kept), and the plane's axes' names."""
        plane = self.axes.plane(state.selected)
        _, view = self.axes.layout(plane)
        xs, ys = view.centres(MANIFOLD_SIDE)
        z = [plane.place(state.z, x, y) for y in ys.tolist() for x in xs.tolist()]
        x_name, y_name = (printable(name) for name in plane.names)
        return z, (x_name, y_name)

    def draw(self, screen: Screen, state: ExplorerState, class_names: list[str]) -> None:
        """Redraw the map area for state: the scatter when the plane changed, the marker, the title, the legend.
        Labels are updated without a layout pass (their width is fixed by the CSS)."""
        atlas = self.axes.atlas
        plane = self.axes.plane(state.selected)
        uv, view = self.axes.layout(plane)
        map_view = screen.query_one(MapView)
        colours = self.class_colours(state.label) if self.colouring == "class" else None
        coloured_by = colours.coloured if colours is not None else state.selected if self.colouring == "value" else None
        drawn = (plane.names, self.colouring, coloured_by)
        if drawn != self._drawn:  # the ramp's steps and edges too: once per colouring, not per cursor move
            if colours is not None:
                codes = colours.codes(atlas.labels)
                if colours.others:  # the grey points first, so that coloured ones sharing a cell are drawn over them
                    order = (codes == len(colours.palette) - 1).int().argsort(descending=True, stable=True)
                    uv, codes = uv[order], codes[order]
                map_view.show(uv, codes, view, colours.palette)
                self._edges = []
            else:
                values = atlas.mu[:, state.selected] if self.colouring == "value" else atlas.recon
                steps, self._edges = ramp_steps(values)
                map_view.show(uv, steps, view, RAMP)
            self._drawn = drawn
        edges = self._edges
        u, v = plane.coordinates(state.z)
        map_view.mark(u, v)
        title = f"Map · x {plane.names[0]} · y {plane.names[1]}"
        if map_view.size.width >= WIDE_TITLE:  # else the help screen tells
            axes = "A: latent axes" if self.axes.y is None else "A: next y axis"
            title += f" · {axes} · tab: {'latent panel' if self.focus else 'map'}"
        label = screen.query_one("#map-title", Label)
        if str(label.content) != title:
            label.update(title, layout=False)
        label.set_class(self.focus, "focused")
        screen.query_one("#latent-title", Label).set_class(not self.focus, "focused")
        if colours is not None:
            width = screen.query_one("#map-side").styles.width
            shown = legend(class_names, state.label, colours, 0 if width is None else int(width.value))
        elif self.colouring == "value":
            shown = ramp_legend(f"colour: z{state.selected}", edges, state.z[state.selected])
        else:
            shown = ramp_legend("colour: error", edges, None)
        if self._legend != (key := shown.markup):  # a Static's update costs a layout pass: only when it changes
            self._legend = key
            screen.query_one("#legend", Static).update(shown)
        self._draw_image(screen, plane, u, v)

    def _draw_image(self, screen: Screen, plane: object, u: float, v: float) -> None:
        """Beside the map, while nearest_shown: the stored test image nearest to the cursor, titled with its index,
        class and loss (the decoded z is drawn there otherwise, by the screen)."""
        title = screen.query_one("#map-image-title", Label)
        image = self.axes.nearest_image(plane, u, v) if self.nearest_shown else None
        if image is None:
            if str(title.content) != "Image":
                title.update("Image", layout=False)
            return
        atlas = self.axes.atlas
        index = int(atlas.image_indices[image])
        text = f"Test #{index}"
        point = (atlas.indices == index).nonzero()
        if atlas.has_losses and len(point) and len(text) + 11 <= title.size.width:  # where it fits on one line
            text += f" · loss {atlas.loss[point[0, 0]].item():.0f}"
        if str(title.content) != text:
            title.update(text, layout=False)
        screen.query_one("#map-image", ImageView).show(atlas.images[image].float() / 255)
