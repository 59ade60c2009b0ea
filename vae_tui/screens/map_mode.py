"""The explorer's map mode: the scatter in place of the preview, a cursor that moves z in the map's plane."""

from pathlib import Path

from textual.widgets import Label, Static

from models.text import printable
from vae_tui.exports import export_of
from vae_tui.latent_map import MANIFOLD_SIDE, MapAxes
from vae_tui.widgets.map_view import MapView, legend

MANIFOLD_PNG_SCALE = 2  # 15 images of 30 px a side: 904 px
NO_ATLAS = (
    "This checkpoint has no atlas (an older vae-tui wrote it) and its dataset is not installed: no map (m), picker "
    "(o) or inactive marks. Install the dataset, or run `python -m train.bundle CKPT OUT` where it is"
)
NO_IMAGES = "None of the map's points has its test image stored in the checkpoint: nothing to start from (o lists them)"
WIDE_TITLE = 56  # map columns from which its title also says what A and tab do
MAP_ONLY = {"toggle_focus", "cycle_axes", "pick_nearest"}


class MapMode:
    """Mixed into ExplorerScreen: the map's actions and drawing; `self.map_axes` is None without an atlas."""

    def init_map(self) -> None:
        atlas = self.checkpoint.atlas
        self.map_axes = None if atlas is None else MapAxes(atlas, self.state.active)
        self.map_shown = False
        self.map_focus = True  # the map has the arrows; tab gives them to the latent panel
        self._map_plane_names: tuple[str, str] | None = None
        self._legend_label: int | None = None

    def map_action_enabled(self, action: str) -> bool:
        """Map-only actions run only while the map is shown (else their keys fall through, e.g. escape, tab)."""
        if action == "back":  # else escape falls through (to close Textual's keys panel)
            return self.map_shown or any(end is not None for end in self.ends.values())
        return action not in MAP_ONLY or self.map_shown

    @property
    def map_has_keys(self) -> bool:
        """Whether the arrows and hjkl move the map's cursor rather than the latent panel's selection and value."""
        return self.map_shown and self.map_focus

    def action_toggle_map(self) -> None:
        if self.map_axes is None:
            self.notify(NO_ATLAS, severity="warning", markup=False)
            return
        self.map_shown = not self.map_shown
        self.map_focus = True
        self.set_class(self.map_shown, "map")
        self._show_map()
        if self.frame is not None:
            self.show_frame_images(self.frame)
            if self.strips_missing():
                self.decode_state()  # the map's frames have no strips
        if self.map_shown:
            self.call_after_refresh(self._show_map)  # once laid out: the title's length depends on the map's width

    def action_back(self) -> None:
        """Escape: leave the map; else clear the interpolation's marks."""
        if self.map_shown:
            self.action_toggle_map()
        else:
            self.action_clear_marks()

    def action_toggle_focus(self) -> None:
        self.map_focus = not self.map_focus
        self._show_map()

    def action_cycle_axes(self) -> None:
        self.map_axes.cycle(self.state.selected)
        self._show_map()

    def move_cursor(self, dx: int, dy: int) -> None:
        """Move the cursor by dx, dy steps (1/40 of the view; y grows downwards, like the screen's rows)."""
        plane = self.map_axes.plane(self.state.selected)
        _, view = self.map_axes.layout(plane)
        u, v = plane.coordinates(self.state.z)
        step_x, step_y = view.step
        self.put_cursor(u + dx * step_x, v - dy * step_y)

    def put_cursor(self, u: float, v: float) -> None:
        """Move z within the map's plane to (u, v), kept inside the view; the other components stay."""
        plane = self.map_axes.plane(self.state.selected)
        _, view = self.map_axes.layout(plane)
        self.state.set_z(plane.place(self.state.z, *view.clamp(u, v)))
        self._show_state()

    def on_map_view_clicked(self, message: MapView.Clicked) -> None:
        self.map_focus = True
        self.put_cursor(message.u, message.v)

    def action_pick_nearest(self) -> None:
        """Start from the stored test image nearest to the cursor on the map."""
        plane = self.map_axes.plane(self.state.selected)
        image = self.map_axes.nearest_image(plane, *plane.coordinates(self.state.z))
        if image is None:
            self.notify(NO_IMAGES, severity="warning", markup=False)
            return
        self.start_from_test_image(image)

    def _show_map(self) -> None:
        """Redraw the map's parts for the current state: the scatter when the plane changed, the marker, the titles."""
        if not self.map_shown:
            self._set_label("#latent-title", self._latent_title())
            return
        plane = self.map_axes.plane(self.state.selected)
        uv, view = self.map_axes.layout(plane)
        map_view = self.query_one(MapView)
        if plane.names != self._map_plane_names:
            map_view.show(uv, self.map_axes.atlas.labels, view)
            self._map_plane_names = plane.names
        map_view.mark(*plane.coordinates(self.state.z))
        title = f"Map · x {plane.names[0]} · y {plane.names[1]}"
        if map_view.size.width >= WIDE_TITLE:  # else the help screen tells
            axes = "A: latent axes" if self.map_axes.y is None else "A: next y axis"
            title += f" · {axes} · tab: {'latent panel' if self.map_focus else 'map'}"
        self._set_label("#map-title", title)
        self.query_one("#map-title", Label).set_class(self.map_focus, "focused")
        self.query_one("#latent-title", Label).set_class(not self.map_focus, "focused")
        self._set_label("#latent-title", self._latent_title())
        if self._legend_label != self.state.label:  # a Static's update costs a layout pass: only on a new class
            self._legend_label = self.state.label
            self.query_one("#legend", Static).update(legend(self.checkpoint.class_names, self.state.label))

    def save_manifold(self) -> Path | None:
        """The decoded 15x15 grid over the map's view: x left to right, y top to bottom, the other components of z
        and the class kept."""
        state = self.state
        plane = self.map_axes.plane(state.selected)
        _, view = self.map_axes.layout(plane)
        xs, ys = view.centres(MANIFOLD_SIDE)
        z = [plane.place(state.z, x, y) for y in ys.tolist() for x in xs.tolist()]
        classes = [state.label] * len(z)
        export = export_of(self.checkpoint, z, classes, MANIFOLD_SIDE, MANIFOLD_PNG_SCALE)
        names = "-".join(printable(name) for name in plane.names)
        return self._save(f"map-{names}-manifold", export)
