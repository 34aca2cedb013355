r"""Fine-tuning on the egocentric data sets (SPEC sections 4 and 6, supp. S3-S5): Charades-Ego,
EPIC-Kitchens-55/100, SSv2, Kinetics (evaluation only), and the binary first-vs-third-person
Charades-Ego task that trains the Ego-Classifier M_ego.

One process (CPU or one GPU):
    python train_finetune.py --preset=charades_ego --train_annotations=CharadesEgo_v1_train.csv \
        --val_annotations=CharadesEgo_v1_test.csv --data_root=CharadesEgo_v1_rgb \
        --init=checkpoint --init_path=runs/pretrain/final.pyth
Eight GPUs:
    torchrun --nproc-per-node 8 train_finetune.py --preset=charades_ego ... (same flags)

A preset (PRESETS below) holds a data set's recipe; every setting still overrides it as
--name=value, typed against its default (plumbing.py); --help lists them all. The LR of a
preset belongs to the global batch `base_lr_batch` and is scaled linearly to the real one.

Initialisation (`init`):
    scratch     random weights
    checkpoint  `init_path`: this project's checkpoint (pre-training or a teacher such as M_ego),
                a PySlowFast / Ego-Exo `.pyth`, or a PySlowFast Caffe2 zoo `.pkl` (a pickle:
                only with --trust_pickle=true). The backbone must match the arch exactly
                (--allow_partial_load=true to load what matches); the auxiliary heads are
                dropped and the classifier is re-initialised for the new classes, unless
                --keep_classifier=true (evaluating a model on its own data set).
    imagenet    `init_path`: a torchvision 2-D ResNet state dict, inflated to 3-D
                (M_obj as initialisation, supp. Table S4: --arch=slow_8x8_r152 with
                torchvision's ResNet-152 weights).
Table S4 "append": --embeddings=a.pt,b.pt (data/teacher_targets.py embedding files) are
concatenated to the pooled feature before the classifier. Ego-Exo*: the `*_star` presets keep
the interaction head and its loss, with --detections= made on the target videos.

Every evaluation writes the data set's official submission file (out_dir/submission_epoch<E>
.txt | .pkl | .json) and scores it as evaluate.py does; `python evaluate.py --ensemble ...`
averages several. With no --train_annotations the script runs a small demo: it generates the
preset's data set in the official format under out_dir and fine-tunes on the CPU. Checkpoints
are plumbing.Checkpoints' (the newest keep_checkpoints, best.pyth by the main metric, final.pyth);
log.jsonl is docs/training_log.md. A killed run resumes from its newest readable checkpoint at
the batch where it stopped, and runs an evaluation that it was killed in.
"""
import json
import os
import sys
import time

import torch
from torch.utils.data import DataLoader

import evaluate as scorer
import plumbing
from data import synthetic, submissions
from data.annotations import check_class_count, kinetics_csv_class_names, read_class_names, read_ssv2_labels
from data.collate import collate_clips
from data.datasets import EPIC_CLASSES, CharadesEgoDataset, EpicKitchensDataset, KineticsDataset, SSv2Dataset
from data.sampler import ResumableSampler
from data.teacher_targets import load_teacher_embeddings
from data.transforms import ClipSampling
from engine import cosine_lr, evaluate, param_groups, train_one_epoch, unwrap
from losses.finetune import finetune_loss
from losses.interaction_map import batch_interaction_targets
from models import ARCHS, build_model, inflate_2d_resnet, load_checkpoint
from models.checkpoint import save_checkpoint

