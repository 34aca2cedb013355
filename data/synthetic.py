"""Small generated data sets written in each dataset's official format, so the readers, the
datasets, the demo and the tests run end to end without real data.

Every video shows a skin-toned ellipse (a "hand") touching a coloured rectangle (an
"object") over a smooth random background. What tells classes apart is learnable by a small
model from a few dozen clips:
  Kinetics-like   the motion of the pair (left->right, up->down, circling, growing, ...)
  SSv2-like       the same motions, as "Moving [something] ..." templates, in webm/VP9
  EPIC-like       verb = motion, noun = object colour; first-person: big hand, camera shake
  Charades-Ego    each action class has a colour; an object of that colour is visible while the
                  action is active. First-person views have two big hands at the bottom and
                  camera shake, third-person views a small full figure and a still camera.
The true hand/object boxes are written as 100DOH-style detection files (true boxes with
scores >= 0.6, plus low-score distractors that the reader must drop), converted into the
detection store that training reads (data/detection_store.py, threshold 0.5), and each
`make_*` returns the ground truth (labels, boxes, paths) next to the paths it wrote.

Two options (both off by default; off, every file and result is as without them) make the
detections carry what the downstream task needs, so that learning from them can help:
  make_kinetics(distractors=D)
                  every video also shows D untouched squares in other palette colours, static or
                  slowly drifting, placed mostly off the moving pair's path and drawn behind it.
                  The detections still hold the hand and the one object it touches (100DOH
                  reports the object in contact), so the Interaction-Map targets say *which* of
                  several objects is held. The squares come from a random stream of their own:
                  the pair, background and detections are the same as with D = 0.
  make_charades_ego(interaction_classes=True)
                  every frame shows one object of each class colour in a row (fixed in the
                  scene, order shuffled per recording), so seeing a colour says nothing; an
                  action is active exactly while a hand touches (its box overlaps) the object
                  of its class's colour, and no hand box overlaps an untouched object's box.
                  Two actions at once: each hand holds one; none: the hands rest below the row.
                  First person: big hands entering from the bottom, camera shake; third person:
                  a small figure walking to the objects and reaching with small hands. The
                  detections hold the two hands and only the touched objects. The CSVs are
                  written exactly as without the option.

CLI: `python -m data.synthetic --out DIR --dataset kinetics|charades_ego|epic100|epic55|ssv2|all
[--kinetics-distractors D] [--charades-interaction-classes]`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
import warnings
from typing import NamedTuple

import numpy as np
import torch
import torchvision.io

from data.annotations import CHARADES_FPS, CharadesAction, kinetics_clip_filename
from data.detection_store import build_detection_store
from data.teacher_targets import DETECTION_COLUMNS, detections_path, save_detections
from data.video import write_video

SKIN = np.array([224, 172, 140], np.float32)
# well-separated object colours (also the EPIC noun / Charades class colours)
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [240, 220, 40], [200, 60, 220],
                    [40, 220, 220], [250, 140, 30], [120, 60, 20]], np.float32)
MOTIONS = ("left_to_right", "up_to_down", "circling", "growing",
           "right_to_left", "down_to_up", "shrinking", "diagonal")
KINETICS_CLASS_NAMES = {"left_to_right": "moving left to right", "up_to_down": "moving top to bottom",
                        "circling": "circling", "growing": "growing", "right_to_left": "moving right to left",
                        "down_to_up": "moving bottom to top", "shrinking": "shrinking",
                        "diagonal": "moving diagonally"}
SSV2_TEMPLATES = {"left_to_right": "Moving [something] from left to right",
                  "right_to_left": "Moving [something] from right to left",
                  "down_to_up": "Moving [something] up", "up_to_down": "Moving [something] down"}
EPIC_VERBS = (("take", "down_to_up"), ("put", "up_to_down"), ("open", "growing"), ("wash", "circling"))
EPIC_NOUNS = ("tap", "plate", "cup", "knife", "pan", "spoon", "bowl", "lid")
_DISTRACTOR_TRIES = 24  # random placements tried per distractor square; the one least in the way is kept


# ----------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth two-colour gradient with faint static texture, float32 [H, W, 3]."""
    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
    image = c0 + (c1 - c0) * ramp[..., None]
    return (image + rng.normal(0, 4, (h, w, 1))).astype(np.float32)


def _trajectory(motion: str, num_frames: int, h: int, w: int, rng: np.random.Generator):
    """Object centre (x, y) and half-size per frame, in pixels, with a little per-video jitter."""
    s = np.linspace(0.0, 1.0, num_frames)
    jx, jy = rng.uniform(-0.08, 0.08) * w, rng.uniform(-0.08, 0.08) * h
    half = np.full(num_frames, rng.uniform(0.10, 0.14) * h)
    line = lambda a, b: a + (b - a) * s  # noqa: E731
    if motion in ("left_to_right", "right_to_left"):
        x = line(0.25 * w, 0.75 * w) if motion == "left_to_right" else line(0.75 * w, 0.25 * w)
        y = np.full(num_frames, 0.5 * h + jy)
    elif motion in ("up_to_down", "down_to_up"):
        y = line(0.25 * h, 0.75 * h) if motion == "up_to_down" else line(0.75 * h, 0.25 * h)
        x = np.full(num_frames, 0.5 * w + jx)
    elif motion == "circling":
        phase = rng.uniform(0, 2 * math.pi)
        x = 0.5 * w + 0.25 * h * np.cos(phase + 2 * math.pi * s)
        y = 0.5 * h + 0.25 * h * np.sin(phase + 2 * math.pi * s)
    elif motion in ("growing", "shrinking"):
        x, y = np.full(num_frames, 0.5 * w + jx), np.full(num_frames, 0.5 * h + jy)
        half = line(0.06 * h, 0.26 * h) if motion == "growing" else line(0.26 * h, 0.06 * h)
    elif motion == "diagonal":
        x, y = line(0.3 * w, 0.7 * w), line(0.25 * h, 0.75 * h)
    elif motion == "still":
        x, y = np.full(num_frames, 0.5 * w + jx), np.full(num_frames, 0.5 * h + jy)
    else:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS + ('still',)}")
    return x, y, half


