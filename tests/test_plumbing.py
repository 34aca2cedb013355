"""plumbing.py: settings typed against their defaults, presets, --help, video sharding, and
refusing to resume from another run's checkpoint."""
import os
import subprocess
import sys

import pytest
import torch

import plumbing
from models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = '''"""A test script."""
import sys
import plumbing

epochs = 200  # training epochs
lr = 0.8  # the peak LR
resume = True  # continue from last.pyth
arch = "slow"  # an arch name
path = None  # a file
steps = (20, 25)  # step epochs
a, b = 1, 2  # two at once
# the comment above
above = 3
preset = "small"  # a recipe
PRESETS = {"small": dict(epochs=5), "big": dict(epochs=500, lr=1.6)}
s = plumbing.parse_settings(__file__, globals(), sys.argv[1:], presets=PRESETS)
print(repr(sorted(s.items())))
'''


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "script.py"
    path.write_text(SCRIPT)
    return path


def run(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=60)


def settings_of(script, *args) -> dict:
    done = run(script, *args)
    assert done.returncode == 0, done.stderr
    return dict(eval(done.stdout))


def test_values_are_typed_against_the_default(script):
    s = settings_of(script, "--resume=false", "--epochs=7", "--lr=1", "--arch=slowfast", "--path=/data/x.csv",
                    "--steps=3,4")
    assert s["resume"] is False and s["epochs"] == 7 and s["lr"] == 1.0 and isinstance(s["lr"], float)
    assert s["arch"] == "slowfast" and s["path"] == "/data/x.csv" and s["steps"] == (3, 4)
    assert settings_of(script, "--resume=TRUE")["resume"] is True
    assert settings_of(script, "--resume=0")["resume"] is False
    assert settings_of(script, "--path=0.5")["path"] == 0.5  # a None default takes a Python literal
    assert settings_of(script, "--path=None")["path"] is None
    assert settings_of(script, "--steps=()")["steps"] == ()
    assert settings_of(script, "--steps=30")["steps"] == (30,)
    assert settings_of(script, "--steps=a.pt,/x/b.pt")["steps"] == ("a.pt", "/x/b.pt")
    assert settings_of(script, "--steps=/x/a.pt")["steps"] == ("/x/a.pt",)


@pytest.mark.parametrize("arg, message", [
    ("--epochs=abc", "--epochs: expected an integer (default 200), got 'abc'"),
    ("--epochs=2.5", "--epochs: expected an integer"),
    ("--epochs=True", "--epochs: expected an integer"),
    ("--lr=fast", "--lr: expected a number (default 0.8), got 'fast'"),
    ("--resume=maybe", "--resume: expected true or false (default True), got 'maybe'"),
    ("--steps=[[1]]", "--steps: expected a tuple"),
    ("--epoch=3", "bad argument '--epoch=3'"),
    ("--epochs", "bad argument '--epochs'"),
    ("--preset=huge", "unknown preset 'huge'; expected one of: small, big"),
])
def test_bad_values_are_refused_at_once(script, arg, message):
    done = run(script, arg)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_presets_apply_under_the_overrides(script):
    assert settings_of(script)["epochs"] == 5  # the default preset
    big = settings_of(script, "--preset=big")
    assert big["epochs"] == 500 and big["lr"] == 1.6
    assert settings_of(script, "--preset=big", "--epochs=9")["epochs"] == 9


def test_help_lists_every_setting_with_default_and_meaning(script):
    done = run(script, "--help")
    assert done.returncode == 0
    for name, default, meaning in [("epochs", "200", "training epochs"), ("resume", "True", "continue from"),
                                   ("a", "1", "two at once"), ("b", "2", "two at once"),
                                   ("above", "3", "the comment above"), ("steps", "(20, 25)", "step epochs")]:
        line = next(l for l in done.stdout.splitlines() if l.strip().startswith(f"--{name} "))
        assert default in line and meaning in line, line
    assert "big: epochs=500, lr=1.6" in done.stdout


def test_the_real_scripts_help():
    for script in ("train_pretrain.py", "train_finetune.py"):
        done = subprocess.run([sys.executable, os.path.join(ROOT, script), "--help"], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "--epochs" in done.stdout and "--out_dir" in done.stdout
        device = next(l for l in done.stdout.splitlines() if l.strip().startswith("--device "))
        assert "cuda or cpu" in device  # the setting's comment, not a later reassignment's


def test_video_shard_keeps_each_videos_views_together():
    shards = [plumbing.video_shard(5, 3, plumbing.Processes(True, r, 2, torch.device("cpu"))) for r in range(2)]
    assert shards[0] == [0, 1, 2, 6, 7, 8, 12, 13, 14] and shards[1] == [3, 4, 5, 9, 10, 11]
    assert sorted(shards[0] + shards[1]) == list(range(15))


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    model = build_model("slow_8x8_r50", 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = str(tmp_path / "last.pyth")
    plumbing.save_training_state(path, model, optimizer, epoch=2, step=5, config={})
    again = build_model("slow_8x8_r50", 4)
    assert plumbing.restore_training_state(path, again, torch.optim.SGD(again.parameters(), lr=0.1)) == (2, 5)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other = build_model("slow_8x8_r50", 7)
    with pytest.raises(SystemExit, match="last.pyth: saved by a run with other settings.*--resume=false"):
        plumbing.restore_training_state(path, other, torch.optim.SGD(other.parameters(), lr=0.1))


def test_resume_refuses_changed_settings_unless_allowed(tmp_path):
    model = build_model("slow_8x8_r50", 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = str(tmp_path / "last.pyth")
    saved = {"batch_size": 8, "world_size": 64, "w_ego": 0.1, "log_every": 20, "num_workers": 8}
    plumbing.save_training_state(path, model, optimizer, epoch=1, step=0, config=saved)
    changed = {**saved, "batch_size": 16, "w_ego": 0.0, "log_every": 5, "num_workers": 2}
    with pytest.raises(SystemExit) as e:
        plumbing.restore_training_state(path, model, optimizer, changed)
    message = str(e.value)
    assert "batch_size: 8 -> 16" in message and "w_ego: 0.1 -> 0.0" in message and "--allow_setting_changes=true" in message
    assert "log_every" not in message and "num_workers" not in message  # free to change
    assert plumbing.restore_training_state(path, model, optimizer, changed, allow_changes=True) == (1, 0)
    assert plumbing.restore_training_state(path, model, optimizer, {**saved, "log_every": 1}) == (1, 0)


def test_eval_batches_hold_whole_videos():
    assert plumbing.eval_batch_size(8, 30) == 30 and plumbing.eval_batch_size(64, 30) == 60
    assert plumbing.eval_batch_size(8, 2) == 8 and plumbing.eval_batch_size(3, 2) == 2 and plumbing.eval_batch_size(8, 1) == 8
