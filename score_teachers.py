"""Runs the frozen egocentric teachers over a data set's samples (SPEC section 1, supp. S1) and
writes what pre-training and fine-tuning read, in the formats of data/teacher_targets.py:

    teacher=ego         Ego-Score of M_ego               -> out_dir/ego_scores.pt
    teacher=object      Object-Score of M_obj            -> out_dir/object_scores.pt
    teacher=embeddings  pooled features (Table S4 "append") -> out_dir/{ego,object}_embeddings.pt
    teacher=detections  the hand-object detector's files -> out_dir/detections/ (one store)

One process (CPU or one GPU):
    python score_teachers.py --teacher=ego --video_list=k400/train.csv --video_root=k400/videos \\
        --ego_checkpoint=runs/m_ego/final.pyth
Eight GPUs (each rank scores every 8th video, rank 0 merges):
    torchrun --nproc-per-node 8 score_teachers.py --teacher=object --video_list=... (same flags)
Embeddings of a fine-tuning data set (every sample of its training and validation files):
    python score_teachers.py --teacher=embeddings --dataset=epic100 --data_root=EPIC-KITCHENS \\
        --annotations=EPIC_100_train.csv,EPIC_100_validation.csv --ego_checkpoint=runs/m_ego/final.pyth

Every setting below is a plain Python default, overridable as --name=value (plumbing.py);
--help lists them.

Samples (`dataset`): the rows are keyed, and their frames chosen, exactly as the fine-tuning
data sets of data/datasets.py key and cut their samples, because the list is those classes'
own (each annotation file read by its evaluation dataset, as train_finetune.py builds it):
    kinetics      `video_list` (or `annotations`): PySlowFast lists (`path label` lines, paths
                  joined to `video_root` or `data_root`) or official Kinetics CSVs
                  (`label,youtube_id,...`); key = the file stem, so pre-training joins on it
    charades_ego  CharadesEgo_v1_{train,test}.csv, frames or videos under `data_root`; key = the
                  Charades id; `views` first | third | both (default both: a file then serves
                  both the first-person and the joint fine-tuning)
    epic55/100    the EPIC action CSVs; key = the segment id (uid / narration_id), frames only
                  those of the segment [start_frame, stop_frame] of its recording
    ssv2          the split JSONs with `labels_file`; key = the SSv2 id
`annotations` takes several files (train and validation, say), so one output file serves a
whole fine-tuning run; a sample listed in two files is scored once. Kinetics metadata and
partial files are those of a Kinetics-only run; the other data sets add "dataset" (and
"data_root", "segment") to them. Frames below are counted within the sample's segment: L is
its length (the whole video but for EPIC).

Ego-Score (paper Eqn 1): M_ego is train_finetune.py --preset=ego_classifier's final.pyth, a
video model whose one 2-way classifier has class 1 = egocentric. Each sample gives N =
`ego_clips` clips by the Kinetics test rule whatever the data set (window k of N: clip_len
frames spread over a clip_len * stride window starting at (L - window) * k / N, indices past the
segment repeating its last frame) -- view k of the sample's own evaluation dataset built with
this sampling --, each its centre crop at short side = crop = `ego_test_size` (by default the
test size M_ego was trained with), normalised as in training; the file stores log(mean over the
N clips of softmax(logits)).

Object-Score (paper Eqn 3): torchvision's ImageNet ResNet-152 on T = `object_frames` frames at
the centres of T equal parts of the segment, frame floor((2k + 1) * L / (2T)) for k = 0..T-1
after its first (a frame folder's files as data/datasets.py lists them, read with
data/video.read_frame_folder; a video decoded at those absolute indices).
Each frame is prepared as torchvision's ImageNet evaluation does: short side resized to
`object_resize` = 256 (bilinear, antialiased, on the uint8 frame), centre crop `object_crop` =
224, v / 255, then ImageNet mean
(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). The frames of `videos_per_batch` videos go
through the network as one batch, in inference mode, with bfloat16 autocast and channels_last
on a GPU; the file stores log(mean over the T frames of softmax(logits)), 1000 values. The
weights are torchvision's (`object_weights`, IMAGENET1K_V1 being the PyTorch-Hub model the paper
used) read from torchvision's cache, torch.hub.get_dir()/checkpoints/<the weights' file name>,
or any state dict given as --weights=PATH; nothing is downloaded here. With neither, the run
stops and says how to fetch them; --untrained_weights_ok=true (tests, the demo) runs with
random weights instead, and the file's metadata then says "untrained_weights": True.

Embeddings (supp. Table S4 "append"): for each teacher of `embedding_teachers`, the video's
pooled feature averaged over what that teacher sees of it: M_ego's pooled res5 "feature" over
its N clips, ResNet's 2048-d global-average-pooled feature over the T frames (both prepared as
above).

Detections (--dataset=kinetics only: the stores of the other data sets are per recording):
`detection_dir` holds one file per video, `<video_id>.pkl` (100DOH's pickles, read
by a restricted unpickler that rebuilds numpy arrays and plain containers only; plain pickle,
which runs whatever the file holds, only with --trust_pickle=true), `.json` or `.npz`, in the
layout of SPEC section 1. The files of the list's videos become one store, out_dir/detections,
through data/detection_store.build_detection_store, which checks every box against the video's
own frame count and decoded (H, W), both read here with data/video.py, and keeps the boxes with
score >= `detection_threshold`. Videos of the list without a file, and files of no listed
video, are counted in the log; an invalid file stops the build, naming the file, frame and row
(--skip_invalid_detections=true leaves such files out and lists them instead).

Resuming and processes: each rank scores its share of the videos (every world_size-th video of
the list, without those already done) and writes what it has scored to
out_dir/partial/<output>/ every `save_every` videos, each file written whole (a temporary file,
then a rename), so a killed run loses at most the videos since its last write. A rerun reads
those files, says how many videos it skips, and scores only the rest; with the same number of
processes its batches are the ones an uninterrupted run would have made, so the final file is
the same. A rerun with other settings (checkpoint, N, T, sizes, dtype) is refused. When every
rank has finished, rank 0 merges the partial files into the output, rows in the list's order.

Unreadable videos (undecodable, truncated, missing) are not scored: they are listed, one JSON
object per line {"video_id", "path", "error"}, in `<output>.failures.jsonl` beside the output,
and counted in the summary; the run goes on. A rerun does not try them again unless
--retry_failed=true.
"""
import json
import os
import sys
import time
import uuid
from urllib.parse import urlparse

