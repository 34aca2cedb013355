"""plumbing's run files: rotating checkpoints (newest kept, truncated ones skipped, best
linked), atomic writes that fail cleanly on a full disk, the out_dir lock, and log.jsonl."""
import json
import os
import subprocess
import sys

import pytest
import torch

import plumbing
from models.checkpoint import CheckpointWriteError, save_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tiny(torch.nn.Module):
    """Stands in for a VideoNet: save_checkpoint needs a state dict and a config."""

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.full((3,), value))
        self.config = {"arch": "tiny"}


def save(checkpoints, value, epoch, step, steps_per_epoch=4, eval_due=None):
    model = Tiny(value)
    return checkpoints.save(model, torch.optim.SGD(model.parameters(), lr=0.1), epoch=epoch, step=step,
                            steps_per_epoch=steps_per_epoch, config={}, eval_due=eval_due)


def test_checkpoints_keep_the_newest_and_name_the_resume_position(tmp_path):
    messages = []
    checkpoints = plumbing.Checkpoints(str(tmp_path), keep=2, log=messages.append)
    assert checkpoints.newest() is None
    save(checkpoints, 1.0, epoch=0, step=2)
    save(checkpoints, 2.0, epoch=0, step=4)  # the epoch's end: the next epoch's start
    save(checkpoints, 3.0, epoch=1, step=2)
    names = [os.path.basename(p) for *_, p in checkpoints.listed()]
    assert names == ["checkpoint_epoch0001_step000000.pyth", "checkpoint_epoch0001_step000002.pyth"]
    ckpt, path = checkpoints.newest()
    assert path.endswith("checkpoint_epoch0001_step000002.pyth") and (ckpt["epoch"], ckpt["step"]) == (1, 2)
    assert torch.equal(ckpt["model_state"]["weight"], torch.full((3,), 3.0))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] and not messages


def test_a_truncated_newest_checkpoint_is_skipped_with_a_warning(tmp_path):
    messages = []
    checkpoints = plumbing.Checkpoints(str(tmp_path), keep=3, log=messages.append)
    save(checkpoints, 1.0, epoch=0, step=2)
    newest = save(checkpoints, 2.0, epoch=0, step=3)
    size = os.path.getsize(newest)
    with open(newest, "r+b") as f:
        f.truncate(size // 2)
    ckpt, path = checkpoints.newest()
    assert path.endswith("checkpoint_epoch0000_step000002.pyth") and ckpt["step"] == 2
    assert len(messages) == 1 and "skipping" in messages[0] and os.path.basename(newest) in messages[0]
    assert os.path.exists(newest)  # kept for inspection, never loaded


def test_best_is_linked_to_the_epoch_end_checkpoint_and_survives_rotation(tmp_path):
    checkpoints = plumbing.Checkpoints(str(tmp_path), keep=1, log=print)
    save(checkpoints, 1.0, epoch=0, step=4, eval_due=0)
    assert checkpoints.evaluation_done(0, "top1", 50.0)
    save(checkpoints, 2.0, epoch=1, step=4, eval_due=1)
    assert not checkpoints.evaluation_done(1, "top1", 40.0)  # worse: best stays epoch 0's
    save(checkpoints, 3.0, epoch=2, step=4, eval_due=2)
    assert len(checkpoints.listed()) == 1  # epoch 0's file was rotated out ...
    best = torch.load(checkpoints.best_path, weights_only=True)
    assert torch.equal(best["model_state"]["weight"], torch.full((3,), 1.0))  # ... best.pyth still holds it
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == 0
    assert checkpoints.evaluated() == {0, 1}
    ckpt, _ = checkpoints.newest()
    assert checkpoints.pending_evaluation(ckpt) == 2  # killed before epoch 2's evaluation finished
    checkpoints.evaluation_done(2, "top1", 60.0)
    assert checkpoints.pending_evaluation(ckpt) is None
    assert torch.equal(torch.load(checkpoints.best_path, weights_only=True)["model_state"]["weight"],
                       torch.full((3,), 3.0))


def test_a_failed_write_names_the_file_removes_its_temporary_and_keeps_the_old_one(tmp_path):
    """A full disk, for real: the file-size limit makes the write fail with EFBIG in the middle
    of torch.save, as ENOSPC would."""
    path = tmp_path / "checkpoint.pyth"
    save_checkpoint(path, Tiny(1.0))
    before = path.read_bytes()
    code = f"""
import resource, signal, sys, torch
sys.path.insert(0, {ROOT!r})
from models.checkpoint import save_checkpoint, CheckpointWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
class Big(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(100000))
        self.config = {{}}
try:
    save_checkpoint({str(path)!r}, Big())
except CheckpointWriteError as e:
    print(e)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"cannot write checkpoint {path}" in done.stdout and "is unchanged" in done.stdout, done.stdout
    assert path.read_bytes() == before
    assert not (tmp_path / "checkpoint.pyth.tmp").exists()
    assert issubclass(CheckpointWriteError, OSError)


def test_a_second_run_on_one_out_dir_is_refused(tmp_path):
    code = f"""
import sys, time, torch
sys.path.insert(0, {ROOT!r})
import plumbing
plumbing.lock_out_dir(plumbing.Processes(False, 0, 1, torch.device("cpu")), {str(tmp_path)!r}, "train_x.py")
print("locked", flush=True)
time.sleep(60)
"""
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"train_x.py: {tmp_path} is in use by another run (pid {holder.pid}" in second.stderr, second.stderr
    finally:
        holder.kill()
        holder.wait()
    # the kernel drops the lock of a killed process: the next run goes ahead
    again = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert again.stdout.readline().strip() == "locked"
    finally:
        again.kill()
        again.wait()


def test_run_log_writes_strict_json_lines(tmp_path, capsys):
    log = plumbing.make_log(plumbing.Processes(False, 0, 1, torch.device("cpu")), str(tmp_path))
    log("hello")
    log.record("train", epoch=0, step=3, loss={"loss": float("nan"), "action": 1.5}, lr=float("inf"))
    other = plumbing.make_log(plumbing.Processes(True, 1, 2, torch.device("cpu")), str(tmp_path))
    other("not written")
    other.record("train", epoch=9)
    assert capsys.readouterr().out == "hello\n"
    assert (tmp_path / "log.txt").read_text() == "hello\n"
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["kind"] == "train" and entry["loss"] == {"loss": None, "action": 1.5} and entry["lr"] is None
    assert isinstance(entry["time"], float)


def test_run_log_after_a_half_written_line_starts_a_new_one(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"kind": "train", "progress": 0.5}\n{"kind": "tra')  # killed mid-write
    log = plumbing.make_log(plumbing.Processes(False, 0, 1, torch.device("cpu")), str(tmp_path))
    log.record("start", config={})
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert lines[1] == '{"kind": "tra' and json.loads(lines[2])["kind"] == "start"
