"""On-disk formats of the teachers' per-video outputs (SPEC section 1), with writers and
validating readers. The teachers run offline; training only reads these files.

Teacher scores (Ego-Score, Object-Score): one file per teacher per dataset, written with
`torch.save` as a dict
    {"teacher": "ego" | "object", "kind": "log_probs",
     "video_ids": [str, ...] (N >= 1, non-empty, unique), "scores": float32 tensor [N, C],
     ...free metadata in plain Python values (model, clips per video, source file)...}
with C = 2 for "ego" (index 1 = egocentric) and C = 1000 for "object" (ImageNet classes).
Row i holds log(mean over the video's clips/frames of softmax(teacher logits)), i.e. the
log of the clip-averaged softmax (paper Eqns 1 and 3). Log-probabilities rather than
probabilities because the KD loss applies softmax(stored / T): at T = 1 that gives back the
averaged probabilities exactly, and a temperature acts on the log scale as in usual KD.
The reader checks that every row is a log-distribution (logsumexp = 0).

Teacher embeddings (supp. Table S4 "append": each teacher's pooled feature concatenated to the
student's before the classifier): one file per teacher per dataset, written with `torch.save`
as a dict
    {"teacher": str (non-empty: "ego", "object", "interaction", ...), "kind": "embeddings",
     "video_ids": [str, ...] (N >= 1, non-empty, unique), "embeddings": float32 tensor [N, D],
     ...free metadata in plain Python values (model, layer, pooling, clips per video)...}
with D >= 1 and every value finite (the row rules below); row i is video i's embedding, keyed
like the score files (the dataset's sample "video_id": the EPIC segment id, the
Kinetics/SSv2/Charades video id). A dataset given several such files concatenates their rows
in the given order into the sample's "extra_features" [D_1 + D_2 + ...].

File rules and row rules. What makes a whole score or embedding file unusable is an error when
it is read, naming the file: not a torch.save dict of the keys above, another teacher or kind,
not a 2-D floating-point tensor of the expected width, video ids that are not one unique
non-empty string per row, or no usable row at all. The row rules say whether one row can be a
training target: every value finite as float32 (a float64 file is converted first, so a value
float32 cannot hold counts as inf), and for scores a log-distribution (|logsumexp| <= 1e-3).
By default (strict=True) a row breaking them is an error when the file is read too. With
strict=False the file loads, the table lists such rows in `bad_rows`, and looking one up raises
TeacherTargetError naming the file, the row and the video: what a dataset uses, so one bad row
fails only its video's samples (they are replaced in training and are error views in testing)
instead of the run.

Detections (hand-object detector, 100DOH layout): one pickle per video, `<video_id>.pkl` in a
detections folder, holding
    {"frame_size": (H, W) of the frames the detector ran on,
     "frames": {frame_number: {"hand_dets": K x 10 array | None, "obj_dets": K x 10 array | None}}}
with 0-based frame numbers of the decoded video (for JPEG frame folders: file number - 1), after
any rotation the decoder applies. Columns are [x1, y1, x2, y2, score, contact_state, offset,
0.1*dx, 0.1*dy, side] in pixels of `frame_size`; only columns 0-4 are used. Frames absent from
"frames" had no detections. Any other detector's output written in this layout is accepted.
Every row is checked where it is read or written, naming the file, frame and row: columns 0-4
finite (the others are not used), score in [0, 1], x1 <= x2 and y1 <= y2, and every coordinate
inside the frame, [0, W] x [0, H] with a 1 px tolerance (COORD_TOLERANCE). `load_detections`
unpickles through data.safe_pickle (numpy arrays and plain containers only, nothing in the
file is run) unless the caller passes trusted=True.

These per-video files are the detector's output, read once: data/detection_store.py converts
them (and the same layout as JSON or NPZ) into the one store per data set that training reads.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from data.safe_pickle import CorruptPickleError, UnsafePickleError, safe_load

TEACHER_NUM_CLASSES = {"ego": 2, "object": 1000}
DETECTION_COLUMNS = 10
COORD_TOLERANCE = 1.0  # px a box corner may lie beyond the frame's border (detectors round outward)
HAND, OBJECT = 0, 1  # the "kinds" codes of the sample's "detections"


class TeacherTargetError(ValueError):
    """A teacher-score, embedding or detection file is malformed, or lacks videos the dataset needs."""


# ----------------------------------------------------------------------------- scores


def average_clip_log_probs(clip_logits: torch.Tensor) -> torch.Tensor:
    """[..., num_clips, C] teacher logits -> [..., C] log of the clip-averaged softmax.

    Computed as logsumexp(log_softmax) - log(num_clips), which never takes the log of an
    underflowed probability.
    """
    log_probs = torch.log_softmax(clip_logits.float(), dim=-1)
    return torch.logsumexp(log_probs, dim=-2) - math.log(clip_logits.shape[-2])


def _check_rows_tensor(where: str, name: str, rows, width: int | None, expected: str, video_ids) -> torch.Tensor:
    """The file rules of a score or embedding tensor (`name`) and its ids; `width` is the
    required row length (None: any >= 1), `expected` says so in the message. Returns the rows
    as float32: a float64 value float32 cannot hold becomes inf there, so the row rules see it."""
    if not (isinstance(rows, torch.Tensor) and rows.layout == torch.strided and rows.is_floating_point()
            and rows.dim() == 2 and rows.shape[0] >= 1 and rows.shape[1] >= 1
            and (width is None or rows.shape[1] == width)):
        shape = f"{rows.dtype} {tuple(rows.shape)}" if isinstance(rows, torch.Tensor) else type(rows).__name__
        raise TeacherTargetError(f"{where}: {name} should be a float tensor {expected}, got {shape}")
    if not isinstance(video_ids, (list, tuple)) or len(video_ids) != rows.shape[0]:
        n = len(video_ids) if isinstance(video_ids, (list, tuple)) else type(video_ids).__name__
        raise TeacherTargetError(f"{where}: video_ids should be a list of {rows.shape[0]} ids "
                                 f"(one per {name[:-1]} row), got {n}")
    bad = [i for i, v in enumerate(video_ids) if not isinstance(v, str) or not v]
    if bad:
        shown = ", ".join(f"entry {i} = {video_ids[i]!r}" for i in bad[:20])
        raise TeacherTargetError(f"{where}: {len(bad)} video id(s) are not non-empty strings: {shown}")
    _check_unique(where, video_ids)
    return rows.detach().float().cpu().contiguous()


def _check_unique(where: str, video_ids: Sequence[str]) -> None:
    if len(set(video_ids)) != len(video_ids):
        seen, dup = set(), []
        for v in video_ids:
            if v in seen:
                dup.append(v)
            seen.add(v)
        raise TeacherTargetError(f"{where}: duplicate video ids {sorted(set(dup))[:20]}")


def _bad_rows(rows: torch.Tensor, log_probs: bool) -> dict[int, str]:
    """The row rules (module docstring) over float32 rows: row index -> why it cannot be a target."""
    nonfinite = (~torch.isfinite(rows)).any(dim=1)
    bad = {i: "contains NaN or inf (as float32)" for i in nonfinite.nonzero().flatten().tolist()}
    if log_probs:
        # in float64, a block of rows at a time: an object-score file of Kinetics is 240k x 1000
        total = torch.cat([torch.logsumexp(block.double(), dim=1) for block in rows.split(1 << 16)])
        for i in ((total.abs() > 1e-3) & ~nonfinite).nonzero().flatten().tolist():
            bad[i] = (f"is not log-probabilities (logsumexp = {float(total[i]):.4g}, not 0: store the log of "
                      f"the averaged softmax)")
    return bad


def _check_bad_rows(where: str, video_ids: Sequence[str], bad: dict[int, str], strict: bool) -> None:
    """Strict: any row breaking the row rules is an error; otherwise only a file with no usable row is."""
    if not bad or (not strict and len(bad) < len(video_ids)):
        return
    shown = "; ".join(f"row {i} (video {video_ids[i]!r}) {bad[i]}" for i in sorted(bad)[:5])
    raise TeacherTargetError(f"{where}: {len(bad)} of {len(video_ids)} row(s) are unusable as targets, e.g. {shown}")


def _check_scores(where: str, teacher, kind, video_ids, scores, num_classes: int | None,
                  strict: bool = True) -> tuple[torch.Tensor, dict[int, str]]:
    """A score file's contents checked: (the rows as float32, {row: why it breaks the row rules})."""
    if teacher not in TEACHER_NUM_CLASSES:
        raise TeacherTargetError(f"{where}: teacher should be one of {sorted(TEACHER_NUM_CLASSES)}, "
                                 f"got {teacher!r}")
    if kind != "log_probs":
        raise TeacherTargetError(f"{where}: kind should be 'log_probs', got {kind!r}")
    width = TEACHER_NUM_CLASSES[teacher] if num_classes is None else num_classes
    scores = _check_rows_tensor(where, "scores", scores, width,
                                f"[N, {width}] (N >= 1 videos) for the {teacher!r} teacher", video_ids)
    bad = _bad_rows(scores, log_probs=True)
    _check_bad_rows(where, video_ids, bad, strict)
    return scores, bad


