"""One data set's hand-object detections as a compact, read-only store of plain arrays that
every data-loader worker shares: a clip's boxes are one slice and a binary search, with no
file opened and nothing unpickled per sample.

Input: one file per video in the detector's layout (SPEC section 1, data/teacher_targets.py),
read by `read_detection_file`, which picks the format by the file's suffix:
  .pkl / .pickle  the 100DOH layout {"frame_size": (H, W), "frames": {frame: {"hand_dets":
                  K x 10 array | None, "obj_dets": K x 10 array | None}}}, unpickled by
                  data.safe_pickle (numpy arrays, dicts, lists, None: a pickle naming any other
                  callable is refused before anything in it runs); trusted=True uses plain
                  pickle, which runs whatever the file holds, so only for files you made
  .json           {"frame_size": [H, W], "frames": {"<frame>": {"hand_dets": [[10 numbers], ...]
                  | null, "obj_dets": [[10 numbers], ...] | null}}}, frame keys written as
                  decimal strings ("0", "17"); a key given twice is an error
  .npz            read with allow_pickle=False, holding the arrays
                    frame_size  integer [2]      (H, W)
                    frame       integer [R]      0-based frame number of each row
                    kind        integer [R]      0 = a hand_dets row, 1 = an obj_dets row
                    dets        float   [R, 10]  the detector's row
                  (rows of one frame and kind keep their order in the file)
Rows are [x1, y1, x2, y2, score, contact, offset, 0.1*dx, 0.1*dy, side] in pixels of frame_size,
frames 0-based frame numbers of the decoded video. Every row is checked as teacher_targets
says (columns 0-4 finite, score in [0, 1], x1 <= x2, y1 <= y2, inside the frame +-1 px), and
each error names the file, the frame and the row.

`build_detection_store` also checks each file against its video where the caller knows it:
frame numbers below num_frames[key], and frame_size against video_sizes[key] (H, W). The
detector may have run on uniformly rescaled frames, so an equal aspect ratio (up to rounding
of either size) is accepted; a (W, H) given for (H, W) is refused with a message saying so,
since it would put every box in the wrong place. Rows with score >= `threshold` are kept; a
frame keeping more than MAX_BOXES_PER_FRAME of them is refused (a hand-object detector gives a
handful per frame after NMS; thousands are a broken file, and one such clip's targets would
cost as much as a whole batch's). An invalid or unreadable file is a failure in the report
(video key, file, message). By default the build then raises DetectionStoreError listing them
and writes nothing; `skip_invalid=True` writes the store without those videos (a data set
built on it then lists them as missing).

The store is a folder:
  boxes.npy   float32 [M, 4]  x1, y1, x2, y2 in pixels of the video's frame_size (as the detector gave them)
  scores.npy  float32 [M]     confidence, in [threshold, 1]
  kinds.npy   int8    [M]     0 hand, 1 object
  frames.npy  int32   [M]     0-based frame number
  index.json  {"format": "egoexo-detection-store", "version": 1, "detector": str, "source": str,
               "threshold": float, "num_rows": M,
               "videos": {key: {"rows": [start, end], "frame_size": [H, W], "num_frames": int | null}}}
Videos are in sorted key order; a video's rows are the range [start, end), the ranges follow
each other and cover [0, M); within a video rows are sorted by (frame, kind) with the file's
order kept, so a frame's rows are found by binary search over frames[start:end]. The build
writes into a temporary folder beside `out_dir` and renames it into place: a failed or killed
build leaves no half store, and a store already at out_dir is replaced only once the new one is
complete (out_dir must be absent, empty, or a store: anything else is refused, never deleted).

`DetectionStore(path)` checks the index and every row for what the fused Interaction-Map op
requires (finite boxes with x1 <= x2 and y1 <= y2, inside the frame, scores in [threshold, 1],
kinds 0/1; frames inside the video and ascending per video), so nothing in a store changed
after its build reaches a training step. What makes the whole store unusable is an error when
it is opened, naming the file: an index that is not this format (or whose row ranges do not
tile [0, M)), an array missing, truncated or of another dtype/shape. A bad row makes only its
video unusable: with strict=True (the default) that too is an error at open; with
strict=False (what a dataset uses) the store opens, `unusable(keys)` lists such videos, and
`clip` on one raises DetectionStoreError naming the store, the video, the row and the rule, so
only that video's samples fail. `clip` also refuses, per sample, a clip frame outside the
frames the detections were made for (num_frames, where the build knew it: the decoded video is
not the one the detector ran on) and a clip frame holding more than MAX_BOXES_PER_FRAME rows.
The store memory-maps the arrays read-only, and `clip(...)` returns exactly what
`teacher_targets.clip_detections` returns for the source file on the video's frames. It
pickles without the arrays: a DataLoader worker re-opens the memory maps on first use, after
checking that the files are the ones that were checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from data.teacher_targets import (COORD_TOLERANCE, DETECTION_COLUMNS, HAND, OBJECT, TeacherTargetError,
                                  VideoDetections, _check_detections, load_detections)

STORE_FORMAT, STORE_VERSION = "egoexo-detection-store", 1
INDEX_FILE = "index.json"
# name -> (dtype, shape of one row); M rows each
STORE_ARRAYS = {"boxes": (np.float32, (4,)), "scores": (np.float32, ()), "kinds": (np.int8, ()),
                "frames": (np.int32, ())}
MAX_LISTED = 20  # failures / bad entries shown in one message
MAX_BOXES_PER_FRAME = 1000  # kept rows one frame may hold (module docstring)
_CHECK_CHUNK = 1 << 20  # rows checked at a time when a store is opened
_INT32_MAX = np.iinfo(np.int32).max


class DetectionStoreError(TeacherTargetError):
    """A detection file is invalid, a store is malformed or changed, or a lookup is impossible.
    From build_detection_store, `.failures` lists the invalid files ({"key", "file", "error"})."""

    def __init__(self, message: str, failures: Sequence[dict] = ()):
        super().__init__(message)
        self.failures = list(failures)


# ----------------------------------------------------------------------------- input files


def read_detection_file(path, *, trusted: bool = False) -> VideoDetections:
    """One video's detections from a .pkl (100DOH), .json or .npz file (module docstring),
    every row checked. `trusted` only matters for .pkl: plain pickle instead of the restricted
    unpickler."""
    where = os.fspath(path)
    suffix = os.path.splitext(where)[1].lower()
    if suffix in (".pkl", ".pickle"):
        return load_detections(where, trusted=trusted)
    if not os.path.isfile(where):
        raise DetectionStoreError(f"{where}: detection file not found")
    if suffix == ".json":
        return _read_json(where)
    if suffix == ".npz":
        return _read_npz(where)
    raise DetectionStoreError(f"{where}: unknown detection file type {suffix!r}; expected .pkl (100DOH), "
                              f".json or .npz (layouts in data/detection_store.py)")


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _read_json(where: str) -> VideoDetections:
    try:
        with open(where, encoding="utf-8") as f:
            blob = json.load(f, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise DetectionStoreError(f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise DetectionStoreError(f"{where}: not UTF-8 text ({e})") from None
    except ValueError as e:  # a duplicate key
        raise DetectionStoreError(f"{where}: {e}") from None
    if not isinstance(blob, dict) or not {"frame_size", "frames"} <= set(blob) or not isinstance(blob["frames"], dict):
        raise DetectionStoreError(f"{where}: expected an object {{\"frame_size\": [H, W], \"frames\": "
                                  f"{{\"<frame>\": {{\"hand_dets\": ..., \"obj_dets\": ...}}}}}}")
    frames = {}
    for key, entry in blob["frames"].items():
        if not re.fullmatch(r"[0-9]+", key):
            raise DetectionStoreError(f"{where}: frame key {key!r} should be a 0-based frame number "
                                      f"written in decimal digits")
        frames[int(key)] = entry
    return _check_detections(where, {"frame_size": blob["frame_size"], "frames": frames})


def _read_npz(where: str) -> VideoDetections:
    names = ("frame_size", "frame", "kind", "dets")
    try:
        with np.load(where, allow_pickle=False) as npz:
            missing = [n for n in names if n not in npz.files]
            if missing:
                raise DetectionStoreError(f"{where}: missing array(s) {missing}; expected {list(names)} "
                                          f"(layout in data/detection_store.py)")
            frame_size, frame, kind, dets = (npz[n] for n in names)
    except DetectionStoreError:
        raise
    except Exception as e:  # zip, header and object-array errors all mean "unreadable"
        raise DetectionStoreError(f"{where}: not a readable .npz of plain arrays ({e})") from None
    if frame_size.shape != (2,):
        raise DetectionStoreError(f"{where}: 'frame_size' should be [H, W], got shape {frame_size.shape}")
    rows = len(frame) if frame.ndim == 1 else -1
    for name, array in (("frame", frame), ("kind", kind)):
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer) or len(array) != rows:
            raise DetectionStoreError(f"{where}: '{name}' should be an integer array [R] (R = len(frame)), "
                                      f"got {array.dtype} {array.shape}")
    if dets.shape != (rows, DETECTION_COLUMNS) or not np.issubdtype(dets.dtype, np.number):
        raise DetectionStoreError(f"{where}: 'dets' should be a numeric array [R, {DETECTION_COLUMNS}] with "
                                  f"R = len(frame) = {rows}, got {dets.dtype} {dets.shape}")
    for name, array, bad, expected in (("kind", kind, (kind != HAND) & (kind != OBJECT), "0 (hand) or 1 (object)"),
                                       ("frame", frame, frame < 0, "a 0-based frame number")):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DetectionStoreError(f"{where}: row {row}: '{name}' = {int(array[row])}, expected {expected}")
    # by (frame, kind), file order kept within each: two stable sorts, the minor key first
    order = np.argsort(kind, kind="stable")
    order = order[np.argsort(frame[order], kind="stable")]
    frame, kind, dets = frame[order], kind[order], dets[order]
    frames = {}
    for f in np.unique(frame):
        lo, hi = np.searchsorted(frame, f, "left"), np.searchsorted(frame, f, "right")
        parts = [dets[lo:hi][kind[lo:hi] == k] for k in (HAND, OBJECT)]
        frames[int(f)] = {"hand_dets": parts[0] if len(parts[0]) else None,
                          "obj_dets": parts[1] if len(parts[1]) else None}
    return _check_detections(where, {"frame_size": frame_size.tolist(), "frames": frames})


# ----------------------------------------------------------------------------- frame sizes


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether sizes a and b (H, W) can be one picture at two scales, each side rounded to
    whole pixels: |Ha*Wb - Wa*Hb| is at most what rounding of all four sides can cause."""
    (ha, wa), (hb, wb) = a, b
    return abs(ha * wb - wa * hb) <= (ha + wa + hb + wb) / 2 + 0.5