import numpy as np
import torch
import torch.distributed as dist
import torchvision
import torchvision.transforms.functional as TF
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

import plumbing
from data.annotations import AnnotationError
from data.collate import collate_clips
from data.datasets import CharadesEgoDataset, ClipDataset, EpicKitchensDataset, KineticsDataset, SSv2Dataset, \
    VideoItem
from data.crop_normalize import clips_to_device
from data.teacher_targets import TeacherTargetError, average_clip_log_probs, save_teacher_embeddings, \
    save_teacher_scores
from data.transforms import ClipSampling
from data.video import VideoError, VideoReader, read_frame_folder
from models import load_model

# ----------------------------------------------------------------------------- settings
teacher = "ego"  # ego | object | embeddings | detections
dataset = "kinetics"  # kinetics | charades_ego | epic55 | epic100 | ssv2: whose samples are scored
# Samples: the data set's annotation files, read by its data/datasets.py class (as train_finetune.py does).
annotations = ()  # one or more annotation files, comma-separated (Kinetics: lists or CSVs, as video_list)
data_root = ""  # frame folders / videos, as train_finetune.py's --data_root (Kinetics: as video_root)
labels_file = None  # SSv2: something-something-v2-labels.json
views = "both"  # Charades-Ego: first | third | both
# Kinetics: a PySlowFast list (`path label`) or the official Kinetics CSV (`label,youtube_id,...`).
video_list = None  # the list to score (or --annotations)
video_root = ""  # folder the list's video paths are joined to (or --data_root)
class_names = None  # official CSV: class-names file; None = the CSV's sorted names (labels are only checked)
num_classes = None  # PySlowFast list: labels must be below this (None: any label >= 0; labels are not scored)
out_dir = "runs/teachers"  # outputs, partial results (out_dir/partial) and log.txt
# Ego-Score teacher M_ego.
ego_checkpoint = None  # train_finetune.py --preset=ego_classifier's out_dir/final.pyth
ego_clips = 2  # N: clips per video (paper Eqn 1)
ego_test_size = None  # short side = centre crop of the clips; None = the checkpoint's test_size, else 256
# Object-Score teacher M_obj.
object_arch = "resnet152"  # torchvision ResNet (resnet18 .. resnet152; the paper: resnet152)
object_weights = "IMAGENET1K_V1"  # torchvision weights of object_arch, read from torchvision's cache
weights = None  # a state-dict file of object_arch to use instead (read with weights_only=True)
untrained_weights_ok = False  # no weights found: run with random ones (tests, demo); the metadata says so
object_frames = 64  # T: frames sampled uniformly over the video (paper Eqn 3)
object_resize, object_crop = 256, 224  # short side resized to, then centre crop (ImageNet evaluation)
# Embeddings (supp. Table S4 "append").
embedding_teachers = ("ego", "object")  # whose pooled features teacher=embeddings writes
# Interaction detections (hand-object detector output, SPEC section 1).
detection_dir = None  # folder of per-video files <video_id>.pkl | .json | .npz
detection_threshold = 0.5  # keep boxes with score >= this
detector = "100DOH"  # detector name stored in the store's index
trust_pickle = False  # unpickle .pkl detection files with plain pickle (runs their code: trusted files only)
skip_invalid_detections = False  # build the store without invalid files (listed) instead of stopping
# System.
device = "cuda" if torch.cuda.is_available() else "cpu"  # cuda or cpu; torchrun: cuda:LOCAL_RANK
bf16 = True  # bfloat16 autocast (and channels_last) on CUDA
videos_per_batch = 8  # videos per forward pass (object: all their frames in one batch)
num_workers = 8  # DataLoader worker processes per process (decoding)
save_every = 64  # videos between partial writes, per process (rounded up to whole batches)
retry_failed = False  # a rerun scores again the videos that failed before
poll_seconds = 2.0  # rank 0: how often to look whether the other ranks have finished

# ----------------------------------------------------------------------------- settings, processes
defaults = plumbing.default_settings(globals())
settings = plumbing.parse_settings(__file__, globals(), sys.argv[1:])
globals().update(settings)
SCRIPT = "score_teachers.py"
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
DATASETS = ("kinetics", "charades_ego", "epic55", "epic100", "ssv2")
plumbing.require_choices(__file__, settings, {"teacher": ("ego", "object", "embeddings", "detections"),
                                              "dataset": DATASETS, "object_arch": RESNETS,
                                              "views": ("first", "third", "both")})