# ----------------------------------------------------------------------------- settings
preset = "charades_ego"  # a recipe of PRESETS below
dataset = "charades_ego"  # charades_ego | epic55 | epic100 | ssv2 | kinetics
arch = "slowfast_8x8_r50"  # models/resnet3d.py ARCHS
# Data: the official files (SPEC section 5).
train_annotations = None  # training file; None: the embedded demo
val_annotations = None  # file to evaluate on (labelled for metrics; a test file gets a submission only)
data_root = ""  # frame folders / videos (Charades-Ego, EPIC: data_root/<participant>/rgb_frames/...)
labels_file = None  # SSv2 labels json; Kinetics class names (official CSV)
num_classes = 400  # Kinetics: classes of the classifier (others: fixed by the data set)
views = "first"  # Charades-Ego training videos: first | third | both (joint first+third person, supp. S4)
val_views = "first"  # Charades-Ego videos to evaluate: first | third | both
task = "actions"  # Charades-Ego: actions | ego (binary first-vs-third person: M_ego)
no_pair = False  # Charades-Ego ego task: one view per recording (supp. Table S5)
train_fraction = 1.0  # EPIC: fraction of the training videos (supp. Fig. S1), nested per seed
fraction_seed = 0  # EPIC: which videos a fraction keeps
unseen_participants = None  # EPIC-100: unseen-participant ids file, for the official metrics
tail_verbs = None  # EPIC-100: tail-verb file
tail_nouns = None  # EPIC-100: tail-noun file
embeddings = ()  # teacher-embedding files appended to the pooled feature (Table S4 "append")
# Initialisation (see the docstring).
init = "scratch"  # scratch | checkpoint | imagenet
init_path = None  # the weights for init=checkpoint|imagenet
trust_pickle = False  # allow reading a Caffe2 .pkl (unpickling runs code: trusted files only)
allow_partial_load = False  # load the backbone tensors that match and leave the others
keep_classifier = False  # keep the checkpoint's classifier instead of a fresh one
# Ego-Exo*: the interaction head and loss kept on the target data.
detections = None  # detection store of the target videos (data/detection_store.py; score_teachers.py detections)
detection_threshold = 0.5  # keep boxes with score >= this
w_hand_map, w_object_map = 0.0, 0.0  # Interaction-Map loss weights (Ego-Exo*: 0.1 C-Ego, 3.0 EPIC)
hard_maps = False  # write 1.0 instead of the box confidence
drop_outside_boxes = False  # drop boxes outside the crop instead of clipping them to its border
dropout = 0.5  # before the classifier
# Clips; clip length and stride come from the arch, the temporal rule from the data set.
min_size, max_size, crop_size = 256, 320, 224  # training short-side jitter range and crop
test_size, num_clips, num_crops = 256, 10, 3  # test short side = crop, windows x crops per video
# Optimisation: SGD with Nesterov momentum, LR scaled linearly from base_lr at base_lr_batch.
epochs = 60  # training epochs (0: evaluate the initialisation only)
batch_size = 8  # clips per process
base_lr = 0.25  # LR at the global batch base_lr_batch
base_lr_batch = 64  # global batch that base_lr belongs to
lr_policy = "cosine"  # cosine | steps
lr_steps = (20, 25)  # steps policy: epochs where the LR is multiplied by lr_step_factor
lr_step_factor = 0.1  # steps policy: the factor
warmup_epochs = 0.0  # linear warm-up from warmup_start_factor x LR
warmup_start_factor = 0.1  # warm-up start, as a fraction of the peak LR
momentum = 0.9  # SGD momentum (Nesterov)
weight_decay = 1e-4  # not applied to BatchNorm
# System.
device = "cuda" if torch.cuda.is_available() else "cpu"  # cuda or cpu; torchrun: cuda:LOCAL_RANK
bf16 = True  # autocast to bfloat16 on CUDA
num_workers = 8  # DataLoader worker processes per process
out_dir = "runs/finetune"  # checkpoints, submissions, metrics.jsonl, log.txt, log.jsonl
resume = True  # continue from out_dir's newest readable checkpoint when there is one
allow_setting_changes = False  # resume although settings that shape the run changed (batch, world size, ...)
keep_checkpoints = 3  # newest checkpoints kept (best.pyth is kept besides)
log_every = 20  # steps between progress lines (and log.jsonl records)
progress = True  # a tqdm bar on rank 0
checkpoint_every = 1000  # steps; and at every epoch's end
eval_every = 10  # epochs; and after the last
seed = 0  # data order and augmentation