_PLAIN_METADATA = (str, int, float, bool, type(None))


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return type(value) in _PLAIN_METADATA


def _check_metadata(where: str, metadata: Mapping) -> None:
    for key, value in metadata.items():
        if not _is_plain(value):
            raise TeacherTargetError(f"{where}: metadata {key!r} is a {type(value).__name__}; store plain "
                                     f"str/int/float/bool/None (or lists/dicts of them) so the file loads "
                                     f"with weights_only=True")


def _load_blob(where: str, what: str, keys: Sequence[str]) -> dict:
    """A torch.save dict read with weights_only=True, checked to hold `keys`."""
    if not os.path.isfile(where):
        raise TeacherTargetError(f"{where}: {what} file not found")
    try:
        blob = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad file; all mean "unreadable"
        raise TeacherTargetError(f"{where}: not a readable torch.save file ({e})") from None
    if not isinstance(blob, dict) or not set(keys) <= set(blob):
        raise TeacherTargetError(f"{where}: expected a dict with keys {', '.join(keys)}")
    return blob


class _RowTable:
    """Rows looked up by video id, for TeacherScores and TeacherEmbeddings. A row listed in
    `bad_rows` (a file read with strict=False) raises TeacherTargetError when looked up, naming
    the file, the row and the video: a ValueError, so a dataset fails only that sample."""
    path: str
    video_ids: list[str]
    bad_rows: dict[int, str]

    def __post_init__(self):
        self._row = {v: i for i, v in enumerate(self.video_ids)}

    def missing(self, video_ids: Iterable[str]) -> list[str]:
        return [v for v in video_ids if v not in self._row]

    def unusable(self, video_ids: Iterable[str]) -> dict[str, str]:
        """Those of `video_ids` whose rows break the row rules -> the message a lookup raises."""
        return {v: self._bad_message(v, self._row[v]) for v in video_ids
                if v in self._row and self._row[v] in self.bad_rows}

    def _bad_message(self, video_id: str, row: int) -> str:
        return f"{self.path}: row {row} (video {video_id!r}) {self.bad_rows[row]}"

    def _lookup(self, rows: torch.Tensor, video_id: str) -> torch.Tensor:
        row = self._row[video_id]
        if row in self.bad_rows:
            raise TeacherTargetError(self._bad_message(video_id, row))
        return rows[row]