# Settings that only some data sets read: any other data set refuses a value other than the default.
DATASET_SETTINGS = {"video_list": ("kinetics",), "video_root": ("kinetics",), "class_names": ("kinetics",),
                    "num_classes": ("kinetics",), "labels_file": ("ssv2",), "views": ("charades_ego",)}
for _name, _users in DATASET_SETTINGS.items():
    if dataset not in _users and settings[_name] != defaults[_name]:
        sys.exit(f"{SCRIPT}: --{_name} is a setting of {' / '.join(_users)}, not of --dataset={dataset}")
if video_list is not None and annotations:
    sys.exit(f"{SCRIPT}: give the Kinetics list as --video_list or as --annotations, not both")
if video_root and data_root:
    sys.exit(f"{SCRIPT}: give the Kinetics video folder as --video_root or as --data_root, not both")
annotation_files = (video_list,) if video_list is not None else tuple(str(a) for a in annotations)
root_folder = video_root or data_root
if not annotation_files:
    sys.exit(f"{SCRIPT}: give --annotations (the data set's annotation files; for Kinetics also --video_list, a "
             f"PySlowFast list or the official Kinetics CSV) and --data_root; see {SCRIPT} --help")
if dataset == "ssv2" and labels_file is None:
    sys.exit(f"{SCRIPT}: --dataset=ssv2 needs --labels_file (something-something-v2-labels.json)")
if teacher == "detections" and dataset != "kinetics":
    sys.exit(f"{SCRIPT}: --teacher=detections builds a store of whole videos from a Kinetics list; the stores of "
             f"{dataset} are keyed by recording, which this script does not build (--dataset=kinetics only)")
listed_in = ", ".join(annotation_files)  # how the log and the metadata name the annotation files
for _name in ("videos_per_batch", "save_every", "ego_clips", "object_frames", "object_crop"):
    if settings[_name] < 1:
        sys.exit(f"{SCRIPT}: --{_name} must be >= 1, got {settings[_name]}")
if object_resize < object_crop:
    sys.exit(f"{SCRIPT}: --object_resize ({object_resize}) must be >= --object_crop ({object_crop})")
procs = plumbing.init_processes(device)
device, is_main = procs.device, procs.is_main
use_bf16 = bf16 and device.type == "cuda"
torch.backends.cudnn.benchmark = device.type == "cuda"  # the batches keep one shape: pick the fastest kernels once
log = plumbing.make_log(procs, out_dir)
# One id per launch, the same on every rank: it names this run's partial files, so a rerun can
# tell what earlier runs wrote from what this one is writing.
_run_id = [time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]]
if procs.ddp:
    dist.broadcast_object_list(_run_id, src=0)
RUN_ID = _run_id[0]


# ----------------------------------------------------------------------------- samples
def make_dataset(path: str, sampling: ClipSampling) -> ClipDataset:
    """The data set's evaluation dataset of one annotation file, built as train_finetune.py
    builds it, so its items (video ids, sources, segments) are the ones fine-tuning looks up."""
    if dataset == "charades_ego":
        return CharadesEgoDataset(False, csv_path=path, data_root=root_folder, views=views, sampling=sampling)
    if dataset in ("epic55", "epic100"):
        return EpicKitchensDataset(False, annotations=path, data_root=root_folder, version=int(dataset[4:]),
                                   sampling=sampling)
    if dataset == "ssv2":
        return SSv2Dataset(False, labels=labels_file, split=path, video_root=root_folder, sampling=sampling)
    with open(path, encoding="utf-8-sig") as f:
        official = f.readline().startswith("label,")
    if official:
        return KineticsDataset(False, csv_path=path, video_root=root_folder, class_names=class_names,
                               sampling=sampling)
    return KineticsDataset(False, list_path=path, video_root=root_folder, num_classes=num_classes, sampling=sampling)


def build_datasets(sampling: ClipSampling = ClipSampling()) -> list[ClipDataset]:
    """One dataset per annotation file, in the given order."""
    built = []
    for path in annotation_files:
        try:
            built.append(make_dataset(path, sampling))
        except (AnnotationError, ValueError, OSError) as e:
            message = str(e)
            sys.exit(f"{SCRIPT}: {message}" if path in message else f"{SCRIPT}: {path}: {message}")
    return built


def index_samples(built: list[ClipDataset]) -> tuple[list[VideoItem], list[tuple[int, int]]]:
    """(the samples of every file in order, each once; for each, (dataset, item index) where it
    comes from). A sample in two files (EPIC-55 train and test lists, say) is scored once; one
    id naming two different segments stops the run."""
    items, origin, first = [], [], {}
    for d, data in enumerate(built):
        for i, item in enumerate(data.videos):
            segment = (item.source, item.frame_name, item.first_frame, item.num_frames)
            if item.video_id in first:
                d0, i0 = origin[first[item.video_id]]
                before = items[first[item.video_id]]
                if (before.source, before.frame_name, before.first_frame, before.num_frames) != segment:
                    sys.exit(f"{SCRIPT}: sample {item.video_id!r} is {before.source} frames from {before.first_frame} "
                             f"({before.num_frames}) in {annotation_files[d0]} but {item.source} frames from "
                             f"{item.first_frame} ({item.num_frames}) in {annotation_files[d]}; one id, one segment")
                continue
            first[item.video_id] = len(items)
            items.append(item)
            origin.append((d, i))
    return items, origin