# The recipes (SPEC section 4, supp. S1/S3). LRs are per base_lr_batch clips (GPUs x 8).
_EPIC = dict(base_lr=0.01, base_lr_batch=64, lr_policy="steps", lr_steps=(20, 25), epochs=30, dropout=0.5)
PRESETS = {
    "charades_ego": dict(dataset="charades_ego", views="first", task="actions", base_lr=0.25, base_lr_batch=64,
                         lr_policy="cosine", epochs=60, dropout=0.5),
    "charades_ego_joint": dict(dataset="charades_ego", views="both", task="actions", base_lr=0.25,
                               base_lr_batch=64, lr_policy="cosine", epochs=60, dropout=0.5),
    "charades_ego_star": dict(dataset="charades_ego", views="first", task="actions", base_lr=0.25,
                              base_lr_batch=64, lr_policy="cosine", epochs=60, dropout=0.5,
                              w_hand_map=0.1, w_object_map=0.1),
    "ego_classifier": dict(dataset="charades_ego", views="both", val_views="both", task="ego", arch="slow_8x8_r50", base_lr=0.01,
                           base_lr_batch=64, lr_policy="cosine", epochs=100, dropout=0.5),
    "epic55": dict(dataset="epic55", **_EPIC),
    "epic55_star": dict(dataset="epic55", **_EPIC, w_hand_map=3.0, w_object_map=3.0),
    "epic100": dict(dataset="epic100", **{**_EPIC, "base_lr": 0.02, "base_lr_batch": 128}),
    "epic100_star": dict(dataset="epic100", **{**_EPIC, "base_lr": 0.02, "base_lr_batch": 128},
                         w_hand_map=3.0, w_object_map=3.0),
    "ssv2": dict(dataset="ssv2", **_EPIC, num_clips=1, num_crops=1),
    "kinetics": dict(dataset="kinetics", epochs=0, keep_classifier=True, num_clips=10, num_crops=3),
}
# The embedded demo: the preset's data set generated small, a few epochs on the CPU; two test
# windows of one crop unless the preset names its own views (SSv2: 1 x 1).
DEMO = dict(arch="slow_8x8_r50", min_size=64, max_size=80, crop_size=64, test_size=64, epochs=4, batch_size=4,
            base_lr=0.05, base_lr_batch=4, num_workers=2, log_every=2, checkpoint_every=4, eval_every=2,
            lr_steps=(3,))
# Settings that only some data sets read: any other data set refuses a value other than the default.
DATASET_SETTINGS = {
    "views": ("charades_ego",), "val_views": ("charades_ego",), "task": ("charades_ego",), "no_pair": ("charades_ego",),
    "train_fraction": ("epic55", "epic100"), "fraction_seed": ("epic55", "epic100"),
    "unseen_participants": ("epic100",), "tail_verbs": ("epic100",), "tail_nouns": ("epic100",),
    "labels_file": ("ssv2", "kinetics"), "num_classes": ("kinetics",),
}


def demo_settings(s: dict) -> dict | None:
    if s["train_annotations"] is not None:
        return None
    views = {} if {"num_clips", "num_crops"} & set(PRESETS[s["preset"]]) else dict(num_clips=2, num_crops=1)
    return {**DEMO, **views}


# ----------------------------------------------------------------------------- settings, processes
defaults = plumbing.default_settings(globals())
settings = plumbing.parse_settings(__file__, globals(), sys.argv[1:], presets=PRESETS, fallback=demo_settings)
globals().update(settings)
config = dict(settings)
plumbing.require_choices(__file__, settings, {
    "dataset": ("charades_ego", "epic55", "epic100", "ssv2", "kinetics"), "init": ("scratch", "checkpoint", "imagenet"),
    "views": ("first", "third", "both"), "val_views": ("first", "third", "both"), "task": ("actions", "ego"),
    "lr_policy": ("cosine", "steps"), "num_crops": (1, 3), "arch": tuple(ARCHS)})
for key, users in DATASET_SETTINGS.items():
    if dataset not in users and settings[key] != defaults[key]:
        sys.exit(f"train_finetune.py: --{key} is a setting of {' / '.join(users)}, not of {dataset}")
problems = [(init != "scratch") != (init_path is not None) and
            f"--init={init} needs an --init_path (and scratch none), got init_path={init_path!r}",
            no_pair and (views != "both" or task != "ego") and "--no_pair=true needs --task=ego --views=both",
            not 0 < train_fraction <= 1 and f"--train_fraction must be in (0, 1], got {train_fraction}"]
for problem in problems:
    if problem:
        sys.exit(f"train_finetune.py: {problem}")
