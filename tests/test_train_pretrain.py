"""train_pretrain.py as a user runs it: a process killed part-way resumes from its last
checkpoint and ends bit-for-bit where an uninterrupted run ends (same weights), and bad
command-line arguments are refused with the list of settings."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from data.synthetic import make_kinetics
from models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return make_kinetics(str(tmp_path_factory.mktemp("k")), num_classes=2, videos_per_class=4,
                         val_videos_per_class=1, size=(40, 48), num_frames=24)


def command(kinetics, out_dir):
    settings = dict(preset="interaction_map", train_list=kinetics["lists"]["train"], video_root=kinetics["video_root"], num_classes=2,
                    detections=kinetics["detection_store"], min_size=32, max_size=40, crop_size=32, epochs=3,
                    batch_size=2, base_lr=0.05, base_lr_batch=2, warmup_epochs=1.0, num_workers=1,
                    log_every=1, checkpoint_every=1, keep_checkpoints=1, arch="slow_8x8_r50", device="cpu",
                    out_dir=str(out_dir))
    return [sys.executable, os.path.join(ROOT, "train_pretrain.py")] + [f"--{k}={v}" for k, v in settings.items()]


def run(cmd):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_killed_run_resumes_to_the_same_weights(kinetics, tmp_path):
    straight = tmp_path / "straight"
    log = run(command(kinetics, straight))
    assert "epoch 2 done" in log and "resumed" not in log

    killed = tmp_path / "killed"
    proc = subprocess.Popen(command(kinetics, killed), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not list(killed.glob("checkpoint_epoch*.pyth")):  # the first checkpoint: after step 1 of epoch 0
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    time.sleep(1.0)  # let it get further, possibly into a checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final.pyth").exists()
    changed = subprocess.run(command(kinetics, killed) + ["--batch_size=1"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
    assert changed.returncode != 0 and "batch_size: 2 -> 1" in changed.stderr, changed.stderr
    resumed_log = run(command(kinetics, killed))
    assert "resumed from" in resumed_log

    a = torch.load(straight / "final.pyth", weights_only=True)["model_state"]
    b = torch.load(killed / "final.pyth", weights_only=True)["model_state"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_bad_argument_names_the_settings(kinetics, tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "train_pretrain.py"), "--epoch=3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "bad argument '--epoch=3'" in done.stderr and "epochs" in done.stderr


def test_torchrun_two_processes(kinetics, tmp_path):
    """The raw torch.distributed path (gloo on the CPU): both ranks train, rank 0 saves, and the
    evaluation gathers every rank's share of the views."""
    cmd = command(kinetics, tmp_path / "ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *cmd[1:]]
    cmd += [f"--val_list={kinetics['lists']['val']}", "--epochs=1", "--test_size=32", "--num_clips=2",
            "--num_crops=1"]
    log = run(cmd)
    assert "2 process(es) x 2 clips" in log
    assert "eval epoch 0: 2 videos, 4 views" in log, log  # rank 0 scored 2 of the 4 itself
    assert (tmp_path / "ddp" / "final.pyth").exists()


def test_official_csv_lists(kinetics, tmp_path):
    """Kinetics' official CSVs (label,youtube_id,time_start,time_end,split) work as well as
    PySlowFast lists; the validation CSV is read with the training CSV's class map."""
    cmd = command(kinetics, tmp_path / "csv")
    cmd = [c for c in cmd if not c.startswith(("--train_list=", "--epochs="))]
    cmd += [f"--train_list={kinetics['official_csv']['train']}", f"--val_list={kinetics['official_csv']['val']}",
            "--epochs=1", "--test_size=32", "--num_clips=1", "--num_crops=1"]
    log = run(cmd)
    assert "8 training videos" in log and "eval epoch 0: 2 videos, 2 views" in log, log


def test_all_five_loss_terms_with_train_only_score_files(kinetics, tmp_path):
    """Ego-Score, Object-Score and both maps on, with score files that cover the training videos
    only (the normal case): training logs every term and the evaluation still runs."""
    from data.annotations import read_kinetics_list
    from data.teacher_targets import save_teacher_scores
    ids = [c.video_id for c in read_kinetics_list(kinetics["lists"]["train"], kinetics["video_root"])]
    rng = torch.Generator().manual_seed(0)
    for teacher, classes in (("ego", 2), ("object", 1000)):
        save_teacher_scores(tmp_path / f"{teacher}.pt", teacher, ids,
                            torch.randn(len(ids), classes, generator=rng).log_softmax(-1))
    cmd = command(kinetics, tmp_path / "run") + [
        "--preset=ego_exo", f"--ego_scores={tmp_path / 'ego.pt'}", f"--object_scores={tmp_path / 'object.pt'}",
        f"--val_list={kinetics['lists']['val']}", "--epochs=1", "--test_size=32", "--num_clips=1", "--num_crops=1"]
    log = run(cmd)
    done = next(line for line in log.splitlines() if line.startswith("epoch 0 done"))
    for term in ("action", "ego", "object", "hand_map", "object_map"):
        assert f" {term} " in done, done
    assert "eval epoch 0: 2 videos" in log


def test_two_processes_and_one_with_the_same_global_batch_reach_the_same_weights(kinetics, tmp_path):
    """Data parallelism is exact: 2 gloo processes x 2 clips and 1 process x 4 clips see the same
    clips per step (the sampler's shards interleave one permutation, augmentation is drawn per
    sample) and average the same gradients, with all five terms on. BatchNorm is the one layer
    that differs by design (each process normalises over its own clips, as the paper's 8 per
    GPU), so both runs use --freeze_bn=true, which makes BN the same affine map everywhere."""
    from data.annotations import read_kinetics_list
    from data.teacher_targets import save_teacher_scores
    ids = [c.video_id for c in read_kinetics_list(kinetics["lists"]["train"], kinetics["video_root"])]
    rng = torch.Generator().manual_seed(0)
    for teacher, classes in (("ego", 2), ("object", 1000)):
        save_teacher_scores(tmp_path / f"{teacher}.pt", teacher, ids,
                            torch.randn(len(ids), classes, generator=rng).log_softmax(-1))
    common = ["--preset=ego_exo", f"--ego_scores={tmp_path / 'ego.pt'}", f"--object_scores={tmp_path / 'object.pt'}", "--epochs=2",
              "--base_lr_batch=4", "--freeze_bn=true", "--progress=false"]
    one = command(kinetics, tmp_path / "one") + common + ["--batch_size=4"]
    two = command(kinetics, tmp_path / "two") + common
    two = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *two[1:]]
    run(one)
    assert "2 process(es) x 2 clips" in run(two)
    a = torch.load(tmp_path / "one" / "final.pyth", weights_only=True)["model_state"]
    b = torch.load(tmp_path / "two" / "final.pyth", weights_only=True)["model_state"]
    torch.manual_seed(0)  # the script's seed before it builds the model: its initial weights
    start = build_model("slow_8x8_r50", 2, ego_head=True, object_head=True, interaction_head=True).state_dict()
    moved = 0
    for key in a:
        if a[key].is_floating_point():
            assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), (key, (a[key] - b[key]).abs().max())
            moved += int(not torch.equal(a[key], start[key]))
    assert moved > 100  # the weights did train