videos, video_origin = index_samples(build_datasets())
if not videos:
    sys.exit(f"{SCRIPT}: {listed_in} lists no videos")
video_ids = [v.video_id for v in videos]
my_videos = plumbing.video_shard(len(videos), 1, procs)  # video rank, rank + world, ...


def failure(index: int, error: Exception | str) -> dict:
    """What a dataset returns for a video it cannot read."""
    return {"index": index, "video_id": videos[index].video_id, "error": str(error)}


# ----------------------------------------------------------------------------- partial results
class PartialResults:
    """The rows scored so far for one output, as files out_dir/partial/<name>/<run>-rank<r>-<n>.pt
    holding {"video_ids": [...], "rows": {field: float tensor [V, ...]}, "failures": [[video_id,
    message], ...]}, each written to a temporary name and renamed, so a file is whole or absent.
    `settings.json` beside them holds the settings the rows depend on; other settings are refused.
    A rank's marker `<run>-rank<r>.done` tells rank 0 that rank r has written everything."""

    def __init__(self, name: str, signature: dict):
        self.name = name
        self.folder = os.path.join(out_dir, "partial", name)
        self.written = 0
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, "settings.json")
        if os.path.isfile(path):
            with open(path) as f:
                before = json.load(f)
            if before != signature:
                changed = sorted(k for k in set(before) | set(signature) if before.get(k) != signature.get(k))
                diffs = ", ".join(f"{k}: {before.get(k)!r} then, {signature.get(k)!r} now" for k in changed)
                sys.exit(f"{SCRIPT}: {self.folder} holds {name} rows made with other settings ({diffs}); "
                         f"use another --out_dir, or delete that folder to score every video again")
        elif is_main:
            _write_atomically(path, lambda tmp: _dump_json(tmp, signature))

    def chunk_files(self, earlier_only: bool = False) -> list[str]:
        """The partial files in the order they were written (run ids sort by time)."""
        names = sorted(f for f in os.listdir(self.folder) if f.endswith(".pt"))
        if earlier_only:
            names = [f for f in names if not f.startswith(RUN_ID)]
        return [os.path.join(self.folder, f) for f in names]

    @staticmethod
    def read(path: str, mmap: bool = False) -> dict:
        try:
            chunk = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as e:  # torch raises many types for a bad file; all mean "unreadable"
            raise SystemExit(f"{SCRIPT}: {path}: unreadable partial result ({e}); delete it to score its "
                             f"videos again") from None
        if not isinstance(chunk, dict) or not {"video_ids", "rows", "failures"} <= set(chunk):
            raise SystemExit(f"{SCRIPT}: {path}: not a partial result of this script; delete it")
        return chunk

    def done_before(self) -> tuple[set[str], dict[str, str]]:
        """(videos scored, videos failed and not scored) by earlier runs."""
        scored, failed = set(), {}
        for path in self.chunk_files(earlier_only=True):
            chunk = self.read(path, mmap=True)
            scored.update(chunk["video_ids"])
            failed.update(dict(chunk["failures"]))
        return scored, {v: m for v, m in failed.items() if v not in scored}

    def write(self, rows: dict[str, dict[str, torch.Tensor]], failures: dict[str, str]) -> None:
        ids = list(rows)
        fields = {field: torch.stack([rows[v][field] for v in ids]) for field in (rows[ids[0]] if ids else {})}
        blob = {"video_ids": ids, "rows": fields, "failures": [[v, m] for v, m in failures.items()]}
        path = os.path.join(self.folder, f"{RUN_ID}-rank{procs.rank:03d}-{self.written:06d}.pt")
        _write_atomically(path, lambda tmp: torch.save(blob, tmp))
        self.written += 1

    def mark_finished(self) -> None:
        path = os.path.join(self.folder, f"{RUN_ID}-rank{procs.rank:03d}.done")
        _write_atomically(path, lambda tmp: open(tmp, "w").close())

    def wait_for_ranks(self) -> None:
        """Rank 0: until every rank of this run has marked its share finished. (A file marker,
        not a collective: ranks may finish hours apart, past any process-group timeout; if a
        rank dies, torchrun ends the whole job.)"""
        markers = [os.path.join(self.folder, f"{RUN_ID}-rank{r:03d}.done") for r in range(procs.world_size)]
        while not all(os.path.isfile(m) for m in markers):
            time.sleep(poll_seconds)
        for marker in markers:
            os.remove(marker)

    def merge(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, str], int]:
        """(rows by video, failures of videos never scored, rows seen twice and dropped): every
        partial file in writing order; a video's first scored row counts."""
        rows, failed, duplicates = {}, {}, 0
        for path in self.chunk_files():
            chunk = self.read(path)
            for i, video_id in enumerate(chunk["video_ids"]):
                if video_id in rows:
                    duplicates += 1
                    continue
                rows[video_id] = {field: values[i] for field, values in chunk["rows"].items()}
            failed.update(dict(chunk["failures"]))
        return rows, {v: m for v, m in failed.items() if v not in rows}, duplicates


def _write_atomically(path: str, write) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    write(tmp)
    os.replace(tmp, path)


def _dump_json(path: str, value) -> None:
    with open(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)