def _clip_box(x1, y1, x2, y2, w, h) -> np.ndarray:
    return np.array([max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))], np.float32)


def _paint_ellipse(frame, xx, yy, cx, cy, rx, ry, colour):
    frame[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0] = colour


def _paint_rect(frame, x1, y1, x2, y2, colour):
    h, w = frame.shape[:2]
    r0, r1 = int(round(max(y1, 0))), int(round(min(y2, h)))
    c0, c1 = int(round(max(x1, 0))), int(round(min(x2, w)))
    frame[r0:r1, c0:c1] = colour


class InteractionVideo(NamedTuple):
    """What `render_interaction` drew; boxes are x1, y1, x2, y2 in frame pixels (clipped)."""
    frames: np.ndarray              # uint8 [T, H, W, 3]
    hands: np.ndarray               # float32 [T, 4]
    objects: np.ndarray             # float32 [T, 4], the object the hand touches
    distractors: np.ndarray         # float32 [T, D, 4], the untouched rectangles (D = 0 without them)
    distractor_colours: np.ndarray  # float32 [D, 3], their palette colours


def _place_distractors(count: int, path: list[np.ndarray], size: tuple[int, int], num_frames: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Scene boxes float32 [T, count, 4] of `count` static or slowly drifting squares, each the
    best of a few random tries at staying off `path` (the pair's boxes, x1, y1, x2, y2 rows)
    and off the squares placed before it."""
    h, w = size
    taken = np.zeros((h, w), np.int32)  # pixels the pair ever covers, then the placed squares too

    def cover(box, value):
        r0, r1 = int(max(math.floor(box[1]), 0)), int(min(math.ceil(box[3]), h))
        c0, c1 = int(max(math.floor(box[0]), 0)), int(min(math.ceil(box[2]), w))
        taken[r0:r1, c0:c1] = np.maximum(taken[r0:r1, c0:c1], value)

    for box in path:
        cover(box, 1)
    s = np.linspace(0.0, 1.0, num_frames)[:, None]
    boxes = np.empty((num_frames, count, 4), np.float32)
    for k in range(count):
        best, best_cost = None, math.inf
        for _ in range(_DISTRACTOR_TRIES):
            half = rng.uniform(0.08, 0.13) * h  # about the pair's object size, so size does not tell
            start = rng.uniform([half, half], [w - half, h - half])
            end = np.clip(start + rng.uniform(-0.08, 0.08, 2) * h, [half, half], [w - half, h - half])
            centre = start + (end - start) * s  # [T, 2]
            swept = np.concatenate([centre.min(0) - half, centre.max(0) + half])
            r0, r1 = int(max(math.floor(swept[1]), 0)), int(min(math.ceil(swept[3]), h))
            c0, c1 = int(max(math.floor(swept[0]), 0)), int(min(math.ceil(swept[2]), w))
            cost = float(taken[r0:r1, c0:c1].sum())
            if cost < best_cost:
                best, best_cost = (centre, half, swept), cost
        centre, half, swept = best
        boxes[:, k] = np.concatenate([centre - half, centre + half], axis=1)
        cover(swept, 2)  # overlapping another square costs more than crossing the pair's path
    return boxes


def render_interaction(motion: str, num_frames: int, size: tuple[int, int], rng: np.random.Generator,
                       colour: np.ndarray | None = None, hand_scale: float = 1.0, shake: int = 0,
                       background: np.ndarray | None = None, with_object: bool = True,
                       distractors: int = 0, distractor_rng: np.random.Generator | None = None) -> InteractionVideo:
    """A hand touching an object that moves by `motion`.

    Returns an InteractionVideo (frames, hand boxes, object boxes, distractor boxes and colours)
    with boxes x1, y1, x2, y2 in frame pixels (clipped to the frame). `hand_scale` > 1 gives
    the big near hands of first-person video; `shake` > 0 moves the whole view by up to that
    many pixels per frame (a random walk), boxes included. `background` (float32 [H + 8*shake,
    W + 8*shake, 3]) lets several calls share one scene; `with_object=False` draws the hand
    alone (its object boxes are then empty, x2 = x1). `distractors` > 0 adds that many
    untouched squares in other palette colours, behind the pair and mostly off its path;
    they are drawn from `distractor_rng` alone, so `rng` and everything it decides (the pair,
    the background, the shake) come out as without them.
    """
    h, w = size
    if not 0 <= distractors < len(PALETTE):
        raise ValueError(f"render_interaction: distractors should be 0..{len(PALETTE) - 1} (one palette colour "
                         f"each, besides the object's), got {distractors}")
    if distractors and distractor_rng is None:
        raise ValueError("render_interaction: distractors > 0 needs a distractor_rng of their own")
    margin = shake * 4
    bg = _background(rng, h + 2 * margin, w + 2 * margin) if background is None else background
    colour = PALETTE[rng.integers(len(PALETTE))] if colour is None else np.asarray(colour, np.float32)
    x, y, half = _trajectory(motion, num_frames, h, w, rng)
    walk = np.clip(np.cumsum(rng.integers(-shake, shake + 1, (num_frames, 2)), axis=0), -margin, margin) \
        if shake else np.zeros((num_frames, 2), int)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rx, ry = 0.11 * h * hand_scale, 0.14 * h * hand_scale
    if distractors:
        hand_x, hand_y = x - half - 0.4 * rx, y + 0.5 * half  # as in the frame loop below
        path = [np.array([x[t] - half[t], y[t] - half[t], x[t] + half[t], y[t] + half[t]]) for t in range(num_frames)]
        path += [np.array([hand_x[t] - rx, hand_y[t] - ry, hand_x[t] + rx, hand_y[t] + ry]) for t in range(num_frames)]
        scene_distractors = _place_distractors(distractors, path, size, num_frames, distractor_rng)
        others = [i for i in range(len(PALETTE)) if not np.array_equal(PALETTE[i], colour)]
        distractor_colours = PALETTE[distractor_rng.choice(others, distractors, replace=False)]
    else:
        scene_distractors = np.zeros((num_frames, 0, 4), np.float32)
        distractor_colours = np.zeros((0, 3), np.float32)
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    hands, objects = np.empty((num_frames, 4), np.float32), np.empty((num_frames, 4), np.float32)
    distractor_boxes = np.empty_like(scene_distractors)
    for t in range(num_frames):
        dx, dy = walk[t]
        frame = bg[margin + dy:margin + dy + h, margin + dx:margin + dx + w].copy()
        for k, (x1, y1, x2, y2) in enumerate(scene_distractors[t]):  # the view moves by +d, the scene by -d
            _paint_rect(frame, x1 - dx, y1 - dy, x2 - dx, y2 - dy, distractor_colours[k])
            distractor_boxes[t, k] = _clip_box(x1 - dx, y1 - dy, x2 - dx, y2 - dy, w, h)
        ox, oy, oh = x[t] - dx, y[t] - dy, half[t]
        if with_object:
            _paint_rect(frame, ox - oh, oy - oh, ox + oh, oy + oh, colour)
        # the hand grips the object's lower-left corner
        hx, hy = ox - oh - 0.4 * rx, oy + 0.5 * oh
        _paint_ellipse(frame, xx, yy, hx, hy, rx, ry, SKIN)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
        objects[t] = _clip_box(ox - oh, oy - oh, ox + oh, oy + oh, w, h) if with_object else \
            np.array([ox, oy, ox, oy], np.float32)
        hands[t] = _clip_box(hx - rx, hy - ry, hx + rx, hy + ry, w, h)
    return InteractionVideo(frames, hands, objects, distractor_boxes, distractor_colours)


def render_charades_view(first_person: bool, actions, num_frames: int, fps: float,
                         size: tuple[int, int], rng: np.random.Generator, class_colours: dict[int, np.ndarray],
                         background: np.ndarray) -> tuple[np.ndarray, dict]:
    """One Charades-Ego-like view: objects coloured by the active action classes.

    first person: two big hands entering from the bottom, the active objects large between
    them, camera shake; third person: a small full figure (head, body) holding small objects,
    still camera. `background` is float32 [H + 24, W + 24, 3] shared by the pair's two views.
    Returns the frames and their true boxes, {t: (hand boxes [K, 4], object boxes [K, 4])} in
    frame pixels (x1, y1, x2, y2, clipped to the frame).
    """
    h, w = size
    margin = 12
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    walk = np.clip(np.cumsum(rng.integers(-3, 4, (num_frames, 2)), axis=0), -margin, margin) \
        if first_person else np.zeros((num_frames, 2), int)
    shirt = rng.uniform(30, 220, 3)
    figure_x = rng.uniform(0.3, 0.7) * w
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    boxes = {}
    for t in range(num_frames):
        dx, dy = walk[t]
        frame = background[margin + dy:margin + dy + h, margin + dx:margin + dx + w].copy()
        active = [a.label for a in actions if a.overlaps(t / fps, t / fps)]
        hands, objects = [], []
        if first_person:
            for k, label in enumerate(active):
                cx = w * (0.5 + 0.22 * (k - (len(active) - 1) / 2))
                _paint_rect(frame, cx - 0.16 * h, 0.38 * h, cx + 0.16 * h, 0.70 * h, class_colours[label])
                objects.append(_clip_box(cx - 0.16 * h, 0.38 * h, cx + 0.16 * h, 0.70 * h, w, h))
            sway = 0.03 * w * math.sin(2 * math.pi * t / max(num_frames, 1))
            for side in (0.28, 0.72):
                hx, hy, rx, ry = side * w + sway, 1.02 * h, 0.16 * w, 0.28 * h
                _paint_ellipse(frame, xx, yy, hx, hy, rx, ry, SKIN)
                hands.append(_clip_box(hx - rx, hy - ry, hx + rx, hy + ry, w, h))
        else:
            fx = figure_x + 0.05 * w * math.sin(2 * math.pi * t / max(num_frames, 1))
            _paint_rect(frame, fx - 0.05 * w, 0.42 * h, fx + 0.05 * w, 0.78 * h, shirt)
            _paint_ellipse(frame, xx, yy, fx, 0.34 * h, 0.05 * h, 0.06 * h, SKIN)
            for k, label in enumerate(active):
                cx = fx + 0.09 * w + 0.07 * w * k
                _paint_rect(frame, cx - 0.035 * h, 0.52 * h, cx + 0.035 * h, 0.59 * h, class_colours[label])
                objects.append(_clip_box(cx - 0.035 * h, 0.52 * h, cx + 0.035 * h, 0.59 * h, w, h))
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
        boxes[t] = (np.array(hands, np.float32).reshape(-1, 4), np.array(objects, np.float32).reshape(-1, 4))
    return frames, boxes


def render_charades_interaction_view(first_person: bool, actions, num_frames: int, fps: float,
                                     size: tuple[int, int], rng: np.random.Generator,
                                     class_colours: dict[int, np.ndarray], background: np.ndarray):
    """One Charades-Ego-like view where an action is a hand touching its class's object.

    Every frame shows one object of each class colour in a row, fixed in the scene, in an order
    shuffled per recording, so which colours are visible says nothing. An action is active
    while a hand grips the object of its class's colour from below (their boxes overlap); with
    two active, each hand holds one (the left one the left-most); with none, both hands rest
    below the row. No hand box ever overlaps an untouched object's box: a gripping hand is
    narrower than its object's slot, and resting hands stay below the row.
    first person: tall objects, two big hands entering from the bottom, camera shake (the
    objects move with the scene, a gripping hand with its object; at most 8% of the frame, less
    than render_charades_view's, so the row stays in view); third person: small objects
    in front of a small figure that walks to them and reaches with its small hands, still camera.
    `background` is float32 [H + 24, W + 24, 3] shared by the pair's two views.
    Returns (frames uint8 [T, H, W, 3], boxes {t: (hand boxes [2, 4], touched object boxes
    [A, 4])} -- what a hand-object detector reports --, object boxes {class id: float32 [T, 4]}
    of every object), all x1, y1, x2, y2 in frame pixels, clipped to the frame.
    """
    h, w = size
    margin = 12
    labels = [int(c) for c in class_colours]
    order = [labels[i] for i in rng.permutation(len(labels))]  # left to right
    count = len(order)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if first_person:
        # the shake is kept small enough that the row stays in view and clear of the resting hands
        bound = min(margin, max(1, round(0.08 * min(h, w))))
        walk = np.clip(np.cumsum(rng.integers(-3, 4, (num_frames, 2)), axis=0), -bound, bound)
        slot = 0.8 * w / max(count, 3)
        half_w, top, bottom = 0.3 * slot, 0.12 * h, 0.42 * h
        rx, ry = min(0.16 * w, 0.45 * slot), 0.26 * h
    else:
        walk = np.zeros((num_frames, 2), int)
        slot = 0.84 * w / max(count, 3)
        half_w = min(0.06 * h, 0.35 * slot)
        top, bottom = 0.56 * h - half_w, 0.56 * h + half_w
        rx = ry = min(0.035 * h, 0.8 * half_w)
        shirt = rng.uniform(30, 220, 3)
        idle_x = rng.uniform(0.3, 0.7) * w
    centres = {label: 0.5 * w + (k - (count - 1) / 2) * slot for k, label in enumerate(order)}
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    boxes, object_boxes = {}, {label: np.empty((num_frames, 4), np.float32) for label in order}
    figure_x = None
    for t in range(num_frames):
        dx, dy = walk[t]
        frame = background[margin + dy:margin + dy + h, margin + dx:margin + dx + w].copy()
        active = list(dict.fromkeys(a.label for a in actions if a.overlaps(t / fps, t / fps)))
        if len(active) > 2:
            raise ValueError(f"render_charades_interaction_view: frame {t} has {len(active)} actions active "
                             f"({active}); two hands can hold at most two objects")
        unknown = [label for label in active if label not in centres]
        if unknown:
            raise ValueError(f"render_charades_interaction_view: action classes {unknown} have no colour in "
                             f"class_colours ({sorted(centres)})")
        # hand 0 is the left one: of two objects it takes the left-most; one object goes to the
        # hand on its side of the view
        targets = sorted(active, key=lambda label: centres[label])
        if len(targets) == 2:
            holder = {targets[0]: 0, targets[1]: 1}
        else:
            holder = {label: int(centres[label] >= 0.5 * w) for label in targets}
        if not first_person:
            if len(targets) == 2:
                wanted = 0.5 * (centres[targets[0]] + centres[targets[1]])
            elif targets:  # stand beside the object, on the side of the hand that reaches it
                wanted = centres[targets[0]] + (0.06 * w if holder[targets[0]] == 0 else -0.06 * w)
            else:
                wanted = idle_x
            figure_x = wanted if figure_x is None else figure_x + float(np.clip(wanted - figure_x, -0.06 * w,
                                                                                 0.06 * w))
            _paint_rect(frame, figure_x - 0.05 * w, 0.42 * h, figure_x + 0.05 * w, 0.78 * h, shirt)
            _paint_ellipse(frame, xx, yy, figure_x, 0.34 * h, 0.05 * h, 0.06 * h, SKIN)
        for label in order:
            x1, y1, x2, y2 = centres[label] - half_w - dx, top - dy, centres[label] + half_w - dx, bottom - dy
            _paint_rect(frame, x1, y1, x2, y2, class_colours[label])
            object_boxes[label][t] = _clip_box(x1, y1, x2, y2, w, h)
        hand_centres = []
        for side in (0, 1):
            held = [label for label, hand in holder.items() if hand == side]
            if held and first_person:  # the hand's top reaches the middle of the object
                cx, cy = centres[held[0]] - dx, 0.5 * (top + bottom) + ry - dy
            elif held:  # a small hand centred on the object's lower edge
                cx, cy = centres[held[0]], bottom
            elif first_person:
                sway = 0.03 * w * math.sin(2 * math.pi * t / max(num_frames, 1))
                cx, cy = (0.28 if side == 0 else 0.72) * w + sway, 0.64 * h + ry
            else:
                cx, cy = figure_x + (-0.075 if side == 0 else 0.075) * w, 0.72 * h
            hand_centres.append((cx, cy))
        for cx, cy in hand_centres:
            _paint_ellipse(frame, xx, yy, cx, cy, rx, ry, SKIN)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
        hands = np.stack([_clip_box(cx - rx, cy - ry, cx + rx, cy + ry, w, h) for cx, cy in hand_centres])
        touched = np.array([object_boxes[label][t] for label in active], np.float32).reshape(-1, 4)
        boxes[t] = (hands, touched)
    return frames, boxes, object_boxes


def write_box_detections(path: str, boxes: dict, size: tuple[int, int], rng: np.random.Generator) -> None:
    """100DOH-style detections of several true boxes per frame ({t: (hands [K, 4], objects
    [K, 4])}), scores 0.6-0.99, for data sets whose frames hold several hands and objects."""
    def rows(array, contact):
        out = np.zeros((len(array), DETECTION_COLUMNS), np.float32)
        out[:, :4], out[:, 4], out[:, 5], out[:, 9] = array, rng.uniform(0.6, 0.99, len(array)), contact, 1
        return out if len(array) else None
    frames = {t: {"hand_dets": rows(hands, 3), "obj_dets": rows(objects, 0)} for t, (hands, objects) in boxes.items()}
    save_detections(path, size, frames)


# ----------------------------------------------------------------------------- writing helpers


def write_frame_folder(folder: str, frames: np.ndarray, name_format: str, quality: int = 90) -> list[str]:
    """Write frames as JPEGs named `name_format.format(i)` for i = 1, 2, ... (1-based)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    with warnings.catch_warnings():  # torchvision 0.29 flags its image codecs as deprecated, on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        for i, frame in enumerate(frames, start=1):
            path = os.path.join(folder, name_format.format(i))
            torchvision.io.write_jpeg(torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1), path,
                                      quality=quality)
            paths.append(path)
    return paths


def write_interaction_detections(path: str, hands: np.ndarray, objects: np.ndarray, size: tuple[int, int],
                                 rng: np.random.Generator, detector_scale: float = 1.0) -> None:
    """100DOH-style detections for rendered frames: the true boxes (scores 0.6-0.99) on every
    frame, and on every third frame a low-score (< 0.45) distractor box. The boxes are given
    as if the detector ran on frames `detector_scale` times the video's size; frame t is
    decoded frame t."""
    h, w = size
    frames = {}
    for t, (hand, obj) in enumerate(zip(hands, objects)):
        def row(box, score, contact):
            out = np.zeros(DETECTION_COLUMNS, np.float32)
            out[:4], out[4], out[5], out[9] = box * detector_scale, score, contact, 1
            return out
        hand_rows = [row(hand, rng.uniform(0.6, 0.99), 3)] if hand[2] > hand[0] and hand[3] > hand[1] else []
        obj_rows = [row(obj, rng.uniform(0.6, 0.99), 0)] if obj[2] > obj[0] and obj[3] > obj[1] else []
        if t % 3 == 0:
            x1, y1 = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
            junk = np.array([x1, y1, x1 + w / 4, y1 + h / 4], np.float32)
            (hand_rows if t % 2 == 0 else obj_rows).append(row(junk, rng.uniform(0.05, 0.45), 0))
        frames[t] = {"hand_dets": np.stack(hand_rows) if hand_rows else None,
                     "obj_dets": np.stack(obj_rows) if obj_rows else None}
    save_detections(path, (round(h * detector_scale), round(w * detector_scale)), frames)


def _write_detection_store(root: str, files: dict[str, str], size: tuple[int, int],
                           num_frames: dict[str, int]) -> str:
    """The detection store `root/detection_store` built from the written files, every file
    checked against its video's size and length."""
    store = os.path.join(root, "detection_store")
    build_detection_store(files, store, video_sizes={v: size for v in files}, num_frames=num_frames,
                          detector="synthetic (true boxes, 100DOH layout)", source=os.path.join(root, "detections"))
    return store


def corrupt_video(path: str, mode: str = "truncate", keep_fraction: float = 0.3, seed: int = 0) -> None:
    """Damage a video file (or every JPEG of a frame folder) for bad-input tests:
    "truncate" keeps the first `keep_fraction` of the bytes, "garbage" replaces the bytes with
    random ones of the same length, "empty" leaves a zero-byte file."""
    if mode not in ("truncate", "garbage", "empty"):
        raise ValueError(f"corrupt_video: mode should be truncate, garbage or empty, got {mode!r}")
    files = [os.path.join(path, f) for f in sorted(os.listdir(path))] if os.path.isdir(path) else [path]
    rng = np.random.default_rng(seed)
    for file in files:
        with open(file, "rb") as f:
            data = f.read()
        if mode == "truncate":
            data = data[:int(len(data) * keep_fraction)]
        elif mode == "garbage":
            data = rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
        else:
            data = b""
        with open(file, "wb") as f:
            f.write(data)


def _write_csv(path: str, header, rows) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _timestamp(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:05.2f}"


def _youtube_id(rng: np.random.Generator) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 11))


