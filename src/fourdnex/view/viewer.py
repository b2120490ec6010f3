"""An interactive 4D viewer on viser: the dynamic point cloud, its cameras, and a button
that renders the current viewpoint with fourdnex's renderer.

The scene's cameras are used, or registered first (the library's one camera policy,
:func:`fourdnex.geometry.with_cameras`). viser, like fourdnex, uses OpenCV cameras
(+Z forward, +Y down); the viewer's up direction is the scene cameras' mean up vector,
so a y-up synthetic world and a y-down generated scene both stand upright. With point
tracks (``4dnex tracks``), the last :data:`~fourdnex.point_tracks.TRAIL_FRAMES` frames of each
visible point's trail are drawn at the current frame (checkbox "Tracks").
"""

from __future__ import annotations

import contextlib
import errno
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from fourdnex.errors import FourDNeXError
from fourdnex.limits import MAX_FPS, check_int
from fourdnex.point_tracks import Tracks, track_colors, trail_segments
from fourdnex.scene import PREVIEW_FPS, Scene4D, xyz_to_colors
from fourdnex.view import port_message

ColorMode = Literal["rgb", "xyz"]
#: Points per frame sent to the browser by default (the stride is raised to stay below).
DEFAULT_MAX_POINTS = 200_000
#: Frustum size as a fraction of the scene extent.
FRUSTUM_SCALE = 0.02
#: The first view: this far behind and above the first camera (fractions of the extent).
START_BACK = 0.35
START_UP = 0.08
#: Width of the track trails on screen (pixels).
TRACK_LINE_PX = 2.0


@dataclass(frozen=True)
class ViewerSettings:
    """How ``4dnex view`` serves a scene."""

    host: str = "127.0.0.1"
    """Address to bind (127.0.0.1: this machine only; 0.0.0.0: every interface)."""
    port: int = 8080
    """Port of the web page."""
    fps: int = PREVIEW_FPS
    """Playback frame rate."""
    max_points: int = DEFAULT_MAX_POINTS
    """Points per frame sent to the browser; the initial stride keeps below it."""

    def validate(self) -> None:
        check_int(self.port, "port", 0, 65535)
        check_int(self.fps, "fps", 1, MAX_FPS)
        check_int(self.max_points, "max_points", 1, 10_000_000)


def frame_points(
    scene: Scene4D, t: int, stride: int, mode: ColorMode, xyz_colors: NDArray[np.float32]
) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """Points (N, 3) and uint8 colours (N, 3) of frame ``t`` on a pixel grid of ``stride``;
    non-finite points are dropped."""
    pts = scene.xyz[t, ::stride, ::stride].reshape(-1, 3)
    source = scene.rgb if mode == "rgb" else xyz_colors
    col = source[t, ::stride, ::stride].reshape(-1, 3)
    keep = np.isfinite(pts).all(axis=1)
    return pts[keep].astype(np.float32), np.clip(col[keep] * 255.0 + 0.5, 0, 255).astype(np.uint8)


def up_direction(cam2world: np.ndarray) -> NDArray[np.float64]:
    """The mean up vector (-Y of OpenCV cameras) of the scene's cameras, unit length."""
    up = -cam2world[:, :3, 1].astype(np.float64).mean(axis=0)
    n = float(np.linalg.norm(up))
    return up / n if n > 1e-9 else np.array([0.0, -1.0, 0.0])


def view_camera(
    wxyz: np.ndarray, position: np.ndarray, fov_y: float, height: int, width: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """K (3, 3) and cam2world (4, 4) of a viser viewport camera (OpenCV axes, vertical
    field of view in radians) at the scene's resolution, square pixels."""
    import viser.transforms as vtf

    fy = (height / 2.0) / np.tan(fov_y / 2.0)
    K = np.array([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]])
    c2w = np.eye(4)
    c2w[:3, :3] = vtf.SO3(np.asarray(wxyz, dtype=np.float64)).as_matrix()
    c2w[:3, 3] = np.asarray(position, dtype=np.float64)
    return K, c2w


