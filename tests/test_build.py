"""The CPU-only build (EGOEXO_CPU_ONLY=1, what a machine without nvcc gets) compiles and its ops
agree with the references. The default build in the repository is what the other tests use;
whether it carries CUDA kernels depends on nvcc and the torch build."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = """
import torch
import _egoexo_C
assert _egoexo_C.__file__.startswith({lib!r}), _egoexo_C.__file__
table = torch._C._dispatch_dump("egoexo::interaction_map") + torch._C._dispatch_dump("egoexo::crop_normalize")
assert "CPU" in table and "CUDA" not in table, table
from losses.interaction_map import interaction_map, interaction_map_reference
args = (torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([[0., 0, 20, 20], [10, 5, 30, 31]]),
        torch.tensor([0.7, 0.9]), torch.tensor([0, 1]))
kw = dict(scale=torch.tensor([1.0]), crop_offset=torch.tensor([[0.0, 0.0]]), crop_size=torch.tensor([32]),
          flip=torch.tensor([True]), num_frames=2, map_size=4)
assert torch.equal(interaction_map(*args, **kw), interaction_map_reference(*args, **kw))
print("cpu-only build ok")
"""


def test_cpu_only_build(tmp_path):
    lib, build = tmp_path / "lib", tmp_path / "build"
    env = {**os.environ, "EGOEXO_CPU_ONLY": "1", "MAX_JOBS": os.environ.get("MAX_JOBS", "2")}
    done = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(lib), "--build-temp",
                           str(build)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Import the fresh library ahead of the repository's own build.
    code = f"import sys; sys.path.insert(0, {str(lib)!r}); sys.path.insert(1, {ROOT!r})\n" + CHECK.format(lib=str(lib))
    done = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "cpu-only build ok" in done.stdout, done.stdout + done.stderr