# ----------------------------------------------------------------------------- Kinetics


def make_kinetics(root: str, num_classes: int = 4, videos_per_class: int = 6, val_videos_per_class: int = 2,
                  size: tuple[int, int] = (96, 128), num_frames: int = 48, fps: float = 24.0,
                  detector_scale: float = 2.0, distractors: int = 0, seed: int = 0) -> dict:
    """Kinetics-like mp4s, one motion per class.

    Writes `videos/<split>/<class name>/<youtube_id>_<start>_<end>.mp4`, the official CSVs
    `annotations/{train,validate}.csv`, PySlowFast lists `lists/{train,val}.csv` (paths relative
    to `videos/`), `classnames.txt` (index order = sorted names, the standard map) and
    `detections/<video_id>.pkl` (boxes given at `detector_scale` x the video size) and their
    store `detection_store/` ("detection_store" in the result).
    `distractors` > 0 adds that many untouched squares in other colours to every video (see the
    module docstring); the detections still hold only the hand and the object it touches.
    Returns the paths and the truth: labels, splits, boxes and video paths per video id (with
    distractors, each video's boxes also hold "distractors" [T, D, 4] and "distractor_colours"
    [D, 3]).
    """
    if not 1 <= num_classes <= len(MOTIONS):
        raise ValueError(f"make_kinetics: num_classes should be 1..{len(MOTIONS)}, got {num_classes}")
    if not 0 <= distractors < len(PALETTE):
        raise ValueError(f"make_kinetics: distractors should be 0..{len(PALETTE) - 1}, got {distractors}")
    rng = np.random.default_rng(seed)
    # a stream of its own, so every video's pair, background and detections are as without them
    distractor_rng = np.random.default_rng([seed, 1])
    motions = MOTIONS[:num_classes]
    names = sorted(KINETICS_CLASS_NAMES[m] for m in motions)
    video_root, det_root = os.path.join(root, "videos"), os.path.join(root, "detections")
    out = {"root": root, "video_root": video_root, "detections": det_root, "detector_scale": detector_scale,
           "classnames": os.path.join(root, "classnames.txt"), "class_names": names, "fps": fps,
           "num_frames": num_frames, "size": size, "labels": {}, "split": {}, "paths": {}, "boxes": {}}
    csv_rows = {"train": [], "val": []}
    list_rows = {"train": [], "val": []}
    for split, count in (("train", videos_per_class), ("val", val_videos_per_class)):
        for motion in motions:
            name = KINETICS_CLASS_NAMES[motion]
            for _ in range(count):
                start = int(rng.integers(0, 300))
                video_id = kinetics_clip_filename(_youtube_id(rng), start, start + 10)
                video = render_interaction(motion, num_frames, size, rng, distractors=distractors,
                                           distractor_rng=distractor_rng)
                rel = os.path.join(split, name, video_id + ".mp4")
                path = os.path.join(video_root, rel)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_video(path, video.frames, fps)
                write_interaction_detections(detections_path(det_root, video_id), video.hands, video.objects, size,
                                             rng, detector_scale)
                label = names.index(name)
                csv_rows[split].append([name, video_id[:11], start, start + 10, split, 0])
                list_rows[split].append(f"{rel} {label}")
                out["labels"][video_id], out["split"][video_id] = label, split
                out["paths"][video_id], out["boxes"][video_id] = path, {"hand": video.hands, "object": video.objects}
                if distractors:
                    out["boxes"][video_id].update(distractors=video.distractors,
                                                  distractor_colours=video.distractor_colours)
    header = ["label", "youtube_id", "time_start", "time_end", "split", "is_cc"]
    out["official_csv"] = {
        split: _write_csv(os.path.join(root, "annotations", name), header, csv_rows[split])
        for split, name in (("train", "train.csv"), ("val", "validate.csv"))}
    os.makedirs(os.path.join(root, "lists"), exist_ok=True)
    out["lists"] = {}
    for split in ("train", "val"):
        out["lists"][split] = os.path.join(root, "lists", f"{split}.csv")
        with open(out["lists"][split], "w") as f:
            f.write("\n".join(list_rows[split]) + "\n")
    with open(out["classnames"], "w") as f:
        f.write("\n".join(names) + "\n")
    out["detection_store"] = _write_detection_store(
        root, {v: detections_path(det_root, v) for v in out["labels"]}, size, {v: num_frames for v in out["labels"]})
    return out