def score_videos(name: str, signature: dict, samples: Dataset, collate, score_batch):
    """Score this rank's share of the videos that earlier runs left, writing partial results as
    it goes; on rank 0, wait for every rank and return the merged (rows by video, failures); on
    the other ranks return None.

    `samples[i]` is video i's input or `failure(i, error)`; `collate` turns a list of those into
    a batch, and `score_batch(batch)` into ({video_id: {field: tensor}}, {video_id: error})."""
    partial = PartialResults(name, signature)
    scored, failed = partial.done_before()
    skip = scored | (set() if retry_failed else set(failed))
    pending = [i for i in my_videos if video_ids[i] not in skip]
    left = sum(1 for v in video_ids if v not in skip)
    listed = set(video_ids)
    if scored or failed:
        log(f"{name}: {len(scored & listed)} of {len(videos)} videos already scored in {partial.folder} "
            f"and skipped; {len(set(failed) & listed)} failed before ("
            + ("tried again" if retry_failed else "skipped; --retry_failed=true tries them again")
            + f"); {left} to score")
    else:
        log(f"{name}: scoring {len(videos)} videos of {listed_in} on {procs.world_size} process(es)")
    bar = tqdm(total=len(pending), unit="video", desc=f"{name} (rank 0 of {procs.world_size})", disable=not is_main,
               dynamic_ncols=True, file=sys.stderr)
    rows, failures, new_rows, new_failures = {}, {}, 0, 0
    tick = time.perf_counter()
    if pending:
        loader = DataLoader(samples, batch_size=videos_per_batch, sampler=pending, collate_fn=collate,
                            num_workers=num_workers, pin_memory=device.type == "cuda")
        for batch in loader:
            batch_rows, batch_failures = score_batch(batch)
            rows.update(batch_rows)
            failures.update(batch_failures)
            bar.update(len(batch_rows) + len(batch_failures))
            if len(rows) + len(failures) >= save_every:
                partial.write(rows, failures)
                new_rows, new_failures = new_rows + len(rows), new_failures + len(failures)
                rows, failures = {}, {}
    if rows or failures:
        partial.write(rows, failures)
        new_rows, new_failures = new_rows + len(rows), new_failures + len(failures)
    bar.close()
    seconds = time.perf_counter() - tick
    log(f"{name}: rank 0 scored {new_rows} videos in {seconds:.1f} s ({new_rows / max(seconds, 1e-9):.2f} videos/s), "
        f"{new_failures} failed")
    partial.mark_finished()
    if not is_main:
        return None
    partial.wait_for_ranks()
    merged, failed, duplicates = partial.merge()
    if duplicates:
        log(f"{name}: {duplicates} rows of videos scored twice were dropped (two runs on one out_dir at once?)")
    return merged, failed


def _write_lines(path: str, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def write_failures(output: str, failed: dict[str, str]) -> None:
    """`<output>.failures.jsonl`: one {"video_id", "path", "error"} per line, in list order
    (an empty file when nothing failed, so no stale list survives a rerun)."""
    lines = [json.dumps({"video_id": v.video_id, "path": v.source, "error": failed[v.video_id]})
             for v in videos if v.video_id in failed]
    _write_atomically(output + ".failures.jsonl", lambda tmp: _write_lines(tmp, lines))


def summary(output: str, scored: int, failed: dict[str, str]) -> None:
    log(f"wrote {output}: {scored} of {len(videos)} videos scored, {len(failed)} failed "
        f"(listed in {output}.failures.jsonl)")
    for video_id, message in list(failed.items())[:20]:
        log(f"  failed: {video_id}: {message}")


def stored_rows(merged: dict, field: str) -> tuple[list[str], torch.Tensor]:
    """The scored videos in list order and their `field` rows stacked."""
    ids = [v for v in video_ids if v in merged]
    if not ids:
        sys.exit(f"{SCRIPT}: no video of {listed_in} could be scored; the failures are listed beside the output")
    return ids, torch.stack([merged[v][field] for v in ids]).float()


def autocast():
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)


# ----------------------------------------------------------------------------- M_ego
def load_ego_teacher():
    """M_ego on the device, its classifier's output key, and its clip sampling."""
    if ego_checkpoint is None:
        sys.exit(f"{SCRIPT}: --teacher={teacher} needs --ego_checkpoint: M_ego as trained by "
                 f"train_finetune.py --preset=ego_classifier (its out_dir/final.pyth)")
    try:
        model, ckpt = load_model(ego_checkpoint)
    except (OSError, ValueError, RuntimeError, TypeError) as e:
        sys.exit(f"{SCRIPT}: --ego_checkpoint: {e}")
    tasks = model.head.tasks
    if len(tasks) != 1 or list(tasks.values())[0] != 2 or model.head.extra_dim:
        sys.exit(f"{SCRIPT}: {ego_checkpoint} classifies {tasks}; M_ego has one 2-way classifier (class 1 = "
                 f"egocentric) on the video alone, as train_finetune.py --preset=ego_classifier trains it")
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    test_size = ego_test_size if ego_test_size is not None else int(config.get("test_size", 256))
    spec = model.input_spec
    sampling = ClipSampling(clip_len=spec.num_frames, stride=spec.sampling_rate, test_size=test_size,
                            num_clips=ego_clips, num_crops=1, temporal="kinetics", flip=False)
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last_3d)
    signature = {"checkpoint": os.path.abspath(ego_checkpoint), "arch": model.config["arch"],
                 "clips_per_video": ego_clips, "clip_len": spec.num_frames, "stride": spec.sampling_rate,
                 "test_size": test_size, "dtype": "bfloat16" if use_bf16 else "float32"}
    return model, list(tasks)[0], sampling, signature