def save_teacher_scores(path, teacher: str, video_ids: Sequence[str], scores: torch.Tensor,
                        num_classes: int | None = None, **metadata) -> None:
    """Validate (file and row rules) and write a teacher-score file (format in the module
    docstring), stored as float32; `metadata` (model name, clips per video, ...) is stored
    alongside and must be plain Python values (str, int, float, bool, None, lists/tuples/dicts
    of them): the reader loads with weights_only=True, which refuses anything else (numpy
    scalars, Paths)."""
    where = os.fspath(path)
    _check_metadata(where, metadata)
    video_ids = [str(v) for v in video_ids]
    scores, _ = _check_scores(where, teacher, "log_probs", video_ids, scores, num_classes)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({**metadata, "teacher": teacher, "kind": "log_probs", "video_ids": video_ids,
                "scores": scores}, path)


@dataclass
class TeacherScores(_RowTable):
    """A loaded score file: `scores[video_id]` is the video's row (module docstring)."""
    path: str
    teacher: str
    video_ids: list[str]
    scores: torch.Tensor  # float32 [N, C] log-probabilities
    metadata: dict = field(default_factory=dict)
    bad_rows: dict[int, str] = field(default_factory=dict)  # row -> why it is unusable (strict=False)

    def __getitem__(self, video_id: str) -> torch.Tensor:
        return self._lookup(self.scores, video_id)