def _size_mismatch(frame_size: tuple[int, int], video_size: tuple[int, int]) -> str | None:
    """Why `frame_size` (the detector's) cannot be `video_size` (H, W) rescaled, or None."""
    if same_aspect(frame_size, video_size):
        return None
    h, w = video_size
    if same_aspect(frame_size, (w, h)):
        return (f"frame_size {tuple(frame_size)} is the video's (H, W) = ({h}, {w}) swapped: frame_size must "
                f"be (height, width) of the frames the detector ran on")
    return (f"frame_size {tuple(frame_size)} is not the video's (H, W) = ({h}, {w}) or a uniform rescale of it "
            f"(the aspect ratios differ)")


# ----------------------------------------------------------------------------- building


def _check_against_video(dets: VideoDetections, video_size, num_frames) -> None:
    beyond = sorted(f for f in dets.frames if f > _INT32_MAX or (num_frames is not None and f >= num_frames))
    if beyond:
        limit = f"the video's {num_frames} frames (0-based 0..{num_frames - 1})" if num_frames is not None \
            else f"int32 ({_INT32_MAX})"
        raise DetectionStoreError(f"{dets.path}: frame {beyond[0]} is beyond {limit}"
                                  + (f" ({len(beyond)} such frames)" if len(beyond) > 1 else ""))
    if video_size is not None:
        reason = _size_mismatch(dets.frame_size, tuple(int(x) for x in video_size))
        if reason:
            raise DetectionStoreError(f"{dets.path}: {reason}")


