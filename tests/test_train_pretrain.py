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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    return make_kinetics(str(tmp_path_factory.mktemp("k")), num_classes=2, videos_per_class=4,
                         val_videos_per_class=1, size=(40, 48), num_frames=24)


def command(kinetics, out_dir):
    settings = dict(train_list=kinetics["lists"]["train"], video_root=kinetics["video_root"], num_classes=2,
                    detections=kinetics["detection_store"], min_size=32, max_size=40, crop_size=32, epochs=3,
                    batch_size=2, base_lr=0.05, base_lr_batch=2, warmup_epochs=1.0, num_workers=1,
                    log_every=1, checkpoint_every=1, arch="slow_8x8_r50", device="cpu", out_dir=str(out_dir))
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
    while not (killed / "last.pyth").exists():  # the first checkpoint: after step 1 of epoch 0
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
        f"--ego_scores={tmp_path / 'ego.pt'}", f"--object_scores={tmp_path / 'object.pt'}",
        f"--val_list={kinetics['lists']['val']}", "--epochs=1", "--test_size=32", "--num_clips=1", "--num_crops=1"]
    log = run(cmd)
    done = next(line for line in log.splitlines() if line.startswith("epoch 0 done"))
    for term in ("action", "ego", "object", "hand_map", "object_map"):
        assert f" {term} " in done, done
    assert "eval epoch 0: 2 videos" in log