# ----------------------------------------------------------------------------- Charades-Ego


def _charades_actions(rng, class_ids, length: float):
    """1-2 actions with spans inside [0, length]; shared by both views of a pair."""
    chosen = rng.choice(class_ids, size=min(int(rng.integers(1, 3)), len(class_ids)), replace=False)
    actions = []
    for label in chosen:
        start = float(rng.uniform(0, 0.6 * length))
        end = float(min(length, start + rng.uniform(0.3, 0.7) * length))
        actions.append(CharadesAction(int(label), round(start, 2), round(end, 2)))
    return tuple(actions)


def make_charades_ego(root: str, num_classes: int = 4, train_pairs: int = 6, test_pairs: int = 3,
                      size: tuple[int, int] = (96, 128), num_frames: int = 48, as_frames: bool = False,
                      unpaired_first_person: int = 1, interaction_classes: bool = False, seed: int = 0) -> dict:
    """Charades-Ego-like paired recordings: `<id>` (third person) and `<id>EGO` (first person).

    Writes `CharadesEgo_v1_{train,test}.csv` (the 13 columns of the released files, quoted
    scripts with commas) and either videos `videos/<id>.mp4` or JPEG folders
    `frames/<id>/<id>-000001.jpg` (`as_frames`), both at 24 fps. Action classes are spread over
    c000..c156; each has its own object colour. `unpaired_first_person` extra first-person-only
    recordings go to train. The true hand and object boxes of every frame go to
    `detections/<id>.pkl` (100DOH layout) and their store `detection_store/` (Ego-Exo*).
    `interaction_classes`: every frame shows an object of each class colour and an action is
    a hand touching its class's object (render_charades_interaction_view); the result then also
    holds, per video id, "boxes" ({t: (hand boxes, touched object boxes)}, what the detection
    files hold) and "object_boxes" ({class id: [T, 4]}, every object's box).
    """
    if not 1 <= num_classes <= len(PALETTE):
        raise ValueError(f"make_charades_ego: num_classes should be 1..{len(PALETTE)}, got {num_classes}")
    rng = np.random.default_rng(seed)
    class_ids = np.linspace(0, 156, num_classes).round().astype(int) if num_classes > 1 else np.array([92])
    class_colours = {int(c): PALETTE[i] for i, c in enumerate(class_ids)}
    data_root = os.path.join(root, "frames" if as_frames else "videos")
    length = num_frames / CHARADES_FPS
    margin = 12
    header = ["id", "subject", "scene", "quality", "relevance", "verified", "script", "objects", "descriptions",
              "actions", "length", "egocentric", "charades_video"]
    out = {"root": root, "data_root": data_root, "fps": CHARADES_FPS, "num_frames": num_frames,
           "class_ids": [int(c) for c in class_ids], "actions": {}, "paths": {}, "csv": {}}
    detection_files = {}
    for split, pairs in (("train", train_pairs), ("test", test_pairs)):
        rows = []
        extra = unpaired_first_person if split == "train" else 0
        for p in range(pairs + extra):
            pair_id = f"{split[:2].upper()}{p:03d}"
            actions = _charades_actions(rng, class_ids, length)
            background = _background(rng, size[0] + 2 * margin, size[1] + 2 * margin)
            views = [True] if p >= pairs else [False, True]
            for first_person in views:
                video_id = pair_id + ("EGO" if first_person else "")
                if interaction_classes:
                    frames, boxes, object_boxes = render_charades_interaction_view(
                        first_person, actions, num_frames, CHARADES_FPS, size, rng, class_colours, background)
                    out.setdefault("boxes", {})[video_id] = boxes
                    out.setdefault("object_boxes", {})[video_id] = object_boxes
                else:
                    frames, boxes = render_charades_view(first_person, actions, num_frames, CHARADES_FPS, size, rng,
                                                         class_colours, background)
                detection_files[video_id] = detections_path(os.path.join(root, "detections"), video_id)
                # their own rng, so the rendered data does not depend on the detections
                write_box_detections(detection_files[video_id], boxes, size,
                                     np.random.default_rng(len(detection_files)))
                if as_frames:
                    folder = os.path.join(data_root, video_id)
                    write_frame_folder(folder, frames, video_id + "-{:06d}.jpg")
                    out["paths"][video_id] = folder
                else:
                    path = os.path.join(data_root, video_id + ".mp4")
                    os.makedirs(data_root, exist_ok=True)
                    write_video(path, frames, CHARADES_FPS)
                    out["paths"][video_id] = path
                out["actions"][video_id] = actions
                action_text = ";".join(f"c{a.label:03d} {a.start:.2f} {a.end:.2f}" for a in actions)
                rows.append([video_id, f"S{p % 3}", "Kitchen", 6, 7, "Yes",
                             "A person holds something, then puts it down.", "cup;table",
                             "Holding, then putting down.", action_text, f"{length:.2f}",
                             "Yes" if first_person else "No", pair_id])
        out["csv"][split] = _write_csv(os.path.join(root, f"CharadesEgo_v1_{split}.csv"), header, rows)
    out["detection_store"] = _write_detection_store(root, detection_files, size,
                                                    {v: num_frames for v in detection_files})
    return out