def load_teacher_scores(path, teacher: str | None = None, num_classes: int | None = None, *,
                        strict: bool = True) -> TeacherScores:
    """Read and validate a score file; `teacher` checks which teacher wrote it, `num_classes`
    overrides the expected width (2 for ego, 1000 for object). strict=False: rows breaking the
    row rules fail their lookup instead of the load (module docstring)."""
    where = os.fspath(path)
    blob = _load_blob(where, "teacher-score", ("teacher", "kind", "video_ids", "scores"))
    if teacher is not None and blob["teacher"] != teacher:
        raise TeacherTargetError(f"{where}: holds {blob['teacher']!r} teacher scores, expected {teacher!r}")
    scores, bad = _check_scores(where, blob["teacher"], blob["kind"], blob["video_ids"], blob["scores"],
                                num_classes, strict)
    metadata = {k: v for k, v in blob.items() if k not in ("teacher", "kind", "video_ids", "scores")}
    return TeacherScores(where, blob["teacher"], list(blob["video_ids"]), scores, metadata, bad)


# ----------------------------------------------------------------------------- embeddings


def _check_embeddings(where: str, teacher, kind, video_ids, embeddings,
                      strict: bool = True) -> tuple[torch.Tensor, dict[int, str]]:
    """An embedding file's contents checked: (the rows as float32, {row: why it breaks the row rules})."""
    if not isinstance(teacher, str) or not teacher:
        raise TeacherTargetError(f"{where}: teacher should be a non-empty name (ego, object, interaction, ...), "
                                 f"got {teacher!r}")
    if kind != "embeddings":
        raise TeacherTargetError(f"{where}: kind should be 'embeddings', got {kind!r}")
    embeddings = _check_rows_tensor(where, "embeddings", embeddings, None, "[N, D] with N >= 1 videos and D >= 1",
                                    video_ids)
    bad = _bad_rows(embeddings, log_probs=False)
    _check_bad_rows(where, video_ids, bad, strict)
    return embeddings, bad


def save_teacher_embeddings(path, teacher: str, video_ids: Sequence[str], embeddings: torch.Tensor,
                            **metadata) -> None:
    """Validate (file and row rules) and write a teacher-embedding file (format in the module
    docstring), stored as float32; `metadata` must be plain Python values, as for
    save_teacher_scores."""
    where = os.fspath(path)
    _check_metadata(where, metadata)
    video_ids = list(video_ids)
    embeddings, _ = _check_embeddings(where, teacher, "embeddings", video_ids, embeddings)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({**metadata, "teacher": teacher, "kind": "embeddings", "video_ids": video_ids,
                "embeddings": embeddings}, path)


@dataclass
class TeacherEmbeddings(_RowTable):
    """A loaded embedding file: `embeddings[video_id]` is the video's row (module docstring)."""
    path: str
    teacher: str
    video_ids: list[str]
    embeddings: torch.Tensor  # float32 [N, D]
    metadata: dict = field(default_factory=dict)
    bad_rows: dict[int, str] = field(default_factory=dict)  # row -> why it is unusable (strict=False)

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def __getitem__(self, video_id: str) -> torch.Tensor:
        return self._lookup(self.embeddings, video_id)


def load_teacher_embeddings(path, teacher: str | None = None, dim: int | None = None, *,
                            strict: bool = True) -> TeacherEmbeddings:
    """Read (weights_only=True) and validate an embedding file; `teacher` and `dim` check which
    teacher wrote it and its width D. strict=False: rows breaking the row rules fail their
    lookup instead of the load (module docstring)."""
    where = os.fspath(path)
    blob = _load_blob(where, "teacher-embedding", ("teacher", "kind", "video_ids", "embeddings"))
    embeddings, bad = _check_embeddings(where, blob["teacher"], blob["kind"], blob["video_ids"], blob["embeddings"],
                                        strict)
    if teacher is not None and blob["teacher"] != teacher:
        raise TeacherTargetError(f"{where}: holds {blob['teacher']!r} teacher embeddings, expected {teacher!r}")
    if dim is not None and embeddings.shape[1] != dim:
        raise TeacherTargetError(f"{where}: embeddings are {embeddings.shape[1]}-dimensional, expected {dim}")
    metadata = {k: v for k, v in blob.items() if k not in ("teacher", "kind", "video_ids", "embeddings")}
    return TeacherEmbeddings(where, blob["teacher"], list(blob["video_ids"]), embeddings, metadata, bad)