class SceneViewer:
    """Serve one scene in the browser; :meth:`stop` ends it.

    Args:
        scene: the scene (cameras are registered when it has none).
        settings: host, port, playback.
        renders: folder for the videos of the "Render this view" button.
        name: shown in the page title.
        tracks: point tracks of this scene (:func:`fourdnex.point_tracks.scene_tracks`), drawn
            as trails.
    """

    def __init__(
        self,
        scene: Scene4D,
        settings: ViewerSettings | None = None,
        renders: Path | None = None,
        name: str = "scene",
        tracks: Tracks | None = None,
    ) -> None:
        import viser
        import viser.transforms as vtf

        from fourdnex.geometry import with_cameras

        self.settings = settings or ViewerSettings()
        self.settings.validate()
        placed = with_cameras(scene)
        self.registered = placed.source == "registered"
        self.scene = placed.scene
        assert self.scene.K is not None and self.scene.cam2world is not None
        self.renders = renders
        self.rendered: list[Path] = []
        T, H, W = self.scene.frames, self.scene.height, self.scene.width
        self._xyz_colors = xyz_to_colors(self.scene.xyz)
        finite = self.scene.xyz[np.isfinite(self.scene.xyz).all(axis=-1)]
        lo, hi = np.percentile(finite, [1, 99], axis=0) if len(finite) else (0.0, 1.0)
        self.extent = float(np.linalg.norm(np.asarray(hi) - np.asarray(lo))) or 1.0
        stride = 1
        while (H // stride) * (W // stride) > self.settings.max_points:
            stride += 1
        try:  # viser prints a banner of its own: `4dnex view` prints the URL itself
            with contextlib.redirect_stdout(io.StringIO()):
                self.server = viser.ViserServer(
                    host=self.settings.host, port=self.settings.port,
                    label=f"fourdnex: {name}", verbose=False,
                )  # fmt: skip
        except OSError as exc:
            raise FourDNeXError(port_message(self.settings.host, self.settings.port, exc)) from None
        if self.settings.port and self.server.get_port() != self.settings.port:
            # viser moves to the next free port on its own: say the asked one is taken
            self.server.stop()
            raise FourDNeXError(
                port_message(self.settings.host, self.settings.port, OSError(errno.EADDRINUSE, ""))
            )
        server = self.server
        server.scene.set_up_direction(tuple(up_direction(self.scene.cam2world)))
        gui = server.gui
        self.time = gui.add_slider("time", min=0, max=max(T - 1, 1), step=1, initial_value=0,
                                   disabled=T < 2)  # fmt: skip
        self.playing = gui.add_checkbox("play", initial_value=False)
        self.fps = gui.add_number(
            "fps", initial_value=self.settings.fps, min=1, max=MAX_FPS, step=1
        )
        self.point_size = gui.add_slider("point size", min=self.extent / 3000,
                                         max=self.extent / 30, step=self.extent / 3000,
                                         initial_value=self.extent / 500)  # fmt: skip
        self.stride = gui.add_slider("stride", min=1, max=max(8, stride), step=1,
                                     initial_value=stride)  # fmt: skip
        self.colors = gui.add_dropdown("colour", ("rgb", "xyz"), initial_value="rgb")
        self.show_cameras = gui.add_checkbox("cameras", initial_value=True)
        if tracks is not None and tracks.frames != T:
            raise FourDNeXError(f"tracks have {tracks.frames} frames, the scene {T}")
        self.tracks = tracks
        self.show_tracks = gui.add_checkbox("Tracks", initial_value=True, disabled=tracks is None)
        self._track_rgb = None if tracks is None else track_colors(self.scene, tracks)
        self._trails: Any = None
        self.trail_segments = 0  # segments drawn now
        self.render_button = gui.add_button("Render this view")
        self.status = gui.add_markdown(
            "cameras: registered from the XYZ (not saved)"
            if self.registered
            else "cameras: the scene's"
        )
        self._points: Any = None
        self._frustums = []
        fov = 2 * np.arctan((H / 2.0) / float(self.scene.K[0, 1, 1]))
        for t in range(T):
            c2w = self.scene.cam2world[t].astype(np.float64)
            self._frustums.append(
                server.scene.add_camera_frustum(
                    f"/cameras/frame_{t:04d}",
                    fov=float(fov),
                    aspect=W / H,
                    scale=FRUSTUM_SCALE * self.extent,
                    wxyz=vtf.SO3.from_matrix(c2w[:3, :3]).wxyz,
                    position=c2w[:3, 3],
                    color=(120, 120, 120),
                )  # fmt: skip
            )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.frame = -1
        self.show(0)

        handles = (self.time, self.point_size, self.stride, self.colors, self.show_cameras,
                   self.show_tracks)  # fmt: skip
        for handle in handles:
            handle.on_update(lambda _event: self.show(int(self.time.value)))
        self.render_button.on_click(self._on_render)

        first = self.scene.cam2world[0].astype(np.float64)

        @server.on_client_connect
        def _(client: Any) -> None:  # start behind the first camera, looking its way
            c2w = first
            back = START_BACK * self.extent * c2w[:3, 2] + START_UP * self.extent * c2w[:3, 1]
            client.camera.wxyz = vtf.SO3.from_matrix(c2w[:3, :3]).wxyz
            client.camera.position = c2w[:3, 3] - back
            client.camera.fov = float(fov)

        self._player = threading.Thread(target=self._play, daemon=True)
        self._player.start()

    @property
    def url(self) -> str:
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.server.get_port()}"

    def show(self, t: int) -> None:
        """Show frame ``t`` with the current point size, stride and colours."""
        with self._lock:
            t = int(np.clip(t, 0, self.scene.frames - 1))
            pts, col = frame_points(self.scene, t, int(self.stride.value), self.colors.value,
                                    self._xyz_colors)  # fmt: skip
            size = float(self.point_size.value)
            if self._points is None:
                self._points = self.server.scene.add_point_cloud(
                    "/points", points=pts, colors=col, point_size=size, point_shape="rounded"
                )
            else:
                self._points.points, self._points.colors = pts, col
                self._points.point_size = size
            for i, frustum in enumerate(self._frustums):
                frustum.visible = bool(self.show_cameras.value)
                frustum.color = (255, 80, 40) if i == t else (120, 120, 120)
            self._show_trails(t)
            self.frame = t

    def _show_trails(self, t: int) -> None:
        """Draw the tracks' trails at frame ``t`` (none when off or without tracks)."""
        if self._trails is not None:
            self._trails.remove()
            self._trails = None
        self.trail_segments = 0
        if self.tracks is None or self._track_rgb is None or not self.show_tracks.value:
            return
        seg, idx = trail_segments(self.tracks, t)
        if len(seg):
            colors = np.repeat(self._track_rgb[idx][:, None], 2, axis=1)
            self._trails = self.server.scene.add_line_segments(
                "/tracks", points=seg, colors=colors, thickness=TRACK_LINE_PX,
                thickness_units="screen",
            )  # fmt: skip
            self.trail_segments = len(seg)

    def _play(self) -> None:
        while not self._stop.is_set():
            if self.playing.value and self.scene.frames > 1:
                self.time.value = (int(self.time.value) + 1) % self.scene.frames
                self.show(int(self.time.value))
            time.sleep(1.0 / max(float(self.fps.value), 1.0))

    def render_view(self, wxyz: np.ndarray, position: np.ndarray, fov_y: float) -> Path:
        """Render the scene's frames from one viewport camera into ``renders/view-N.mp4``
        (with its hole mask and trajectory, like ``4dnex render``)."""
        from fourdnex.geometry.novel_view import render_trajectory
        from fourdnex.geometry.trajectories import Trajectory
        from fourdnex.io.atomic import atomic_files
        from fourdnex.io.video_files import write_video

        if self.renders is None:
            raise FourDNeXError("the viewer was started without a folder for renders")
        T, H, W = self.scene.frames, self.scene.height, self.scene.width
        K, c2w = view_camera(wxyz, position, fov_y, H, W)
        traj = Trajectory(np.repeat(K[None], T, 0), np.repeat(c2w[None], T, 0),
                          np.arange(T, dtype=np.int64), W, H)  # fmt: skip
        views = render_trajectory(self.scene.rgb, self.scene.xyz, traj, radius=1, progress=False)
        self.renders.mkdir(parents=True, exist_ok=True)
        n = len(list(self.renders.glob("view-*.mp4")))
        out = self.renders / f"view-{n:03d}.mp4"
        mask = np.repeat(views.mask[..., None], 3, axis=-1).astype(np.uint8) * 255
        with atomic_files([out, out.with_suffix(".mask.mkv")]) as tmps:
            write_video(tmps[0], views.rgb, fps=int(self.fps.value))
            write_video(tmps[1], mask, fps=int(self.fps.value), lossless=True)
        self.rendered.append(out)
        return out

    def _on_render(self, event: Any) -> None:
        client = event.client
        if client is None:
            return
        cam = client.camera
        try:
            out = self.render_view(cam.wxyz, cam.position, cam.fov)
        except FourDNeXError as exc:
            self.status.content = f"render failed: {exc}"
            return
        self.status.content = f"rendered **{out}**"
        client.send_file_download(out.name, out.read_bytes())

    def stop(self) -> None:
        self._stop.set()
        with contextlib.redirect_stdout(io.StringIO()):
            self.server.stop()