# ----------------------------------------------------------------------------- EPIC-Kitchens


def _make_epic(root: str, version: int, videos: dict[str, list[str]], segments_per_video: int,
               size: tuple[int, int], segment_frames: int, gap_frames: int, fps: float, as_videos: bool,
               rng: np.random.Generator) -> dict:
    """Render EPIC-like first-person videos (one kitchen background each) made of labelled
    segments, each after an idle gap where the hand is alone; returns per-split rows and truth.
    Frame numbers in the CSVs are 1-based; `detections/<video_id>.pkl` holds the true hand and object
    boxes of every frame (0-based decoded frame numbers, 100DOH layout) for Ego-Exo* fine-tuning,
    and `detection_store/` the store built from them ("detection_store" in the result)."""
    out = {"root": root, "fps": fps, "segments": {}, "paths": {}, "rows": {},
           "detections": os.path.join(root, "detections")}
    counter = 0
    lengths = {}
    for split, video_ids in videos.items():
        out["rows"][split] = []
        for video_id in video_ids:
            participant = video_id.split("_")[0]
            clips, segs, hands, objects = [], [], [], []
            frame = 1
            kitchen = _background(rng, size[0] + 16, size[1] + 16)  # margin of render_interaction's shake=2
            for _ in range(segments_per_video):
                verb = int(rng.integers(len(EPIC_VERBS)))
                noun = int(rng.integers(len(EPIC_NOUNS)))
                gap = render_interaction("still", gap_frames, size, rng, hand_scale=1.8, shake=2,
                                         background=kitchen, with_object=False)
                seg = render_interaction(EPIC_VERBS[verb][1], segment_frames, size, rng, colour=PALETTE[noun],
                                         hand_scale=1.8, shake=2, background=kitchen)
                clips += [gap.frames, seg.frames]
                hands += [gap.hands, seg.hands]
                objects += [gap.objects, seg.objects]
                start, stop = frame + gap_frames, frame + gap_frames + segment_frames - 1
                segs.append((start, stop, verb, noun))
                frame = stop + 1
            frames = np.concatenate(clips)
            if as_videos:
                path = os.path.join(root, participant, "videos", video_id + ".MP4")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                write_video(path, frames, fps)
            else:
                path = os.path.join(root, participant, "rgb_frames", video_id)
                write_frame_folder(path, frames, "frame_{:010d}.jpg")
            out["paths"][video_id] = path
            lengths[video_id] = len(frames)
            # Detections of the whole recording (Ego-Exo* fine-tuning), from their own rng so
            # the rendered data does not depend on them.
            write_interaction_detections(os.path.join(root, "detections", video_id + ".pkl"), np.concatenate(hands),
                                         np.concatenate(objects), size, np.random.default_rng(len(out["paths"])))
            for k, (start, stop, verb, noun) in enumerate(segs):
                segment_id = f"{video_id}_{k}" if version == 100 else str(counter)
                counter += 1
                out["segments"][segment_id] = {"video_id": video_id, "participant_id": participant,
                                               "start_frame": start, "stop_frame": stop,
                                               "verb_class": verb, "noun_class": noun}
                out["rows"][split].append((segment_id, participant, video_id, start, stop, verb, noun))
    out["detection_store"] = _write_detection_store(
        root, {v: os.path.join(root, "detections", v + ".pkl") for v in lengths}, size, lengths)
    return out