procs = plumbing.init_processes(device)
config["world_size"] = procs.world_size  # a resumed run must keep it (see plumbing.restore_training_state)
device, is_main = procs.device, procs.is_main
autocast_dtype = torch.bfloat16 if bf16 and device.type == "cuda" else None
torch.manual_seed(seed + procs.rank)
plumbing.lock_out_dir(procs, out_dir, __file__)
log = plumbing.make_log(procs, out_dir)
checkpoints = plumbing.Checkpoints(out_dir, max(keep_checkpoints, 1), log)


# ----------------------------------------------------------------------------- demo data
def write_demo_data(root: str) -> dict:
    """The preset's data set, generated small in its official layout; returns the settings that
    point at it."""
    done = os.path.join(root, "settings.json")
    if is_main and not os.path.isfile(done):
        log(f"writing the demo {dataset} data set to {root}")
        if dataset == "charades_ego":
            d = synthetic.make_charades_ego(root, as_frames=True)
            paths = dict(train_annotations=d["csv"]["train"], val_annotations=d["csv"]["test"],
                         data_root=d["data_root"])
        elif dataset == "epic100":
            d = synthetic.make_epic100(root)
            paths = dict(train_annotations=d["csv"]["train"], val_annotations=d["csv"]["validation"], data_root=root,
                         unseen_participants=d["unseen"]["validation"], tail_verbs=d["tail"]["verbs"],
                         tail_nouns=d["tail"]["nouns"])
        elif dataset == "epic55":  # no labelled validation split is released: score on training videos
            d = synthetic.make_epic55(root)
            paths = dict(train_annotations=d["csv"]["train"], val_annotations=d["csv"]["train"], data_root=root)
        elif dataset == "ssv2":
            d = synthetic.make_ssv2(root)
            paths = dict(train_annotations=d["json"]["train"], val_annotations=d["json"]["validation"],
                         data_root=d["video_root"], labels_file=d["json"]["labels"])
        else:
            d = synthetic.make_kinetics(root, num_classes=4)
            paths = dict(train_annotations=d["lists"]["train"], val_annotations=d["lists"]["val"],
                         data_root=d["video_root"], num_classes=4)
        paths["detections"] = d.get("detection_store")  # used by the Ego-Exo* presets only
        with open(done, "w") as f:
            json.dump(paths, f)
    if procs.ddp:
        torch.distributed.barrier()
    with open(done) as f:
        paths = json.load(f)
    if not (w_hand_map or w_object_map):
        paths.pop("detections")
    return paths


if train_annotations is None:
    globals().update(write_demo_data(os.path.join(out_dir, "demo_data", dataset)))
    if dataset == "kinetics" and init == "scratch":
        epochs = 2  # Kinetics is evaluation-only with a checkpoint; the demo trains briefly first

# ----------------------------------------------------------------------------- data
use_maps = bool(w_hand_map or w_object_map)
if use_maps and detections is None:
    sys.exit(f"train_finetune.py: Ego-Exo* (--w_hand_map={w_hand_map} --w_object_map={w_object_map}) needs "
             f"--detections made on the target videos")
with torch.device("meta"):  # the arch's clip shape, without allocating weights
    spec = build_model(arch, None).input_spec
sampling = ClipSampling(clip_len=spec.num_frames, stride=spec.sampling_rate, min_size=min_size, max_size=max_size,
                        crop_size=crop_size, test_size=test_size, num_clips=num_clips, num_crops=num_crops)
embedding_files = [embeddings] if isinstance(embeddings, str) else list(embeddings)


def is_kinetics_csv(path: str) -> bool:
    with open(path, encoding="utf-8-sig") as f:
        return f.readline().startswith("label,")


def kinetics_class_names() -> list[str] | None:
    """Kinetics official CSVs: one class map for training and evaluation, from --labels_file or
    the training CSV's sorted names, checked against --num_classes (a misspelt class would
    otherwise shift every later index)."""
    if dataset != "kinetics" or not any(p and p.endswith(".csv") and is_kinetics_csv(p)
                                        for p in (train_annotations, val_annotations)):
        return None
    if labels_file is not None:
        names = read_class_names(labels_file)
        check_class_count(names, num_classes, labels_file)
        return names
    return kinetics_csv_class_names(train_annotations, num_classes=num_classes)