def checkpoint_files(out_dir):
    return sorted(out_dir.glob("checkpoint_epoch*.pyth"))


def test_a_run_killed_during_an_evaluation_runs_it_on_resume(kinetics, tmp_path):
    out = tmp_path / "eval"
    cmd = command(kinetics, out) + [f"--val_list={kinetics['lists']['val']}", "--epochs=1", "--test_size=32",
                                    "--num_clips=10", "--num_crops=3", "--progress=false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while "epoch 0 done" not in ((out / "log.txt").read_text() if (out / "log.txt").exists() else ""):
        assert proc.poll() is None and time.time() < deadline, "the run ended before its evaluation"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # 60 views to score: it is inside the evaluation
    proc.wait()
    assert "eval epoch 0" not in (out / "log.txt").read_text()
    log = run(cmd)
    assert "the evaluation of epoch 0 did not finish and runs first" in log and "eval epoch 0: 2 videos, 60 views" in log
    assert (out / "best.pyth").exists() and (out / "final.pyth").exists()
    assert "eval epoch 0" not in run(cmd)  # done now: a further resume does not repeat it


def test_a_non_finite_loss_stops_the_run_before_any_checkpoint_holds_it(kinetics, tmp_path):
    out = tmp_path / "nan"
    cmd = command(kinetics, out) + ["--base_lr=1e12", "--log_every=3", "--checkpoint_every=3", "--progress=false"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "a loss term is not finite" in done.stderr, done.stdout + done.stderr
    assert "stopped before any checkpoint was written from it" in done.stderr
    for path in checkpoint_files(out):
        state = torch.load(path, weights_only=True)["model_state"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path


def test_a_second_run_on_the_same_out_dir_is_refused(kinetics, tmp_path):
    out = tmp_path / "busy"
    first = subprocess.Popen(command(kinetics, out) + ["--progress=false"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "log.txt").exists():
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        second = subprocess.run(command(kinetics, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1 and f"{out} is in use by another run (pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()


def test_a_full_disk_names_the_checkpoint_and_keeps_the_previous_one(kinetics, tmp_path):
    """The file-size limit makes the checkpoint write fail mid-file (EFBIG), as a full disk does
    (ENOSPC): the run stops naming the file, leaves no temporary file, and the checkpoint before
    it is intact."""
    import resource

    out = tmp_path / "full"
    run(command(kinetics, out) + ["--epochs=1", "--checkpoint_every=100", "--progress=false"])
    (previous,) = checkpoint_files(out)
    before = previous.read_bytes()

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 20, 32 << 20))

    done = subprocess.run(command(kinetics, out) + ["--epochs=2", "--checkpoint_every=100", "--progress=false",
                                                    "--allow_setting_changes=true"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot write checkpoint" in done.stderr and "checkpoint_epoch0002_step000000.pyth" in done.stderr
    assert "is the disk full?" in done.stderr, done.stderr
    assert checkpoint_files(out) == [previous] and previous.read_bytes() == before
    assert not list(out.glob("*.tmp"))