def _epic_label_row(version, row, fps):
    segment_id, participant, video_id, start, stop, verb, noun = row
    verb_name, noun_name = EPIC_VERBS[verb][0], EPIC_NOUNS[noun]
    t0, t1 = _timestamp((start - 1) / fps), _timestamp((stop - 1) / fps)
    narration = f"{verb_name} {noun_name}"
    common = [start, stop]
    if version == 100:
        return [segment_id, participant, video_id, t0, t0, t1, *common, narration, verb_name, verb, noun_name,
                noun, f"['{noun_name}']", f"[{noun}]"]
    return [segment_id, participant, video_id, narration, t0, t1, *common, verb_name, verb, noun_name, noun,
            f"['{noun_name}']", f"[{noun}]"]


def make_epic100(root: str, size: tuple[int, int] = (96, 128), segment_frames: int = 24, gap_frames: int = 8,
                 segments_per_video: int = 2, fps: float = 60.0, as_videos: bool = False, seed: int = 0) -> dict:
    """EPIC-Kitchens-100-like data: frame folders `<participant>/rgb_frames/<video_id>/
    frame_%010d.jpg` (or videos `<participant>/videos/<video_id>.MP4`), `EPIC_100_train.csv`,
    `EPIC_100_validation.csv`, `EPIC_100_test_timestamps.csv`,
    `EPIC_100_unseen_participant_ids_{validation,test}.csv` and `EPIC_100_tail_{verbs,nouns}.csv`.
    Verb = motion (take/put/open/wash), noun = object colour. P03 appears only in validation
    (unseen), P04 only in test."""
    rng = np.random.default_rng(seed)
    videos = {"train": ["P01_01", "P01_02", "P02_01", "P02_02", "P01_03", "P02_03", "P01_04", "P02_04",
                        "P01_05", "P02_05"],
              "validation": ["P01_11", "P03_01"], "test": ["P02_11", "P04_01"]}
    out = _make_epic(root, 100, videos, segments_per_video, size, segment_frames, gap_frames, fps, as_videos, rng)
    header = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
              "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
              "noun_class", "all_nouns", "all_noun_classes"]
    out["csv"] = {split: _write_csv(os.path.join(root, f"EPIC_100_{split}.csv"), header,
                                    [_epic_label_row(100, r, fps) for r in out["rows"][split]])
                  for split in ("train", "validation")}
    test_header = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                   "stop_timestamp", "start_frame", "stop_frame"]
    out["csv"]["test"] = _write_csv(os.path.join(root, "EPIC_100_test_timestamps.csv"), test_header,
                                    [_epic_label_row(100, r, fps)[:8] for r in out["rows"]["test"]])
    out["unseen"] = {"validation": _write_csv(os.path.join(root, "EPIC_100_unseen_participant_ids_validation.csv"),
                                              ["participant_id"], [["P03"]]),
                     "test": _write_csv(os.path.join(root, "EPIC_100_unseen_participant_ids_test.csv"),
                                        ["participant_id"], [["P04"]])}
    # the last verb and the last four nouns are rare in the real data's sense: call them tail
    out["tail"] = {"verbs": _write_csv(os.path.join(root, "EPIC_100_tail_verbs.csv"), ["verb"],
                                       [[len(EPIC_VERBS) - 1]]),
                   "nouns": _write_csv(os.path.join(root, "EPIC_100_tail_nouns.csv"), ["noun"],
                                       [[n] for n in range(len(EPIC_NOUNS) - 4, len(EPIC_NOUNS))])}
    return out