def make_dataset(annotations: str, training: bool):
    targets = dict(sampling=sampling, seed=seed, embeddings=embedding_files or None,
                   detections=detections if use_maps and training else None, detection_threshold=detection_threshold)
    if dataset == "charades_ego":
        return CharadesEgoDataset(training, csv_path=annotations, data_root=data_root,
                                  views=views if training else val_views, task=task,
                                  no_pair=no_pair and training, pair_seed=seed, **targets)
    if dataset in ("epic55", "epic100"):
        return EpicKitchensDataset(training, annotations=annotations, data_root=data_root,
                                   version=int(dataset[4:]), train_fraction=train_fraction if training else 1.0,
                                   fraction_seed=fraction_seed, **targets)
    if dataset == "ssv2":
        return SSv2Dataset(training, labels=labels_file, split=annotations, video_root=data_root, **targets)
    if is_kinetics_csv(annotations):
        return KineticsDataset(training, csv_path=annotations, video_root=data_root, class_names=kinetics_classes,
                               num_classes=num_classes, **targets)
    return KineticsDataset(training, list_path=annotations, video_root=data_root, num_classes=num_classes, **targets)


def class_counts() -> dict[str, int]:
    """The classifier's tasks for the data set."""
    if dataset == "charades_ego":
        return {"action": 157 if task == "actions" else 2}
    if dataset in ("epic55", "epic100"):
        return dict(zip(("verb", "noun"), EPIC_CLASSES[int(dataset[4:])]))
    if dataset == "ssv2":
        return {"action": len(read_ssv2_labels(labels_file))}
    if labels_file is not None:
        check_class_count(read_class_names(labels_file), num_classes, labels_file)
    return {"action": num_classes}


with plumbing.bad_input_stops(__file__):  # a bad file stops here with its one-line message, before training
    extra_dim = sum(load_teacher_embeddings(p).dim for p in embedding_files)
    kinetics_classes = kinetics_class_names()
    tasks = class_counts()
    multilabel = dataset == "charades_ego" and task == "actions"
    train_set = make_dataset(train_annotations, training=True) if epochs > 0 else None
    val_set = make_dataset(val_annotations, training=False) if val_annotations else None
loader_args = dict(num_workers=num_workers, collate_fn=collate_clips, pin_memory=device.type == "cuda")

# ----------------------------------------------------------------------------- model
with plumbing.bad_input_stops(__file__):
    model = build_model(arch, tasks, interaction_head=use_maps, dropout=dropout, extra_feature_dim=extra_dim)
    if init == "checkpoint":
        report = load_checkpoint(model, init_path, skip_aux_heads=not use_maps, trusted=trust_pickle,
                                 allow_partial=allow_partial_load)
        log(f"init: {init_path}: {len(report.loaded)} tensors loaded, {len(report.reinitialised)} heads re-initialised, "
            f"{len(report.missing)} model keys not in it, {len(report.unexpected)} of its keys unused")
        if not keep_classifier:
            model.replace_classifier(tasks, extra_feature_dim=extra_dim, dropout=dropout)
        elif any(f"head.projections.{t}.weight" not in report.loaded for t in tasks):
            sys.exit(f"train_finetune.py: --keep_classifier=true, but {init_path} has no classifier of the tasks {tasks} "
                     f"(re-initialised: {report.reinitialised})")
    elif init == "imagenet":
        from models.checkpoint import read_state_dict
        state, _ = read_state_dict(init_path)
        report = inflate_2d_resnet(model, state)
        if report.not_filled and not allow_partial_load:
            sys.exit(f"train_finetune.py: {init_path} left {len(report.not_filled)} backbone tensors of {arch} unfilled "
                     f"({report.not_filled[:5]}); wrong depth? (--allow_partial_load=true to go on)")
        log(f"init: inflated {len(report.inflated)} tensors from {init_path}")
model = model.to(device)
if device.type == "cuda":
    model = model.to(memory_format=torch.channels_last_3d)
global_batch = batch_size * procs.world_size
lr_peak = base_lr * global_batch / base_lr_batch
optimizer = torch.optim.SGD(param_groups(model, weight_decay), lr=lr_peak, momentum=momentum, nesterov=True)