def _video_rows(dets: VideoDetections, threshold: float):
    """The kept rows of one video sorted by (frame, kind), and how many were dropped."""
    frames, kinds, kept = [], [], []
    dropped = 0
    for frame in sorted(dets.frames):
        for kind, array in zip((HAND, OBJECT), dets.frames[frame]):
            keep = array[array[:, 4] >= threshold]
            dropped += len(array) - len(keep)
            frames.append(np.full(len(keep), frame, np.int32))
            kinds.append(np.full(len(keep), kind, np.int8))
            kept.append(keep[:, :5])
    if not kept:
        return np.zeros(0, np.int32), np.zeros(0, np.int8), np.zeros((0, 5), np.float32), 0
    return np.concatenate(frames), np.concatenate(kinds), np.concatenate(kept), dropped


def _crowded_frame(frames: np.ndarray) -> tuple[int, int] | None:
    """(frame, rows) of the first frame holding more than MAX_BOXES_PER_FRAME rows, or None."""
    if len(frames) <= MAX_BOXES_PER_FRAME:
        return None
    numbers, counts = np.unique(frames, return_counts=True)
    over = np.flatnonzero(counts > MAX_BOXES_PER_FRAME)
    return (int(numbers[over[0]]), int(counts[over[0]])) if len(over) else None