def make_epic55(root: str, size: tuple[int, int] = (96, 128), segment_frames: int = 24, gap_frames: int = 8,
                segments_per_video: int = 2, fps: float = 60.0, as_videos: bool = False, seed: int = 0) -> dict:
    """EPIC-Kitchens-55-like data: the same frame-folder layout as `make_epic100`,
    `EPIC_train_action_labels.csv` (uid-indexed) and `EPIC_test_s{1,2}_timestamps.csv`
    (S1: kitchens seen in training, S2: an unseen participant)."""
    rng = np.random.default_rng(seed)
    videos = {"train": ["P01_01", "P01_02", "P02_01", "P02_02", "P01_03", "P02_03"],
              "s1": ["P01_09"], "s2": ["P05_01"]}
    out = _make_epic(root, 55, videos, segments_per_video, size, segment_frames, gap_frames, fps, as_videos, rng)
    header = ["uid", "participant_id", "video_id", "narration", "start_timestamp", "stop_timestamp",
              "start_frame", "stop_frame", "verb", "verb_class", "noun", "noun_class", "all_nouns",
              "all_noun_classes"]
    out["csv"] = {"train": _write_csv(os.path.join(root, "EPIC_train_action_labels.csv"), header,
                                      [_epic_label_row(55, r, fps) for r in out["rows"]["train"]])}
    test_header = ["uid", "participant_id", "video_id", "start_timestamp", "stop_timestamp", "start_frame",
                   "stop_frame"]
    for split in ("s1", "s2"):
        out["csv"][split] = _write_csv(os.path.join(root, f"EPIC_test_{split}_timestamps.csv"), test_header,
                                       [[r[0], r[1], r[2], _timestamp((r[3] - 1) / fps),
                                         _timestamp((r[4] - 1) / fps), r[3], r[4]] for r in out["rows"][split]])
    return out


