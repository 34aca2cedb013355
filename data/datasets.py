"""torch Datasets for Kinetics-400, Charades-Ego, EPIC-Kitchens-55/100 and Something-Something
v2, read from their official annotation files, returning the data contract's sample dict.

All four share `ClipDataset`, which owns everything that is not about a dataset's files:
  * training: one random clip per video and epoch (random frames, scale jitter, crop, flip);
    testing: `num_clips x num_crops` views per video, dataset index = video * views + view.
    A DataLoader batch is loaded as a whole (`__getitems__`): the views of one video in it
    come from one decoding pass over the video (data.transforms.load_views), and a batch
    holding all of a video's views decodes that video once.
  * the sampling rule of the authors' release for each data set (`sampling_defaults`, filled
    into the ClipSampling fields a caller leaves as None; data/transforms.py has the rules):
      Kinetics       "kinetics" window rule, flips, 10 x 3 test views
      Charades-Ego   "frames" rule (stride-spaced frames at the folder's/video's rate), flips, 10 x 3
      EPIC-Kitchens  "frames" rule, flips, 10 x 3
      SSv2           "segments" rule (one frame from each of T segments), no flips, 1 x 1
  * labels, optional teacher scores and teacher embeddings (both looked up by the sample's
    video id) and detections (a detection store, data/detection_store.py, looked up by the
    recording and mapped onto the clip's frames: one slice of memory-mapped arrays, no file
    opened per sample), checked at construction: a video without them is an error listing
    such videos (up to 20, with the count), or is dropped if asked.
  * teacher files are checked when they are opened. What makes a whole file unusable (not
    the format, another teacher, the wrong row width, duplicate ids, a truncated store array,
    a malformed store index) is an error at construction naming the file. An entry unusable
    for its video alone -- a score row with NaN/inf or not log-probabilities, an embedding row
    with NaN/inf, a detection row with a NaN/inverted/out-of-frame box, a bad score, kind or
    frame -- is bad input of that video's samples (below), named by file, video and row;
    construction warns once listing such videos, and `skip_videos_without_targets` drops
    them with the missing ones. So is a detection lookup that cannot fit the decoded clip:
    frames of another size, or past the frames the detections were made for, or a frame
    holding more boxes than any detector gives (detection_store.MAX_BOXES_PER_FRAME).
    Nothing in a teacher file reaches collate or the fused Interaction-Map op unchecked.
  * bad input (missing/corrupt/truncated video or frame, video data that FFmpeg flags as
    damaged on the way to the clip's frames, an unusable teacher entry): in training the
    sample is replaced by another random one, up to `max_retries` times, and the messages
    travel in the sample's "failed" list (the training loop counts and reports them), one per
    failed load; in evaluation the sample is `{"index", "video_id", "view", "error"}`, never a
    blank clip.
  * `decode_on_device=True`: JPEG frame folders (Charades-Ego, EPIC-Kitchens) are not decoded
    in the worker; samples carry the files' bytes as "jpeg" for decoding on the training device
    (data/crop_normalize.py). Video files are decoded in the worker whatever the option.
Decoding and placement are the job of `data.transforms.load_clip` (training clips) and
`load_views` (test views). Besides the contract's fields a sample has "fps": the rate of the
frames it came from (a video's own, a frame folder's extraction rate), None where the data set
does not know it (EPIC frame folders).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from data.annotations import (CHARADES_FPS, CHARADES_NUM_CLASSES, EPIC55_NUM_NOUNS, EPIC55_NUM_VERBS,
                              EPIC100_NUM_NOUNS, EPIC100_NUM_VERBS, AnnotationError, CharadesEgoVideo,
                              kinetics_csv_class_names, read_charades_ego, read_class_names,
                              read_epic_segments, read_kinetics_csv, read_kinetics_list, read_ssv2_labels,
                              read_ssv2_split)
from data.detection_store import DetectionStore
from data.teacher_targets import TeacherTargetError, load_teacher_embeddings, load_teacher_scores
from data.transforms import (FRAMES_SAMPLING, KINETICS_SAMPLING, SEGMENTS_SAMPLING, ClipSampling, load_clip,
                             load_views)
from data.video import VideoError

# What counts as bad input while loading a sample: undecodable media, a segment outside its
# video (load_clip's ValueError names the file), a teacher entry unusable for the sample
# (TeacherTargetError, a ValueError naming the file, video and row), I/O failures.
BAD_INPUT = (VideoError, ValueError, OSError)


@dataclass(frozen=True)
class VideoItem:
    """One unit the dataset samples clips from: a whole video, or a segment of one (EPIC)."""
    video_id: str          # the sample's "video_id": Kinetics/SSv2/Charades video, EPIC segment id
    source: str            # video file, or JPEG frame folder
    label: object          # int | float32 multi-hot tensor | dict[str, int]
    recording_id: str = ""  # the whole recording (detections are per recording); "" = video_id
    frame_name: str | None = None  # frame folders: file name of 1-based frame n = frame_name.format(n)
    first_frame: int = 0   # 0-based first frame of the segment
    num_frames: int | None = None  # segment length; None = to the end of the video
    fps: float | None = None  # frame folders: their extraction rate (videos know their own)
    extra: dict = field(default_factory=dict)  # dataset-specific fields copied into the sample

    @property
    def recording(self) -> str:
        return self.recording_id or self.video_id


class ClipDataset(Dataset):
    """The shared base: sampling, teacher targets and bad-input handling (module docstring).

    Subclasses build `self.videos` (a list of VideoItem), set `sampling_defaults` (the data
    set's temporal rule, flips and test views, for the ClipSampling fields left as None; the
    filled-in result is `self.sampling`) and may override `clip_label` when a clip's target
    depends on which frames it covers.

    Teacher targets: `ego_scores` / `object_scores` are score files (sample keys "ego_score",
    "object_score"); `embeddings` is a list of teacher-embedding files whose rows are
    concatenated in the given order into the sample's "extra_features" float32 [D_total]
    (supp. Table S4 "append"); `detections` is a detection store (its folder, or an opened
    DetectionStore) keyed by recording id, holding boxes with score >= its threshold, so
    `detection_threshold` may not be lower than the store's. Files given by path are opened
    with strict=False (an unusable entry fails its video's samples, module docstring); an
    opened DetectionStore is used as it was opened.
    """

    sampling_defaults: dict = KINETICS_SAMPLING

    def __init__(self, videos: list[VideoItem], training: bool, sampling: ClipSampling = ClipSampling(), *,
                 ego_scores: str | None = None, object_scores: str | None = None,
                 embeddings: Sequence[str] | None = None,
                 detections: str | DetectionStore | None = None, detection_threshold: float = 0.5,
                 skip_videos_without_targets: bool = False, max_retries: int = 10, threads: int = 1,
                 decode_on_device: bool = False, seed: int = 0):
        self.training = training
        self.seed, self.epoch = seed, 0
        self.sampling = sampling.filled(**self.sampling_defaults)
        self.max_retries = max_retries
        self.threads = threads
        self.decode_on_device = decode_on_device
        self.detections = detections if isinstance(detections, DetectionStore) or detections is None \
            else DetectionStore(detections, strict=False)
        if self.detections is not None and detection_threshold < self.detections.threshold:
            raise ValueError(f"{type(self).__name__}: detection_threshold {detection_threshold:g} is below the "
                             f"threshold {self.detections.threshold:g} the store {self.detections.path} was built "
                             f"with (the boxes under it are not in the store)")
        self.detection_threshold = detection_threshold
        self.scores = {}
        for key, path, teacher in (("ego_score", ego_scores, "ego"), ("object_score", object_scores, "object")):
            if path is not None:
                self.scores[key] = load_teacher_scores(path, teacher=teacher, strict=False)
        if isinstance(embeddings, (str, os.PathLike)) or (embeddings is not None and len(embeddings) == 0):
            raise ValueError(f"{type(self).__name__}: embeddings should be a list of one or more teacher-embedding "
                             f"files (or None), got {embeddings!r}")
        self.embeddings = [load_teacher_embeddings(path, strict=False) for path in embeddings or ()]
        videos = self._check_targets(videos, skip_videos_without_targets)
        if not videos:
            raise ValueError(f"{type(self).__name__}: no videos to sample from")
        self.videos = videos

    def _check_targets(self, videos: list[VideoItem], skip: bool) -> list[VideoItem]:
        """Every video needs its scores, embeddings and detections: list the ones that lack
        them (an error unless `skip`), and warn about those whose entries are unusable (their
        samples fail when loaded; `skip` drops them too)."""
        lacking: dict[str, list[str]] = {}
        unusable: dict[str, dict[str, str]] = {}
        video_ids = dict.fromkeys(v.video_id for v in videos)
        recordings = dict.fromkeys(v.recording for v in videos)
        tables = [(f"{scores.path} ({key})", scores, video_ids) for key, scores in self.scores.items()]
        tables += [(f"{table.path} ({table.teacher} embeddings)", table, video_ids) for table in self.embeddings]
        if self.detections is not None:
            tables.append((f"{self.detections.path} (detection store, by recording)", self.detections, recordings))
        for where, table, keys in tables:
            missing = table.missing(keys)
            if missing:
                lacking[where] = missing
            bad = table.unusable(keys)
            if bad:
                unusable[where] = bad
        if lacking and not skip:
            lines = [f"  {where}: {len(ids)} missing: {ids[:20]}{' ...' if len(ids) > 20 else ''}"
                     for where, ids in lacking.items()]
            raise TeacherTargetError(f"{type(self).__name__}: teacher targets missing for some videos "
                                     f"(pass skip_videos_without_targets=True to drop them):\n" + "\n".join(lines))
        if unusable and not skip:
            lines = [f"  {where}: {len(bad)} unusable, e.g. {next(iter(bad.values()))}"
                     for where, bad in unusable.items()]
            warnings.warn(f"{type(self).__name__}: some videos have unusable teacher entries; their samples will fail "
                          f"to load (replaced in training, error views in testing; skip_videos_without_targets=True "
                          f"drops them):\n" + "\n".join(lines), stacklevel=3)
        if not skip:
            return videos
        drop = {i for ids in lacking.values() for i in ids} | {i for bad in unusable.values() for i in bad}
        return [v for v in videos if v.video_id not in drop and v.recording not in drop]

    # -- indexing ------------------------------------------------------------------------------
    @property
    def num_views(self) -> int:
        """Samples per video: 1 in training, num_clips x num_crops in testing."""
        return 1 if self.training else self.sampling.num_views

    def __len__(self) -> int:
        return len(self.videos) * self.num_views

    def __getitem__(self, index: int) -> dict:
        self._check_index(index)
        if self.training:
            return self._training_sample(index)
        video, view = divmod(index, self.num_views)
        return self._test_samples(video, [view])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The samples of a DataLoader batch, as [self[i] for i in indices] gives them (torch's
        DataLoader calls this instead when it batches). In testing, the batch's views of one
        video come from one decoding pass (load_views): a batch that holds all of a video's
        views -- plumbing.video_shard lists them in a row, so a batch size that is a multiple
        of num_views does -- decodes the video once."""
        indices = [int(i) for i in indices]
        for index in indices:
            self._check_index(index)
        if self.training:
            return [self._training_sample(index) for index in indices]
        positions: dict[int, list[int]] = {}  # video -> where its views sit in the batch
        for position, index in enumerate(indices):
            positions.setdefault(index // self.num_views, []).append(position)
        samples: list[dict | None] = [None] * len(indices)
        for video, where in positions.items():
            views = [indices[p] % self.num_views for p in where]
            for position, sample in zip(where, self._test_samples(video, views)):
                samples[position] = sample
        return samples

    def _check_index(self, index: int) -> None:
        if not 0 <= index < len(self):
            raise IndexError(f"{type(self).__name__} index {index} out of range [0, {len(self)})")

    def set_epoch(self, epoch: int) -> None:
        """Training augmentation is drawn from (seed, epoch, index) alone -- not from whichever
        worker loads the sample -- so a resumed run sees exactly the clips it would have seen.
        Call before building the epoch's DataLoader (its workers copy the dataset)."""
        self.epoch = epoch

    def _training_sample(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        failed = []
        for _ in range(self.max_retries + 1):
            try:
                item = self.videos[index]
                targets = self._targets(item)
                sample = self._finish(item, self._read_clip(item, rng), None, targets)
            except BAD_INPUT as e:
                failed.append(f"{self.videos[index].video_id}: {e}")
                index = int(rng.integers(len(self.videos)))
                continue
            sample["index"] = index
            sample["failed"] = failed
            return sample
        raise RuntimeError(f"{type(self).__name__}: {len(failed)} training samples in a row failed to load "
                           f"(bad data or wrong paths?):\n" + "\n".join(failed))

    def _test_samples(self, video: int, views: list[int]) -> list[dict]:
        """The test views `views` of one video, decoded together; a view that cannot be loaded
        is {"index", "video_id", "view", "error"}. When the joint decoding fails, the views are
        loaded one by one, so each fails or loads exactly as on its own (a damaged stretch fails
        the views whose frames need it, not the whole video)."""
        item = self.videos[video]
        try:  # the per-video teacher rows first: an unusable one fails the views before any decoding
            targets = self._targets(item)
        except BAD_INPUT as e:
            return [self._error_view(video, view, e) for view in views]
        try:
            clips = self._read_views(item, views)
        except BAD_INPUT as e:
            if len(views) == 1:
                return [self._error_view(video, views[0], e)]
            return [sample for view in views for sample in self._test_samples(video, [view])]
        samples = []
        for view, clip in zip(views, clips):
            try:
                sample = self._finish(item, clip, view, targets)
            except BAD_INPUT as e:
                samples.append(self._error_view(video, view, e))
                continue
            sample["index"] = video * self.num_views + view
            samples.append(sample)
        return samples

    def _error_view(self, video: int, view: int, error: Exception) -> dict:
        return {"index": video * self.num_views + view, "video_id": self.videos[video].video_id, "view": view,
                "error": str(error)}

    # -- loading -------------------------------------------------------------------------------
    def _targets(self, item: VideoItem) -> dict:
        """The video's teacher rows (scores, embeddings); raises for an unusable one."""
        targets = {key: scores[item.video_id] for key, scores in self.scores.items()}
        if self.embeddings:
            targets["extra_features"] = torch.cat([table[item.video_id] for table in self.embeddings])
        return targets

    def _read_clip(self, item: VideoItem, rng: np.random.Generator) -> dict:
        """A training clip of the item (load_clip), in the recording's frame numbers."""
        if item.frame_name is None:
            return load_clip(item.source, self.sampling, rng, first_frame=item.first_frame,
                             num_frames=item.num_frames, threads=self.threads)
        return self._in_recording_frames(item, load_clip(self.frame_paths(item), self.sampling, rng,
                                                         decode_on_device=self.decode_on_device))

    def _read_views(self, item: VideoItem, views: list[int]) -> list[dict]:
        """Test views of the item from one decoding pass (load_views), in the recording's frame numbers."""
        if item.frame_name is None:
            return load_views(item.source, self.sampling, views, first_frame=item.first_frame,
                              num_frames=item.num_frames, threads=self.threads)
        clips = load_views(self.frame_paths(item), self.sampling, views, decode_on_device=self.decode_on_device)
        return [self._in_recording_frames(item, clip) for clip in clips]

    @staticmethod
    def _in_recording_frames(item: VideoItem, clip: dict) -> dict:
        # Only the segment's files are listed, so the loader saw a segment-long source; its
        # indices are shifted back to the recording's frame numbers.
        clip["frame_indices"] = clip["frame_indices"] + item.first_frame
        clip["fps"] = item.fps
        return clip

    def _finish(self, item: VideoItem, sample: dict, view: int | None, targets: dict) -> dict:
        """A decoded clip -> the contract's sample: label, ids, teacher targets, detections."""
        sample["label"] = self.clip_label(item, sample["frame_indices"], sample["fps"])
        sample["video_id"] = item.video_id
        sample["view"] = 0 if view is None else view
        sample.update(item.extra)
        sample.update(targets)
        if self.detections is not None:
            sample["detections"] = self.detections.clip(item.recording, sample["frame_indices"],
                                                        sample["transform"].frame_size, self.detection_threshold)
        return sample

    @staticmethod
    def frame_paths(item: VideoItem) -> list[str]:
        """The segment's frame files; a whole-video segment counts the folder's images."""
        if item.num_frames is not None:
            count = item.num_frames
        else:
            try:
                count = sum(1 for f in os.listdir(item.source) if f.lower().endswith((".jpg", ".jpeg", ".png")))
            except OSError as e:
                raise VideoError(f"{item.source}: cannot list frame folder: {e}") from e
            count -= item.first_frame
            if count < 1:
                raise VideoError(f"{item.source}: frame folder has no images after frame {item.first_frame}")
        return [os.path.join(item.source, item.frame_name.format(item.first_frame + k + 1)) for k in range(count)]

    def clip_label(self, item: VideoItem, frame_indices: torch.Tensor, fps: float | None):
        """The sample's "label"; by default the video's own label as a tensor. `fps` is the
        frame rate of the clip's frames (the sample's "fps"), for labels given in seconds."""
        return _label_tensor(item.label)


def _label_tensor(label):
    if isinstance(label, dict):
        return {k: torch.tensor(v, dtype=torch.int64) for k, v in label.items()}
    if isinstance(label, torch.Tensor):
        return label.clone()
    return torch.tensor(label, dtype=torch.int64)


# ----------------------------------------------------------------------------- Kinetics


class KineticsDataset(ClipDataset):
    """Kinetics-400 from a PySlowFast list (`list_path`: `path label` lines) or the official
    CSV (`csv_path`, videos under `video_root` as `read_kinetics_csv` describes). For the CSV,
    `class_names` is a list, a class-names file, or None for the sorted names of `csv_path`
    itself (pass the training CSV's names when reading the validation CSV).

    Sampling (KINETICS_SAMPLING, for the ClipSampling fields left as None): the "kinetics"
    window rule (clip_len indices by linspace over a clip_len * stride window, optionally
    rescaled by target_fps), flips in training, 10 x 3 test views."""

    sampling_defaults = KINETICS_SAMPLING

    def __init__(self, training: bool, *, list_path: str | None = None, csv_path: str | None = None,
                 video_root: str = "", class_names: Sequence[str] | str | None = None,
                 num_classes: int = 400, sampling: ClipSampling = ClipSampling(), **targets):
        if (list_path is None) == (csv_path is None):
            raise ValueError("KineticsDataset: give exactly one of list_path (PySlowFast list) or csv_path "
                             "(official CSV)")
        if list_path is not None:
            clips = read_kinetics_list(list_path, video_root, num_classes)
        else:
            if class_names is None:
                class_names = kinetics_csv_class_names(csv_path)
            elif isinstance(class_names, (str, os.PathLike)):
                class_names = read_class_names(class_names)
            clips = read_kinetics_csv(csv_path, video_root, class_names)
            num_classes = len(class_names)
        self.num_classes = num_classes
        videos = [VideoItem(video_id=c.video_id, source=c.path, label=c.label) for c in clips]
        super().__init__(videos, training, sampling, **targets)


# ----------------------------------------------------------------------------- Charades-Ego


class CharadesEgoDataset(ClipDataset):
    """Charades-Ego from `CharadesEgo_v1_{train,test}.csv`.

    Frames come from `data_root/<id>/<id>-000001.jpg` (24 fps) when that folder exists, else
    from the video `data_root/<id>.mp4`.
    views: "first" (ids ending in EGO), "third", or "both".
    task "actions": multi-hot over 157 classes; training target = union of the classes
      active anywhere in the clip's time span [first frame / fps, last frame / fps]; test
      target = union over the whole video.
    task "ego": binary first-vs-third-person label (1 = egocentric), to train the
      Ego-Classifier. `no_pair` (needs views="both") keeps one view, first or third person,
      of every recording that has both, chosen by `pair_seed`, so no script is seen from both
      sides (supp. Table S5).
    Sampling (FRAMES_SAMPLING, for the ClipSampling fields left as None): the release's
      "frames" rule, clip_len frames `stride` apart at the source's own rate (24 fps folders,
      or the video's rate), from a random integer start in training and at round(v * gap) for
      test window v; flips in training; 10 x 3 test views.
    """

    sampling_defaults = FRAMES_SAMPLING

    def __init__(self, training: bool, *, csv_path: str, data_root: str, views: str = "first",
                 task: str = "actions", no_pair: bool = False, pair_seed: int = 0,
                 sampling: ClipSampling = ClipSampling(), **targets):
        if views not in ("first", "third", "both"):
            raise ValueError(f"CharadesEgoDataset: views should be first, third or both, got {views!r}")
        if task not in ("actions", "ego"):
            raise ValueError(f"CharadesEgoDataset: task should be actions or ego, got {task!r}")
        if no_pair and views != "both":
            raise ValueError("CharadesEgoDataset: no_pair picks one of the two views of a pair, so it needs "
                             "views='both'")
        self.task = task
        self.num_classes = CHARADES_NUM_CLASSES if task == "actions" else 2
        records = [r for r in read_charades_ego(csv_path)
                   if views == "both" or r.first_person == (views == "first")]
        if no_pair:
            records = select_one_view_per_pair(records, pair_seed)
        self.records = {r.video_id: r for r in records}
        videos = []
        for r in records:
            folder = os.path.join(data_root, r.video_id)
            is_folder = os.path.isdir(folder)
            label = int(r.first_person) if task == "ego" else charades_multi_hot(r.actions)
            videos.append(VideoItem(video_id=r.video_id, source=folder if is_folder else folder + ".mp4",
                                    label=label, frame_name=f"{r.video_id}-{{:06d}}.jpg" if is_folder else None,
                                    fps=CHARADES_FPS if is_folder else None))
        super().__init__(videos, training, sampling, **targets)

    def clip_label(self, item: VideoItem, frame_indices: torch.Tensor, fps: float | None):
        if self.task == "ego" or not self.training:
            return _label_tensor(item.label)
        t0, t1 = float(frame_indices.min()) / fps, float(frame_indices.max()) / fps
        return charades_multi_hot(self.records[item.video_id].actions, t0, t1)


def charades_multi_hot(actions, t0: float = -math.inf, t1: float = math.inf) -> torch.Tensor:
    """float32 [157]: 1 for each class with an action overlapping [t0, t1] (all, by default)."""
    target = torch.zeros(CHARADES_NUM_CLASSES, dtype=torch.float32)
    for action in actions:
        if action.overlaps(t0, t1):
            target[action.label] = 1.0
    return target


def select_one_view_per_pair(records: list[CharadesEgoVideo], seed: int) -> list[CharadesEgoVideo]:
    """The no-pair selection: of each recording present in both views keep one, first or third
    person with equal odds, drawn from `seed` over the sorted pair ids (so the choice depends on
    the file's content, not its row order); recordings with one view keep it."""
    by_pair: dict[str, list[CharadesEgoVideo]] = {}
    for r in records:
        by_pair.setdefault(r.pair_id, []).append(r)
    rng = np.random.default_rng(seed)
    keep = set()
    for pair_id in sorted(by_pair):
        group = sorted(by_pair[pair_id], key=lambda r: r.first_person)
        if len(group) == 2 and group[0].first_person != group[1].first_person:
            keep.add(group[int(rng.integers(2))].video_id)
        else:
            keep.update(r.video_id for r in group)
    return [r for r in records if r.video_id in keep]


# ----------------------------------------------------------------------------- EPIC-Kitchens


EPIC_CLASSES = {100: (EPIC100_NUM_VERBS, EPIC100_NUM_NOUNS), 55: (EPIC55_NUM_VERBS, EPIC55_NUM_NOUNS)}


class EpicKitchensDataset(ClipDataset):
    """EPIC-Kitchens-100 (`version=100`) or -55 (`version=55`) action segments.

    Each segment is one item; clips are sampled inside [start_frame, stop_frame] (1-based
    inclusive in the files; 0-based decoded indices start_frame-1 .. stop_frame-1). Frames come
    from `data_root/<frames_dir>/<frame_name>` when that folder exists, else from
    `data_root/<video_file>`; the templates take participant_id and video_id. Labels are
    {"verb", "noun"} (-1 for the unlabelled test files); samples also carry "participant_id".
    The sample's video_id is the segment id (narration_id / uid); detections are per
    recording (store key = video_id, frame numbers of the whole recording).

    train_fraction < 1 keeps that fraction of the *videos* (rounded up), drawn by
    `fraction_seed`: one random order of the sorted video ids, of which the first
    ceil(fraction * n) are kept, so smaller fractions are subsets of larger ones (supp. Fig. S1).

    Sampling (FRAMES_SAMPLING, for the ClipSampling fields left as None): the release's
    "frames" rule inside the segment, clip_len frames `stride` apart at the recording's own
    rate (50/60 fps frames are not rescaled); flips in training; 10 x 3 test views.
    """

    sampling_defaults = FRAMES_SAMPLING

    def __init__(self, training: bool, *, annotations: str, data_root: str, version: int = 100,
                 train_fraction: float = 1.0, fraction_seed: int = 0,
                 frames_dir: str = "{participant_id}/rgb_frames/{video_id}", frame_name: str = "frame_{:010d}.jpg",
                 video_file: str = "{participant_id}/videos/{video_id}.MP4",
                 sampling: ClipSampling = ClipSampling(), **targets):
        if version not in EPIC_CLASSES:
            raise ValueError(f"EpicKitchensDataset: version should be 100 or 55, got {version!r}")
        if not 0 < train_fraction <= 1:
            raise ValueError(f"EpicKitchensDataset: train_fraction should be in (0, 1], got {train_fraction}")
        self.num_verbs, self.num_nouns = EPIC_CLASSES[version]
        segments = read_epic_segments(annotations, self.num_verbs, self.num_nouns)
        if not segments:
            raise AnnotationError(f"{annotations}: no segments")
        if train_fraction < 1:
            kept = set(fraction_of_videos([s.video_id for s in segments], train_fraction, fraction_seed))
            segments = [s for s in segments if s.video_id in kept]
        self.segments = segments
        videos, folders = [], {}
        for s in segments:
            names = {"participant_id": s.participant_id, "video_id": s.video_id}
            if s.video_id not in folders:
                folder = os.path.join(data_root, frames_dir.format(**names))
                folders[s.video_id] = folder if os.path.isdir(folder) else None
            folder = folders[s.video_id]
            videos.append(VideoItem(
                video_id=s.segment_id, recording_id=s.video_id,
                source=folder if folder else os.path.join(data_root, video_file.format(**names)),
                label={"verb": s.verb_class, "noun": s.noun_class}, frame_name=frame_name if folder else None,
                first_frame=s.start_frame - 1, num_frames=s.stop_frame - s.start_frame + 1,
                extra={"participant_id": s.participant_id}))
        super().__init__(videos, training, sampling, **targets)


def fraction_of_videos(video_ids: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The first ceil(fraction * n) of the distinct `video_ids` in a seeded random order of
    their sorted list: deterministic, and nested across fractions for one seed."""
    unique = sorted(set(video_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    return [unique[i] for i in order[:math.ceil(fraction * len(unique))]]


# ----------------------------------------------------------------------------- SSv2


class SSv2Dataset(ClipDataset):
    """Something-Something v2: `labels` (something-something-v2-labels.json), `split` (the
    train/validation/test json) and webm videos `video_root/<id>.webm`; 174 classes (-1 for
    the test list). A training split must give every video its template (`require_labels`).

    Sampling (SEGMENTS_SAMPLING, for the ClipSampling fields left as None): PySlowFast's
    "segments" rule, one frame from each of clip_len equal segments of the video (clip_len is
    the model's input T; the stride is unused), random within each in training, the middle at
    test; never flipped, since labels name directions ("left to right"); 1 x 1 test view as
    the release's config (pass num_clips=10, num_crops=3 for 10 x 3).
    """

    sampling_defaults = SEGMENTS_SAMPLING

    def __init__(self, training: bool, *, labels: str, split: str, video_root: str,
                 sampling: ClipSampling = ClipSampling(), **targets):
        label_map = read_ssv2_labels(labels)
        self.num_classes = len(label_map)
        videos = [VideoItem(video_id=v.video_id, source=os.path.join(video_root, f"{v.video_id}.webm"),
                            label=v.label)
                  for v in read_ssv2_split(split, label_map, require_labels=training)]
        super().__init__(videos, training, sampling, **targets)