# ----------------------------------------------------------------------------- detections


@dataclass(frozen=True)
class VideoDetections:
    path: str
    frame_size: tuple[int, int]  # (H, W) of the frames the detector ran on
    frames: dict[int, tuple[np.ndarray, np.ndarray]]  # frame -> (hand_dets, obj_dets), K x 10 each


def detections_path(folder, video_id: str) -> str:
    return os.path.join(folder, f"{video_id}.pkl")


def _numbers(values) -> str:
    return ", ".join(f"{float(v):g}" for v in values)


def _as_dets(where: str, frame, key: str, dets) -> np.ndarray:
    """One frame's `key` array as float32 K x 10 (K = 0 for None); rows are checked by `_check_rows`."""
    if dets is None:
        return np.zeros((0, DETECTION_COLUMNS), np.float32)
    try:
        array = np.asarray(dets, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise TeacherTargetError(f"{where}: frame {frame} {key} should be a K x {DETECTION_COLUMNS} array of "
                                 f"numbers or None ({e})") from None
    if array.ndim != 2 or array.shape[1] != DETECTION_COLUMNS:
        raise TeacherTargetError(f"{where}: frame {frame} {key} should be K x {DETECTION_COLUMNS} "
                                 f"([x1,y1,x2,y2,score,contact,offset,dx,dy,side]) or None, got "
                                 f"shape {array.shape}")
    return array


def _check_rows(where: str, frame_size: tuple[int, int], arrays: Sequence[tuple[int, str, np.ndarray]]) -> None:
    """The row rules of the module docstring over all of a video's (frame, key, array), checked
    at once; the first failing row is named by its frame, key and row."""
    used = np.concatenate([a[:, :5] for _, _, a in arrays]) if arrays else np.zeros((0, 5), np.float32)
    x1, y1, x2, y2, score = used.T
    h, w = frame_size
    rules = (
        (~np.isfinite(used).all(axis=1), "has NaN/inf in box or score columns (as float32)"),
        (~((score >= 0) & (score <= 1)), "has a score outside [0, 1]"),
        ((x1 > x2) | (y1 > y2), "is not a box with x1 <= x2 and y1 <= y2"),
        ((x1 < -COORD_TOLERANCE) | (y1 < -COORD_TOLERANCE) | (x2 > w + COORD_TOLERANCE) | (y2 > h + COORD_TOLERANCE),
         f"lies outside the frame: coordinates should be pixels of frame_size (H, W) = ({h}, {w}), within "
         f"[0, {w}] x [0, {h}] (+-{COORD_TOLERANCE:g} px)"),
    )
    for bad, rule in rules:
        hits = np.flatnonzero(bad)
        if len(hits):
            ends = np.cumsum([len(a) for _, _, a in arrays])
            owner = int(np.searchsorted(ends, hits[0], side="right"))
            frame, key, _ = arrays[owner]
            row = int(hits[0] - (ends[owner - 1] if owner else 0))
            more = f" ({len(hits)} such rows in the file)" if len(hits) > 1 else ""
            raise TeacherTargetError(f"{where}: frame {frame} {key} row {row} [x1, y1, x2, y2, score] = "
                                     f"[{_numbers(used[hits[0]])}] {rule}{more}")


def _check_frame_size(where: str, frame_size) -> tuple[int, int]:
    try:
        h, w = (float(x) for x in frame_size)
    except (TypeError, ValueError):
        raise TeacherTargetError(f"{where}: frame_size should be (H, W), got {frame_size!r}") from None
    if not (h.is_integer() and w.is_integer()) or h <= 0 or w <= 0:
        raise TeacherTargetError(f"{where}: frame_size should be positive whole pixels (H, W), got {frame_size!r}")
    return int(h), int(w)


def _check_detections(where: str, blob) -> VideoDetections:
    if not isinstance(blob, dict) or not {"frame_size", "frames"} <= set(blob):
        raise TeacherTargetError(f"{where}: expected a dict with keys 'frame_size' and 'frames'")
    frame_size = _check_frame_size(where, blob["frame_size"])
    if not isinstance(blob["frames"], Mapping):
        raise TeacherTargetError(f"{where}: 'frames' should map frame numbers to "
                                 f"{{'hand_dets', 'obj_dets'}}")
    frames, arrays = {}, []
    for frame, entry in blob["frames"].items():
        if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)) or frame < 0:
            raise TeacherTargetError(f"{where}: frame key {frame!r} should be a 0-based frame number")
        if not isinstance(entry, Mapping) or not {"hand_dets", "obj_dets"} <= set(entry):
            raise TeacherTargetError(f"{where}: frame {frame} should be a dict with 'hand_dets' "
                                     f"and 'obj_dets'")
        pair = tuple(_as_dets(where, frame, key, entry[key]) for key in ("hand_dets", "obj_dets"))
        frames[int(frame)] = pair
        arrays += [(frame, key, array) for key, array in zip(("hand_dets", "obj_dets"), pair) if len(array)]
    _check_rows(where, frame_size, arrays)
    return VideoDetections(where, frame_size, frames)