# ----------------------------------------------------------------------------- SSv2


def make_ssv2(root: str, videos_per_class: int = 4, val_videos_per_class: int = 2, test_videos: int = 2,
              size: tuple[int, int] = (96, 128), num_frames: int = 32, fps: float = 12.0, seed: int = 0) -> dict:
    """Something-Something-v2-like data: webm (VP9) videos `videos/<id>.webm`,
    `something-something-v2-labels.json` ({template without brackets: "index"}), and
    `something-something-v2-{train,validation,test}.json` (test: ids only). Four motion
    templates ("Moving [something] up", ...)."""
    rng = np.random.default_rng(seed)
    motions = list(SSV2_TEMPLATES)
    plain = {m: SSV2_TEMPLATES[m].replace("[", "").replace("]", "") for m in motions}
    labels = {plain[m]: str(i) for i, m in enumerate(motions)}
    video_root = os.path.join(root, "videos")
    os.makedirs(video_root, exist_ok=True)
    out = {"root": root, "video_root": video_root, "labels": {}, "paths": {}, "json": {}}
    with open(os.path.join(root, "something-something-v2-labels.json"), "w") as f:
        json.dump(labels, f, indent=1)
    out["json"]["labels"] = os.path.join(root, "something-something-v2-labels.json")
    next_id = 1000 + int(rng.integers(0, 1000))
    for split, count in (("train", videos_per_class), ("validation", val_videos_per_class), ("test", None)):
        entries = []
        plan = [(m, i) for i, m in enumerate(motions) for _ in range(count)] if count is not None else \
            [(motions[int(rng.integers(len(motions)))], None) for _ in range(test_videos)]
        for motion, label in plan:
            video_id = str(next_id)
            next_id += int(rng.integers(1, 50))
            frames = render_interaction(motion, num_frames, size, rng).frames
            path = os.path.join(video_root, video_id + ".webm")
            write_video(path, frames, fps, codec="libvpx-vp9")
            out["paths"][video_id] = path
            if label is None:
                entries.append({"id": video_id})
                continue
            noun = EPIC_NOUNS[int(rng.integers(len(EPIC_NOUNS)))]
            entries.append({"id": video_id, "label": SSV2_TEMPLATES[motion].replace("[something]", noun),
                            "template": SSV2_TEMPLATES[motion], "placeholders": [noun]})
            out["labels"][video_id] = label
        out["json"][split] = os.path.join(root, f"something-something-v2-{split}.json")
        with open(out["json"][split], "w") as f:
            json.dump(entries, f)
    return out


# ----------------------------------------------------------------------------- CLI

MAKERS = {"kinetics": make_kinetics, "charades_ego": make_charades_ego, "epic100": make_epic100,
          "epic55": make_epic55, "ssv2": make_ssv2}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per dataset)")
    parser.add_argument("--dataset", default="all", choices=[*MAKERS, "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--charades-frames", action="store_true",
                        help="write Charades-Ego as JPEG frame folders instead of mp4 videos")
    parser.add_argument("--kinetics-distractors", type=int, default=0, choices=range(len(PALETTE)), metavar="D",
                        help="untouched squares in other colours in every Kinetics-like video (0-7)")
    parser.add_argument("--charades-interaction-classes", action="store_true",
                        help="Charades-Ego classes are which object a hand touches, every object always shown")
    args = parser.parse_args(argv)
    for name in MAKERS if args.dataset == "all" else [args.dataset]:
        start = time.perf_counter()
        kwargs = {}
        if name == "charades_ego":
            kwargs.update(as_frames=args.charades_frames, interaction_classes=args.charades_interaction_classes)
        if name == "kinetics":
            kwargs.update(distractors=args.kinetics_distractors)
        result = MAKERS[name](os.path.join(args.out, name), seed=args.seed, **kwargs)
        print(f"{name}: {len(result['paths'])} videos in {result['root']} "
              f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