def _write_npy(raw_path: str, npy_path: str, dtype, shape: tuple[int, ...]) -> None:
    """A .npy of `shape` whose data are the bytes of `raw_path` (written while ingesting, so
    the rows of a whole data set never sit in memory at once)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with open(npy_path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        with open(raw_path, "rb") as raw:
            shutil.copyfileobj(raw, out, 1 << 24)
        out.flush()
        os.fsync(out.fileno())
    os.remove(raw_path)


def _check_out_dir(out_dir: str) -> None:
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise DetectionStoreError(f"{out_dir}: exists and is not a folder; refusing to replace it with a "
                                  f"detection store")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.isfile(os.path.join(out_dir, INDEX_FILE)):
        raise DetectionStoreError(f"{out_dir}: exists and is not a detection store (no {INDEX_FILE}); refusing "
                                  f"to replace it: give an absent, empty or store folder")


def _publish(tmp: str, out_dir: str) -> None:
    """Move the finished store at `tmp` to `out_dir`; an old store there goes only after."""
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(tmp))
        os.rename(out_dir, old)  # onto an empty folder: allowed by rename(2)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def _failure_lines(failures: Sequence[dict]) -> str:
    lines = [f"  {f['key']}: {f['error']}" for f in failures[:MAX_LISTED]]
    if len(failures) > MAX_LISTED:
        lines.append(f"  ... and {len(failures) - MAX_LISTED} more")
    return "\n".join(lines)


def build_detection_store(sources: Mapping[str, str], out_dir: str, *,
                          video_sizes: Mapping[str, tuple[int, int]] | None = None,
                          num_frames: Mapping[str, int] | None = None, threshold: float = 0.5,
                          detector: str = "100DOH", trusted: bool = False, source: str = "",
                          skip_invalid: bool = False, progress: bool = False) -> dict:
    """Convert per-video detection files into one store at `out_dir` (module docstring).

    `sources` maps each video key (the data set's recording id) to its .pkl/.json/.npz file;
    `video_sizes` (H, W) and `num_frames` per key, where given, are checked against each file;
    rows with score >= `threshold` are kept; `detector` and `source` are recorded in the index.
    Returns the report {"store", "videos", "boxes_kept", "boxes_dropped" (under the threshold),
    "threshold", "detector", "failures": [{"key", "file", "error"}]}. With failures and not
    `skip_invalid`, raises DetectionStoreError listing them (up to 20 and the count) and
    writes nothing.
    """
    out_dir = os.fspath(out_dir)
    if not sources:
        raise DetectionStoreError(f"{out_dir}: no detection files given")
    if not 0 <= threshold <= 1:
        raise ValueError(f"build_detection_store: threshold should be in [0, 1], got {threshold!r}")
    bad_keys = [k for k in sources if not isinstance(k, str) or not k]
    if bad_keys:
        raise DetectionStoreError(f"{out_dir}: video keys should be non-empty strings, got {bad_keys[:MAX_LISTED]}")
    _check_out_dir(out_dir)
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out_dir))}.building-", dir=parent)
    try:
        report = _build(sources, tmp, video_sizes or {}, num_frames or {}, threshold, detector, trusted, source,
                        progress)
        report["store"] = out_dir
        failures = report["failures"]
        if failures and not skip_invalid:
            raise DetectionStoreError(f"{out_dir}: {len(failures)} of {len(sources)} detection files are invalid; "
                                      f"nothing was written (skip_invalid=True builds the store without "
                                      f"them):\n{_failure_lines(failures)}", failures)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _build(sources, tmp, video_sizes, num_frames, threshold, detector, trusted, source, progress) -> dict:
    raw = {name: open(os.path.join(tmp, f"{name}.raw"), "wb") for name in STORE_ARRAYS}
    videos, failures = {}, []
    kept_total = dropped_total = 0
    try:
        for key in tqdm(sorted(sources), desc="detections", unit="video", disable=not progress):
            path = os.fspath(sources[key])
            try:
                dets = read_detection_file(path, trusted=trusted)
                _check_against_video(dets, video_sizes.get(key), num_frames.get(key))
            except (TeacherTargetError, OSError) as e:
                failures.append({"key": key, "file": path, "error": str(e)})
                continue
            frames, kinds, rows, dropped = _video_rows(dets, threshold)
            crowded = _crowded_frame(frames)
            if crowded is not None:
                failures.append({"key": key, "file": path, "error": (
                    f"{path}: frame {crowded[0]} has {crowded[1]} boxes with score >= {threshold:g}, more than the "
                    f"{MAX_BOXES_PER_FRAME} a frame may hold")})
                continue
            raw["boxes"].write(np.ascontiguousarray(rows[:, :4], np.float32).tobytes())
            raw["scores"].write(np.ascontiguousarray(rows[:, 4], np.float32).tobytes())
            raw["kinds"].write(kinds.tobytes())
            raw["frames"].write(frames.tobytes())
            videos[key] = {"rows": [kept_total, kept_total + len(rows)], "frame_size": list(dets.frame_size),
                           "num_frames": None if num_frames.get(key) is None else int(num_frames[key])}
            kept_total += len(rows)
            dropped_total += dropped
    finally:
        for f in raw.values():
            f.close()
    for name, (dtype, row_shape) in STORE_ARRAYS.items():
        _write_npy(os.path.join(tmp, f"{name}.raw"), os.path.join(tmp, f"{name}.npy"), dtype,
                   (kept_total, *row_shape))
    index = {"format": STORE_FORMAT, "version": STORE_VERSION, "detector": str(detector), "source": str(source),
             "threshold": float(threshold), "num_rows": kept_total, "videos": videos}
    with open(os.path.join(tmp, INDEX_FILE), "w", encoding="utf-8") as f:
        json.dump(index, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    return {"videos": len(videos), "boxes_kept": kept_total, "boxes_dropped": dropped_total,
            "threshold": float(threshold), "detector": str(detector), "failures": failures}


# ----------------------------------------------------------------------------- reading


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_index(path: str) -> dict:
    where = os.path.join(path, INDEX_FILE)
    if not os.path.isfile(where):
        hint = ""
        if os.path.isdir(path) and any(n.lower().endswith((".pkl", ".json", ".npz")) for n in os.listdir(path)):
            hint = (" -- it looks like a folder of per-video detection files: convert them once with "
                    "data.detection_store.build_detection_store (score_teachers.py detections)")
        raise DetectionStoreError(f"{path}: not a detection store (no {INDEX_FILE}){hint}")
    try:
        with open(where, encoding="utf-8") as f:
            index = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DetectionStoreError(f"{where}: malformed detection-store index, not valid JSON ({e})") from None

    def bad(what: str):
        return DetectionStoreError(f"{where}: malformed detection-store index: {what}")

    if not isinstance(index, dict) or index.get("format") != STORE_FORMAT:
        raise bad(f"expected an object with \"format\": \"{STORE_FORMAT}\"")
    if index.get("version") != STORE_VERSION:
        raise bad(f"version {index.get('version')!r}, this code reads version {STORE_VERSION}")
    for name in ("detector", "source"):
        if not isinstance(index.get(name), str):
            raise bad(f"{name!r} should be a string")
    threshold = index.get("threshold")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
        raise bad(f"'threshold' should be a number in [0, 1], got {threshold!r}")
    num_rows = index.get("num_rows")
    if not _is_int(num_rows) or num_rows < 0:
        raise bad(f"'num_rows' should be a count >= 0, got {num_rows!r}")
    videos = index.get("videos")
    if not isinstance(videos, dict):
        raise bad("'videos' should map video keys to {\"rows\", \"frame_size\", \"num_frames\"}")
    previous_key, previous_end = None, 0
    for key, entry in videos.items():
        if not key or (previous_key is not None and key <= previous_key):
            raise bad(f"video key {key!r} is empty or out of order (keys are unique and sorted)")
        if not isinstance(entry, dict):
            raise bad(f"video {key!r} should be an object")
        rows, size, count = entry.get("rows"), entry.get("frame_size"), entry.get("num_frames")
        if not (isinstance(rows, list) and len(rows) == 2 and all(map(_is_int, rows))
                and rows[0] == previous_end and rows[0] <= rows[1] <= num_rows):
            raise bad(f"video {key!r} rows {rows!r} should be [start, end] with start = {previous_end} (the "
                      f"previous video's end) <= end <= num_rows = {num_rows}")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size)):
            raise bad(f"video {key!r} frame_size {size!r} should be [H, W], positive whole pixels")
        if count is not None and not (_is_int(count) and count > 0):
            raise bad(f"video {key!r} num_frames {count!r} should be a positive count or null")
        previous_key, previous_end = key, rows[1]
    if previous_end != num_rows:
        raise bad(f"the videos' rows end at {previous_end}, not at num_rows = {num_rows}")
    return index


class DetectionStore:
    """A built store, opened read-only (module docstring). `keys()`, `in`, `len()`,
    `frame_size(key)`, `missing(keys)`, `unusable(keys)` and `clip(...)`; `threshold`,
    `detector`, `source` come from the index. `strict=False` opens a store with bad rows and
    fails only their videos' lookups."""

    def __init__(self, path, *, strict: bool = True):
        self.path = os.fspath(path)
        self.strict = strict
        index = _read_index(self.path)
        self.detector, self.source = index["detector"], index["source"]
        self.threshold = float(index["threshold"])
        self.num_rows = index["num_rows"]
        self._keys = list(index["videos"])
        entries = list(index["videos"].values())
        self._rows = np.array([e["rows"] for e in entries], np.int64).reshape(-1, 2)
        self._sizes = np.array([e["frame_size"] for e in entries], np.int64).reshape(-1, 2)
        self._num_frames = np.array([-1 if e["num_frames"] is None else e["num_frames"] for e in entries], np.int64)
        self._position = {k: i for i, k in enumerate(self._keys)}
        self._arrays = self._open_arrays()
        self._files = {name: self._stat(name) for name in STORE_ARRAYS}
        self._bad: dict[int, str] = {}  # video position -> its first bad row, as `clip` reports it
        self._check_rows()

    # -- opening -------------------------------------------------------------------------------
    def _array_path(self, name: str) -> str:
        return os.path.join(self.path, f"{name}.npy")

    def _stat(self, name: str) -> tuple[int, int, int]:
        st = os.stat(self._array_path(name))
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _open_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for name, (dtype, row_shape) in STORE_ARRAYS.items():
            where = self._array_path(name)
            expected = (self.num_rows, *row_shape)
            try:
                array = np.load(where, mmap_mode="r", allow_pickle=False)
            except Exception as e:  # missing, truncated or not .npy: all mean the store is unusable
                raise DetectionStoreError(f"{where}: cannot memory-map this detection-store array ({e}): the file "
                                          f"is missing, truncated or not a .npy; rebuild the store") from None
            if array.dtype != np.dtype(dtype) or array.shape != expected or not array.flags.c_contiguous:
                raise DetectionStoreError(f"{where}: expected a C-ordered {np.dtype(dtype).name} array of shape "
                                          f"{expected} (num_rows from {INDEX_FILE}), got {array.dtype} {array.shape}")
            arrays[name] = array.view(np.ndarray)  # plain ndarray views: slices and lookups are not memmaps
        return arrays

    def _check_rows(self) -> None:
        """What the fused op and `clip` rely on, for every row, a chunk at a time: the first bad
        row of each video is noted in `_bad` (strict: the first one found is an error)."""
        ends = self._rows[:, 1]
        for lo in range(0, self.num_rows, _CHECK_CHUNK):
            hi = min(lo + _CHECK_CHUNK, self.num_rows)
            first = max(lo - 1, 0)  # one row before the chunk, for the ordering rule
            row_ids = np.arange(first, hi)
            video = np.searchsorted(ends, row_ids, side="right")
            boxes, scores = self._arrays["boxes"][first:hi], self._arrays["scores"][first:hi]
            kinds, frames = self._arrays["kinds"][first:hi], self._arrays["frames"][first:hi]
            x1, y1, x2, y2 = boxes.T
            h, w = self._sizes[video, 0], self._sizes[video, 1]
            num_frames = self._num_frames[video]
            earlier = np.zeros(len(row_ids), bool)
            earlier[1:] = (video[1:] == video[:-1]) & (frames[1:] < frames[:-1])
            rules = (
                (~np.isfinite(boxes).all(axis=1), "has a NaN/inf box"),
                ((x1 > x2) | (y1 > y2), "has a box with x1 > x2 or y1 > y2"),
                ((x1 < -COORD_TOLERANCE) | (y1 < -COORD_TOLERANCE) | (x2 > w + COORD_TOLERANCE)
                 | (y2 > h + COORD_TOLERANCE), "has a box outside its video's frame_size"),
                (~((scores >= self.threshold) & (scores <= 1)), f"has a score outside [{self.threshold:g}, 1]"),
                ((kinds != HAND) & (kinds != OBJECT), "has a kind other than 0 (hand) / 1 (object)"),
                ((frames < 0) | ((num_frames >= 0) & (frames >= num_frames)), "has a frame outside its video"),
                (earlier, "comes after a later frame of its video (frames must ascend)"),
            )
            for bad, rule in rules:
                hits = np.flatnonzero(bad)
                # the first hit of each video; a video already noted keeps the problem found first
                videos_hit, first_hit = np.unique(video[hits], return_index=True)
                for v, i in zip(videos_hit.tolist(), hits[first_hit].tolist()):
                    if v in self._bad:
                        continue
                    self._bad[v] = (
                        f"{self.path}: row {first + i} (video {self._keys[v]!r}, frame {int(frames[i])}, box "
                        f"[{', '.join(f'{float(x):g}' for x in boxes[i])}], score {float(scores[i]):g}) {rule}; the "
                        f"store was changed after it was built: rebuild it")
                    if self.strict:
                        raise DetectionStoreError(self._bad[v])

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_arrays"] = None  # re-opened by the worker: never pickle array contents
        del state["_position"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._position = {k: i for i, k in enumerate(self._keys)}

    def _lookup_arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            for name, checked in self._files.items():
                if self._stat(name) != checked:
                    raise DetectionStoreError(f"{self._array_path(name)}: changed since the store was opened and "
                                              f"checked; open the store again")
            self._arrays = self._open_arrays()
        return self._arrays

    # -- lookup --------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._position

    def missing(self, keys) -> list[str]:
        return [k for k in keys if k not in self._position]

    def unusable(self, keys) -> dict[str, str]:
        """Those of `keys` whose rows break the store's rules (strict=False) -> what `clip` raises."""
        return {k: self._bad[self._position[k]] for k in keys
                if k in self._position and self._position[k] in self._bad}

    def _video(self, key: str) -> int:
        try:
            return self._position[key]
        except KeyError:
            raise DetectionStoreError(f"{self.path}: no detections for video {key!r}") from None

    def frame_size(self, key: str) -> tuple[int, int]:
        """(H, W) of the frames the detector ran on."""
        h, w = self._sizes[self._video(key)].tolist()
        return h, w

    def clip(self, key: str, frame_indices: Sequence[int] | np.ndarray | torch.Tensor,
             decoded_size: tuple[int, int], score_threshold: float = 0.5) -> dict[str, torch.Tensor]:
        """The sample's "detections" for a clip of video `key`, as
        `teacher_targets.clip_detections` gives them: boxes with score >= `score_threshold` on
        each of the clip's absolute 0-based `frame_indices`, rescaled from the detector's
        frame_size to `decoded_size` (H, W); "frame" is the position t in the clip (a frame
        sampled twice gives its boxes twice); kinds 0 hand, 1 object.

        Raises DetectionStoreError (a ValueError: the dataset's bad-input path) for an unknown
        key, a video with bad rows (opened with strict=False), a threshold under the store's, a
        decoded size that is not a uniform rescale of the detector's frames, a clip frame outside
        the video's num_frames (or negative), or one holding more than MAX_BOXES_PER_FRAME rows."""
        if score_threshold < self.threshold:
            raise DetectionStoreError(f"{self.path}: holds only boxes with score >= {self.threshold:g}; cannot "
                                      f"select score >= {score_threshold:g} (rebuild it with a lower threshold)")
        video = self._video(key)
        if video in self._bad:
            raise DetectionStoreError(self._bad[video])
        h_det, w_det = self._sizes[video].tolist()
        h_dec, w_dec = (int(x) for x in decoded_size)
        reason = _size_mismatch((h_det, w_det), (h_dec, w_dec))
        if reason:
            raise DetectionStoreError(f"{self.path}: video {key!r}: detections made on {h_det}x{w_det} frames "
                                      f"do not fit its decoded {h_dec}x{w_dec} frames: {reason}")
        arrays = self._lookup_arrays()
        start, end = self._rows[video].tolist()
        indices = np.asarray(frame_indices).astype(np.int64).reshape(-1)
        num_frames = int(self._num_frames[video])
        outside = (indices < 0) | (indices >= num_frames) if num_frames >= 0 else indices < 0
        if outside.any():
            t = int(np.flatnonzero(outside)[0])
            made_for = (f"the {num_frames} frames (0-based 0..{num_frames - 1}) its detections were made for: the "
                        f"decoded video is not the one the detector ran on" if num_frames >= 0
                        else "0-based frame numbers")
            raise DetectionStoreError(f"{self.path}: video {key!r}: clip frame {int(indices[t])} (position {t}) is "
                                      f"outside {made_for}")
        # int32 like the stored frames, so the search does not convert the video's slice
        wanted = np.minimum(indices, _INT32_MAX).astype(np.int32)
        frames = arrays["frames"][start:end]
        first = np.searchsorted(frames, wanted, side="left")
        counts = np.searchsorted(frames, wanted, side="right") - first
        if len(counts) and counts.max() > MAX_BOXES_PER_FRAME:
            t = int(np.argmax(counts))
            raise DetectionStoreError(f"{self.path}: video {key!r}: frame {int(indices[t])} holds {int(counts[t])} "
                                      f"rows, more than the {MAX_BOXES_PER_FRAME} a frame may hold (a build refuses "
                                      f"such frames): rebuild the store")
        total = int(counts.sum())
        t = np.repeat(np.arange(len(wanted), dtype=np.int64), counts)
        rows = start + np.repeat(first, counts) + (np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts))
        scores = arrays["scores"][rows]
        keep = scores >= score_threshold
        rows = rows[keep]
        scale = np.array([w_dec / w_det, h_dec / h_det, w_dec / w_det, h_dec / h_det], np.float32)
        return {"frame": torch.from_numpy(t[keep]),
                "boxes": torch.from_numpy(arrays["boxes"][rows] * scale),
                "scores": torch.from_numpy(scores[keep]),
                "kinds": torch.from_numpy(arrays["kinds"][rows].astype(np.int64))}