def save_detections(path, frame_size: tuple[int, int], frames: Mapping[int, Mapping]) -> None:
    """Validate and write one video's detections (layout in the module docstring)."""
    _check_detections(os.fspath(path), {"frame_size": frame_size, "frames": frames})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    blob = {"frame_size": tuple(int(x) for x in frame_size),
            "frames": {int(k): {"hand_dets": None if v["hand_dets"] is None else np.asarray(v["hand_dets"], np.float32),
                                "obj_dets": None if v["obj_dets"] is None else np.asarray(v["obj_dets"], np.float32)}
                       for k, v in frames.items()}}
    with open(path, "wb") as f:
        pickle.dump(blob, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_detections(path, *, trusted: bool = False) -> VideoDetections:
    """Read and validate one video's detection pickle. By default through the restricted
    unpickler (numpy arrays, dicts, lists, None; a file naming any other callable is refused
    before anything runs); `trusted=True` uses plain pickle, which runs whatever the file
    holds: only for files you made yourself."""
    where = os.fspath(path)
    if not os.path.isfile(path):
        raise TeacherTargetError(f"{where}: detection file not found")
    if trusted:
        try:
            with open(path, "rb") as f:
                blob = pickle.load(f)
        except Exception as e:  # pickle raises many types for a bad file; all mean "unreadable"
            raise TeacherTargetError(f"{where}: not a readable pickle ({e})") from None
    else:
        try:
            blob = safe_load(where, what="detection file")
        except UnsafePickleError as e:
            raise TeacherTargetError(f"{e}. Pass trusted=True only for a file you made yourself.") from None
        except CorruptPickleError as e:
            raise TeacherTargetError(str(e)) from None
    return _check_detections(where, blob)


def clip_detections(dets: VideoDetections, frame_indices: Sequence[int] | np.ndarray | torch.Tensor,
                    decoded_size: tuple[int, int], score_threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """The sample's "detections" for a clip: boxes with score >= `score_threshold` on each
    sampled frame, rescaled from the detector's `frame_size` to `decoded_size` (H, W).

    `frame_indices` are the clip's absolute 0-based decoded-frame indices; "frame" in the result
    is the position t in the clip, so a frame sampled twice contributes its boxes twice.
    Boxes are x1, y1, x2, y2 in decoded-frame pixels; kinds 0 = hand, 1 = object.
    """
    h_det, w_det = dets.frame_size
    h_dec, w_dec = decoded_size
    scale = np.array([w_dec / w_det, h_dec / h_det, w_dec / w_det, h_dec / h_det], np.float32)
    frame_list, boxes, scores, kinds = [], [], [], []
    for t, index in enumerate(np.asarray(frame_indices).tolist()):
        if index not in dets.frames:
            continue
        for kind, array in zip((HAND, OBJECT), dets.frames[index]):
            keep = array[array[:, 4] >= score_threshold]
            frame_list.append(np.full(len(keep), t, np.int64))
            boxes.append(keep[:, :4] * scale)
            scores.append(keep[:, 4])
            kinds.append(np.full(len(keep), kind, np.int64))
    if not frame_list:
        return {"frame": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4),
                "scores": torch.zeros(0), "kinds": torch.zeros(0, dtype=torch.int64)}
    return {"frame": torch.from_numpy(np.concatenate(frame_list)),
            "boxes": torch.from_numpy(np.concatenate(boxes).astype(np.float32)),
            "scores": torch.from_numpy(np.concatenate(scores).astype(np.float32)),
            "kinds": torch.from_numpy(np.concatenate(kinds))}