class EgoClips(Dataset):
    """Video i -> its N test clips (window k of N, centre crop), or failure(i, error): view k of
    its own data set's evaluation dataset built with M_ego's sampling, so the clips lie within
    the sample's segment exactly as fine-tuning's loader places them."""

    def __init__(self, sampling: ClipSampling):
        self.sampling = sampling
        self.datasets = build_datasets(sampling)

    def __len__(self) -> int:
        return len(videos)

    def __getitem__(self, index: int) -> dict:
        d, i = video_origin[index]
        clips = [self.datasets[d][i * self.sampling.num_clips + k] for k in range(self.sampling.num_clips)]
        for clip in clips:
            if "error" in clip:
                return failure(index, clip["error"])
            clip["index"] = index
        return {"index": index, "video_id": videos[index].video_id, "clips": clips}


def collate_ego(items: list[dict]) -> dict:
    good = [item for item in items if "error" not in item]
    clips = [clip for item in good for clip in item["clips"]]
    return {"video_ids": [item["video_id"] for item in good], "clips": collate_clips(clips) if clips else None,
            "failures": {item["video_id"]: item["error"] for item in items if "error" in item}}


def ego_scorer(model, task: str, field: str):
    """score_batch for M_ego: "log_probs" [2] (log of the clip-averaged softmax) or "embedding"
    [D] (the pooled feature averaged over the clips)."""
    @torch.inference_mode()
    def score_batch(batch: dict):
        if batch["clips"] is None:
            return {}, batch["failures"]
        clips = batch["clips"]
        inputs = model.input_spec.pack(clips_to_device(clips, device, out_size=int(clips["crop_size"][0])))
        with autocast():
            outputs = model(inputs)
        num = len(batch["video_ids"])
        if field == "log_probs":
            values = average_clip_log_probs(outputs[task].float().cpu().view(num, ego_clips, -1))
        else:
            values = outputs["feature"].float().cpu().view(num, ego_clips, -1).mean(dim=1)
        return {v: {field: values[i].clone()} for i, v in enumerate(batch["video_ids"])}, batch["failures"]
    return score_batch