def lr_at(epoch: float) -> float:
    if lr_policy == "cosine":
        return cosine_lr(epoch, base_lr=lr_peak, epochs=max(epochs, 1), warmup_epochs=warmup_epochs,
                         warmup_start_lr=lr_peak * warmup_start_factor)
    if lr_policy != "steps":
        sys.exit(f"train_finetune.py: --lr_policy must be cosine or steps, got {lr_policy!r}")
    lr = lr_peak * lr_step_factor ** sum(epoch >= s for s in lr_steps)
    if epoch < warmup_epochs:
        start = lr_peak * warmup_start_factor
        return start + (lr - start) * epoch / warmup_epochs
    return lr


start_epoch, start_step, pending_eval, resumed_from = checkpoints.resume(model, optimizer, config, allow_setting_changes) \
    if resume and train_set is not None else (0, 0, None, None)
ddp_model = torch.nn.parallel.DistributedDataParallel(
    model, device_ids=[device.index] if device.type == "cuda" else None) if procs.ddp else model
log(f"{arch} on {dataset} ({preset}): {sum(p.numel() for p in model.parameters()):,} parameters, tasks {tasks}, "
    f"{len(train_set) if train_set else 0} training samples, {procs.world_size} process(es) x {batch_size} clips, "
    f"peak LR {lr_peak:.4g} ({lr_policy}), init {init}" + (", Ego-Exo* maps on" if use_maps else ""))
log.record("start", config=config, resumed_from=resumed_from)


def loss_fn(outputs: dict, batch: dict) -> dict:
    labels = batch["label"]
    labels = {k: v.to(device, non_blocking=True) for k, v in labels.items()} if isinstance(labels, dict) \
        else labels.to(device, non_blocking=True)
    maps = None
    if "interaction" in outputs:
        maps = batch_interaction_targets(batch, outputs["interaction"], hard=hard_maps, drop_outside=drop_outside_boxes)
    return finetune_loss(outputs, labels, multilabel=multilabel, w_hand_map=w_hand_map, w_object_map=w_object_map,
                         interaction_targets=maps)


