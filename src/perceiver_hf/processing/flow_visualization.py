"""Flow fields as pictures: the standard optical-flow colour wheel (Baker et al., Middlebury benchmark).

Hue says the direction of motion and saturation its speed: white is still, fully saturated colour is the
fastest motion in the picture (or `max_flow`). Motion to the right is red, down orange-yellow, left cyan and
up blue-violet, as in Middlebury's `flowToColor` and most flow papers, so pictures compare at a glance.
"""

from __future__ import annotations

import numpy as np

# Hue segments of the wheel: red->yellow, yellow->green, green->cyan, cyan->blue, blue->magenta, magenta->red,
# with as many steps as Middlebury's wheel (55 colours), so perceptually similar angles get similar steps.
_SEGMENTS = (
    (15, (255, 0, 0), (255, 255, 0)),
    (6, (255, 255, 0), (0, 255, 0)),
    (4, (0, 255, 0), (0, 255, 255)),
    (11, (0, 255, 255), (0, 0, 255)),
    (13, (0, 0, 255), (255, 0, 255)),
    (6, (255, 0, 255), (255, 0, 0)),
)


def color_wheel() -> np.ndarray:
    """The `(55, 3)` colours of the wheel in [0, 1], starting at red and turning through yellow and green."""
    colors = []
    for steps, start, end in _SEGMENTS:
        fractions = np.arange(steps)[:, None] / steps
        colors.append((1 - fractions) * np.array(start) + fractions * np.array(end))
    return np.floor(np.concatenate(colors)) / 255.0


def flow_to_color(flow: np.ndarray, max_flow: float | None = None) -> np.ndarray:
    """`(H, W, 2)` flow `(dx, dy)` in pixels -> `(H, W, 3)` uint8 RGB picture.

    `max_flow` is the speed drawn fully saturated (default: the largest in this flow, so the picture always uses
    the whole wheel); larger speeds are darkened. Non-finite vectors are drawn black.
    """
    flow = np.asarray(flow, dtype=np.float64)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"Expected a flow field of shape (height, width, 2), got {flow.shape}.")
    known = np.isfinite(flow).all(axis=-1)
    dx, dy = np.where(known, flow[..., 0], 0.0), np.where(known, flow[..., 1], 0.0)
    speed = np.hypot(dx, dy)
    scale = max_flow if max_flow is not None else (speed.max() if speed.size else 0.0)
    if scale <= 0:
        scale = 1.0
    radius = speed / scale

    wheel = color_wheel()
    angle = np.arctan2(-dy, -dx) / np.pi  # in [-1, 1]; rightward motion (dx > 0) lands on red
    position = (angle + 1) / 2 * (len(wheel) - 1)
    lower = np.floor(position).astype(int)
    upper = (lower + 1) % len(wheel)
    blend = (position - lower)[..., None]
    color = (1 - blend) * wheel[lower] + blend * wheel[upper]
    # Slow motion fades to white; motion beyond `max_flow` darkens instead of clipping.
    inside = (radius <= 1)[..., None]
    color = np.where(inside, 1 - radius[..., None] * (1 - color), color * 0.75)
    color[~known] = 0.0
    return np.round(color * 255).astype(np.uint8)


def flow_to_image(flow: np.ndarray, max_flow: float | None = None):
    """The colour-coded flow as a PIL image (see `flow_to_color`)."""
    from PIL import Image

    return Image.fromarray(flow_to_color(flow, max_flow))


__all__ = ["color_wheel", "flow_to_color", "flow_to_image"]