# ----------------------------------------------------------------------------- M_obj
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def cached_weights_path(arch: str, weights_name: str) -> tuple[str, str]:
    """(where torchvision keeps `arch`'s `weights_name` weights once downloaded, their URL)."""
    try:
        entry = torchvision.models.get_model_weights(arch)[weights_name]
    except KeyError:
        names = [w.name for w in torchvision.models.get_model_weights(arch)]
        sys.exit(f"{SCRIPT}: --object_weights={weights_name!r} is not a torchvision weight of {arch}; "
                 f"expected one of {', '.join(names)}")
    file_name = os.path.basename(urlparse(entry.url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", file_name), entry.url


def load_object_teacher():
    """The torchvision ResNet on the device and what its rows depend on (module docstring)."""
    torch.manual_seed(0)  # random weights (untrained_weights_ok) are then the same on every rank and rerun
    net = getattr(torchvision.models, object_arch)(weights=None)
    if weights is not None:
        path, described = weights, os.path.abspath(weights)
        if not os.path.isfile(path):
            sys.exit(f"{SCRIPT}: --weights={weights}: no such file")
    else:
        path, url = cached_weights_path(object_arch, object_weights)
        described = f"torchvision {object_weights} ({path})"
        if not os.path.isfile(path):
            if not untrained_weights_ok:
                sys.exit(
                    f"{SCRIPT}: the ImageNet weights of {object_arch} ({object_weights}) are not in torchvision's "
                    f"cache: {path} does not exist. Fetch them once, on a machine with internet access, with\n"
                    f"    python -c \"import torchvision; torchvision.models.{object_arch}(weights='{object_weights}')\"\n"
                    f"(it downloads {url} to that file; set TORCH_HOME to keep the cache elsewhere), or download "
                    f"that URL yourself and pass --weights=PATH. --untrained_weights_ok=true runs with random "
                    f"weights instead (tests and the demo only: the scores then mean nothing)")
            path = None
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a bad file; all mean "unreadable"
            sys.exit(f"{SCRIPT}: {path}: not a readable state-dict file ({e})")
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            sys.exit(f"{SCRIPT}: {path}: expected a state dict of tensors (torchvision's {object_arch} keys)")
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            sys.exit(f"{SCRIPT}: {path} does not fit torchvision's {object_arch}: {e}")
    else:
        described = "untrained (random initialisation, torch seed 0)"
        log(f"WARNING: {object_arch} runs with random weights (--untrained_weights_ok=true): the Object-Scores and "
            f"embeddings mean nothing; the output's metadata says so")
    net = net.to(device).eval()
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    signature = {"arch": object_arch, "weights": described,
                 "untrained_weights": path is None, "frames_per_video": object_frames,
                 "resize": object_resize, "crop": object_crop, "dtype": "bfloat16" if use_bf16 else "float32"}
    return net, signature


def uniform_frame_indices(num_frames: int, count: int) -> np.ndarray:
    """The centre frame of each of `count` equal segments: floor((2k + 1) * num_frames / (2 count))."""
    return (2 * np.arange(count, dtype=np.int64) + 1) * num_frames // (2 * count)


def read_segment_frames(item: VideoItem, count: int) -> np.ndarray:
    """uint8 [count, H, W, 3]: the item's segment frames uniform_frame_indices(segment length,
    count), counted from its first frame (indices past the video's end take its last frame)."""
    if item.frame_name is not None:
        paths = ClipDataset.frame_paths(item)  # the segment's files, as fine-tuning lists them
        return read_frame_folder([paths[i] for i in uniform_frame_indices(len(paths), count)])
    with VideoReader(item.source) as reader:
        total = reader.num_frames
        if item.first_frame >= total:
            raise VideoError(f"{item.source}: segment starts at frame {item.first_frame} but the video has {total} "
                             f"frames")
        length = total - item.first_frame if item.num_frames is None else item.num_frames
        return reader.decode(np.minimum(item.first_frame + uniform_frame_indices(length, count), total - 1))


class ObjectFrames(Dataset):
    """Video i -> its T frames resized and centre-cropped, uint8 [T, 3, crop, crop] (module
    docstring), or failure(i, error)."""

    def __len__(self) -> int:
        return len(videos)

    def __getitem__(self, index: int) -> dict:
        video = videos[index]
        try:
            frames = read_segment_frames(video, object_frames)
        except (VideoError, ValueError, OSError) as e:
            return failure(index, e)
        x = torch.from_numpy(frames).permute(0, 3, 1, 2)
        x = TF.resize(x, [object_resize], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        return {"index": index, "video_id": video.video_id, "frames": TF.center_crop(x, [object_crop]).contiguous()}


def collate_object(items: list[dict]) -> dict:
    good = [item for item in items if "error" not in item]
    return {"video_ids": [item["video_id"] for item in good],
            "frames": torch.cat([item["frames"] for item in good]) if good else None,
            "failures": {item["video_id"]: item["error"] for item in items if "error" in item}}


def resnet_pooled_features(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """torchvision ResNet's forward up to the classifier: the global-average-pooled feature."""
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return torch.flatten(net.avgpool(x), 1)


def object_scorer(net, field: str):
    """score_batch for M_obj: "log_probs" [1000] (log of the frame-averaged softmax) or
    "embedding" [D] (the pooled feature averaged over the frames)."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def score_batch(batch: dict):
        if batch["frames"] is None:
            return {}, batch["failures"]
        x = (batch["frames"].to(device, non_blocking=True).float() / 255 - mean) / std
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            features = resnet_pooled_features(net, x)
            logits = net.fc(features) if field == "log_probs" else None
        num = len(batch["video_ids"])
        if field == "log_probs":
            values = average_clip_log_probs(logits.float().cpu().view(num, object_frames, -1))
        else:
            values = features.float().cpu().view(num, object_frames, -1).mean(dim=1)
        return {v: {field: values[i].clone()} for i, v in enumerate(batch["video_ids"])}, batch["failures"]
    return score_batch


# ----------------------------------------------------------------------------- detections
class VideoProbe(Dataset):
    """Video i -> its frame count and decoded (H, W), or failure(i, error)."""

    def __len__(self) -> int:
        return len(videos)

    def __getitem__(self, index: int) -> dict:
        video = videos[index]
        try:
            with VideoReader(video.source) as reader:
                info = reader.info  # decodes frame 0: the size after any display rotation
        except (VideoError, ValueError, OSError) as e:
            return failure(index, e)
        return {"index": index, "video_id": video.video_id,
                "probe": torch.tensor([info.height, info.width, info.num_frames], dtype=torch.int64)}


def collate_probe(items: list[dict]) -> dict:
    return {"rows": {item["video_id"]: {"probe": item["probe"]} for item in items if "error" not in item},
            "failures": {item["video_id"]: item["error"] for item in items if "error" in item}}


DETECTION_EXTENSIONS = (".pkl", ".pickle", ".json", ".npz")


def detection_files() -> dict[str, str]:
    """{file stem: path} of the detector files in detection_dir."""
    if detection_dir is None:
        sys.exit(f"{SCRIPT}: --teacher=detections needs --detection_dir, the folder of per-video detector files "
                 f"<video_id>{' | '.join(DETECTION_EXTENSIONS)}")
    if not os.path.isdir(detection_dir):
        sys.exit(f"{SCRIPT}: --detection_dir={detection_dir}: no such folder")
    files: dict[str, str] = {}
    for name in sorted(os.listdir(detection_dir)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in DETECTION_EXTENSIONS:
            continue
        path = os.path.join(detection_dir, name)
        if stem in files:
            sys.exit(f"{SCRIPT}: {files[stem]} and {path} both give the detections of video {stem!r}; keep one")
        files[stem] = path
    return files


def build_detections() -> None:
    from data.detection_store import build_detection_store

    files = detection_files()
    result = score_videos("video_probe", {"probe": "decoded (H, W) and frame count"}, VideoProbe(), collate_probe,
                          lambda batch: (batch["rows"], batch["failures"]))
    if result is None:
        return
    probed, failed = result
    store_dir = os.path.join(out_dir, "detections")
    write_failures(store_dir, failed)
    listed = set(video_ids)
    without_file = [v for v in video_ids if v not in files]
    unlisted = sorted(stem for stem in files if stem not in listed)
    keys = [v for v in video_ids if v in files and v in probed]
    if without_file:
        log(f"detections: {len(without_file)} videos of {listed_in} have no file in {detection_dir}, e.g. "
            f"{without_file[:20]}")
    if unlisted:
        log(f"detections: {len(unlisted)} files of {detection_dir} name no video of {listed_in} and are left out, "
            f"e.g. {unlisted[:20]}")
    if not keys:
        sys.exit(f"{SCRIPT}: no video of {listed_in} has both a readable video and a file in {detection_dir}")
    sizes = {v: (int(probed[v]["probe"][0]), int(probed[v]["probe"][1])) for v in keys}
    counts = {v: int(probed[v]["probe"][2]) for v in keys}
    try:
        report = build_detection_store({v: files[v] for v in keys}, store_dir, video_sizes=sizes, num_frames=counts,
                                       threshold=detection_threshold, detector=detector, trusted=trust_pickle,
                                       source=os.path.abspath(detection_dir), skip_invalid=skip_invalid_detections,
                                       progress=True)
    except (TeacherTargetError, ValueError, OSError) as e:
        sys.exit(f"{SCRIPT}: {e}")
    invalid = store_dir + ".invalid_files.jsonl"
    _write_atomically(invalid, lambda tmp: _write_lines(tmp, [json.dumps(f) for f in report["failures"]]))
    log(f"wrote {store_dir}: detections of {report['videos']} videos, {report['boxes_kept']} boxes kept (score >= "
        f"{detection_threshold}), {report['boxes_dropped']} dropped, detector {detector}; {len(report['failures'])} "
        f"invalid files left out (listed in {invalid}); {len(failed)} videos could not be read (listed in "
        f"{store_dir}.failures.jsonl)")
    for entry in report["failures"][:20]:
        log(f"  invalid: {entry['key']}: {entry['error']}")
    for video_id, message in list(failed.items())[:20]:
        log(f"  failed: {video_id}: {message}")


# ----------------------------------------------------------------------------- main
def common_metadata(output: str, failed: dict) -> dict:
    meta = {"video_list": listed_in, "videos": len(videos), "failed_videos": len(failed),
            "failures_file": os.path.basename(output) + ".failures.jsonl"}
    if dataset != "kinetics":
        meta.update(data_root=os.path.abspath(root_folder),
                    segment="frames counted from the sample's first frame, over its segment (EPIC: the "
                            "annotation's start_frame .. stop_frame; others: the whole video)")
    return meta


def with_dataset(signature: dict) -> dict:
    """What the rows depend on, with the data set when it is not Kinetics (whose partial and
    output files stay those of the Kinetics-only script)."""
    return signature if dataset == "kinetics" else {**signature, "dataset": dataset}


# What each output holds: (file suffix and partial-results name, the scorer's row field, writer).
OUTPUTS = {"scores": ("log_probs", save_teacher_scores), "embeddings": ("embedding", save_teacher_embeddings)}


def write_output(what: str, kind: str, signature: dict, samples, collate, scorer, description: dict) -> None:
    """Score every sample (resumably, on every rank), then rank 0 writes `<kind>_<what>.pt`
    (what = scores | embeddings) and the failure list beside it."""
    field, save = OUTPUTS[what]
    signature = with_dataset(signature)
    output = os.path.join(out_dir, f"{kind}_{what}.pt")
    result = score_videos(f"{kind}_{what}", signature, samples, collate, scorer)
    if result is None:
        return
    merged, failed = result
    write_failures(output, failed)
    ids, rows = stored_rows(merged, field)
    _write_atomically(output, lambda tmp: save(
        tmp, kind, ids, rows, **signature, **description, **common_metadata(output, failed)))
    summary(output, len(ids), failed)


EGO_SCORES = {"model": "M_ego (Ego-Classifier)", "egocentric_class": 1,
              "sampling": "Kinetics test rule: window k of N, centre crop at short side = test_size",
              "aggregation": "log of the clip-averaged softmax (paper Eqn 1)"}
OBJECT_PREPARATION = {
    "frame_sampling": "frame floor((2k + 1) * num_frames / (2T)), k = 0..T-1",
    "preprocessing": "short side resized to `resize` (bilinear, antialiased, uint8), centre crop `crop`, "
                     "v / 255, ImageNet mean/std", "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
OBJECT_SCORES = {"model": "M_obj (torchvision ImageNet ResNet)", **OBJECT_PREPARATION,
                 "aggregation": "log of the frame-averaged softmax (paper Eqn 3)"}

if teacher == "ego":
    model, task, sampling, signature = load_ego_teacher()
    write_output("scores", "ego", signature, EgoClips(sampling), collate_ego, ego_scorer(model, task, "log_probs"), EGO_SCORES)
elif teacher == "object":
    net, signature = load_object_teacher()
    write_output("scores", "object", signature, ObjectFrames(), collate_object, object_scorer(net, "log_probs"), OBJECT_SCORES)
elif teacher == "embeddings":
    unknown = [t for t in embedding_teachers if t not in ("ego", "object")]
    if unknown or not embedding_teachers:
        sys.exit(f"{SCRIPT}: --embedding_teachers takes ego and/or object, got {embedding_teachers!r}")
    if "ego" in embedding_teachers:
        model, task, sampling, signature = load_ego_teacher()
        write_output("embeddings", "ego", signature, EgoClips(sampling), collate_ego, ego_scorer(model, task, "embedding"),
                         {"model": "M_ego (Ego-Classifier)", "layer": "pooled res5 feature (the head's input)",
                          "pooling": "mean over the video's N clips"})
        del model
    if "object" in embedding_teachers:
        net, signature = load_object_teacher()
        write_output("embeddings", "object", signature, ObjectFrames(), collate_object, object_scorer(net, "embedding"),
                         {"model": "M_obj (torchvision ImageNet ResNet)", **OBJECT_PREPARATION,
                          "layer": "global average pool (the fc layer's input)",
                          "pooling": "mean over the video's T frames"})
else:
    build_detections()
plumbing.close_processes(procs)