# ----------------------------------------------------------------------------- evaluation
def run_evaluation(epoch: int) -> None:
    """Score val_annotations, write the official submission, and its metrics (rank 0)."""
    if val_set is None:
        return
    shard = plumbing.video_shard(len(val_set.videos), val_set.num_views, procs)
    loader = DataLoader(val_set, batch_size=plumbing.eval_batch_size(batch_size, val_set.num_views),
                        sampler=shard, **loader_args)
    result = evaluate(model, loader, device=device, autocast_dtype=autocast_dtype, tasks=list(tasks),
                      aggregate="max" if multilabel else "mean", activation="sigmoid" if multilabel else "softmax",
                      extra_key="extra_features" if extra_dim else None)
    if result is None:
        return
    stem = os.path.join(out_dir, f"submission_epoch{epoch + 1}")
    ids, scores = result["video_ids"], result["scores"]
    if dataset == "charades_ego" and task == "actions":
        path = submissions.write_charades_submission(stem + ".txt", ids, scores["action"])
        metrics = scorer.score_charades_ego(path, val_annotations, views=val_views)
    elif dataset == "epic100":  # log of the view-averaged softmax: the scorer's softmax gives it back
        path = submissions.write_epic100_submission(stem + ".pkl", ids, scores["verb"].clamp_min(1e-30).log(),
                                                    scores["noun"].clamp_min(1e-30).log())
        metrics = scorer.score_epic100(path, val_annotations, unseen=unseen_participants, tail_verbs=tail_verbs,
                                       tail_nouns=tail_nouns) if labelled(result) else {}
    elif dataset == "epic55":
        path = submissions.write_epic55_submission(stem + ".json", ids, scores["verb"].clamp_min(1e-30).log(),
                                                   scores["noun"].clamp_min(1e-30).log())
        metrics = scorer.score_epic55(path, val_annotations) if labelled(result) else {}
    else:  # SSv2, Kinetics, and the binary ego task (against the Charades-Ego CSV): top-k
        path = submissions.write_topk_submission(stem + ".txt", ids, scores["action"])
        class_names = labels_file if dataset == "kinetics" else None
        if kinetics_classes is not None and labels_file is None:  # the training CSV's map, kept for re-scoring
            class_names = os.path.join(out_dir, "classnames.txt")
            with open(class_names, "w", encoding="utf-8") as f:
                f.write("\n".join(kinetics_classes) + "\n")
        metrics = scorer.score_topk(path, val_annotations, class_names=class_names,
                                    labels=labels_file if dataset == "ssv2" else None) if labelled(result) else {}
    metrics = {"epoch": epoch + 1, "scored_videos": len(ids), "scored_views": result["views"],
               "failed_views": len(result["errors"]), "submission": path, **metrics}
    metrics = scorer.json_ready(metrics)  # NaN (a class without positives) as null
    with open(os.path.join(out_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(metrics, allow_nan=False) + "\n")
    log(f"eval epoch {epoch + 1}: " + " ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in metrics.items() if not isinstance(v, (list, dict))))
    for video_id, view, message in result["errors"][:20]:
        log(f"  failed: {video_id} view {view}: {message}")
    numbers = {k: v for k, v in metrics.items() if isinstance(v, float) or v is None}
    log.record("eval", epoch=epoch, progress=float(epoch + 1), metrics=numbers, videos=len(ids), views=result["views"],
               failed_views=len(result["errors"]))
    if epoch >= 0:
        main = next((k for k in MAIN_METRICS if isinstance(metrics.get(k), float)), None)
        if checkpoints.evaluation_done(epoch, main, metrics.get(main) if main else None):
            log(f"best {main} so far: {checkpoints.best_path}")


# The metric that picks best.pyth: the first of these the evaluation reports.
MAIN_METRICS = ("mAP", "all_action_accuracy_at_1", "top1")


def labelled(result: dict) -> bool:
    """Whether the evaluated file has labels: a test file's are -1 (every one of them; the
    readers refuse a file that mixes the two)."""
    values = [v for label in result["labels"] for v in (label.values() if isinstance(label, dict) else [label])]
    return bool(values) and all(bool(torch.as_tensor(v).min() >= 0) for v in values)


# ----------------------------------------------------------------------------- loop
def evaluation_due(epoch: int) -> bool:
    return val_set is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs)


def save(epoch: int, step: int, steps_per_epoch: int) -> None:
    if is_main:
        checkpoints.save(model, optimizer, epoch=epoch, step=step, steps_per_epoch=steps_per_epoch, config=config,
                         eval_due=epoch if step == steps_per_epoch and evaluation_due(epoch) else None)


with plumbing.training_stops(__file__):
    if train_set is not None:
        sampler = ResumableSampler(len(train_set), shuffle=True, seed=seed, rank=procs.rank,
                                   world_size=procs.world_size)
        steps_per_epoch = len(sampler) // batch_size
        if steps_per_epoch < 1:
            sys.exit(f"train_finetune.py: {len(sampler)} training samples per process is less than one batch of "
                     f"{batch_size}")
        if pending_eval is not None:
            run_evaluation(pending_eval)
        for epoch in range(start_epoch, epochs):
            sampler.set_epoch(epoch, start=start_step * batch_size)
            train_set.set_epoch(epoch)
            loader = plumbing.epoch_loader(train_set, batch_size, sampler, **loader_args)
            tick = time.time()
            stats = train_one_epoch(
                ddp_model, loader, optimizer, loss_fn, epoch=epoch, start_step=start_step,
                steps_per_epoch=steps_per_epoch, lr_at=lr_at, device=device, autocast_dtype=autocast_dtype, log=log,
                log_every=log_every, checkpoint_every=checkpoint_every, save=lambda s: save(epoch, s, steps_per_epoch),
                extra_key="extra_features" if extra_dim else None, record=log.record, progress=progress and is_main)
            plumbing.summarise_epoch(procs, log, epoch, stats, time.time() - tick)
            start_step = 0
            if evaluation_due(epoch):
                run_evaluation(epoch)
    else:
        run_evaluation(-1)

    if is_main:
        save_checkpoint(os.path.join(out_dir, "final.pyth"), unwrap(model), config=config)
        log(f"saved {os.path.join(out_dir, 'final.pyth')}")
plumbing.close_processes(procs)
