"""Builds the project's one extension, `_egoexo_C`, from csrc/.

C++ CPU kernels are always built. CUDA kernels (csrc/*.cu) are added whenever nvcc and a CUDA
build of torch are present -- also on a machine without a GPU, so CI compiles them on every
run. EGOEXO_CPU_ONLY=1 forces a CPU-only build.

The GPU architectures come from TORCH_CUDA_ARCH_LIST; `make setup` defaults it to
"8.0;9.0+PTX": machine code for sm_80 (A100) and sm_90 (H100/H200), plus sm_90 PTX that newer
GPUs (sm_100 and later) JIT-compile when the extension loads. Unset, torch builds for the GPUs
it sees, and fails on a machine with none: set it as `make setup` does.

    TORCH_CUDA_ARCH_LIST="8.0;9.0+PTX" pip install --no-build-isolation -e .
"""
import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

cpu_only = os.environ.get("EGOEXO_CPU_ONLY", "0") == "1"
with_cuda = not cpu_only and torch.version.cuda is not None and CUDA_HOME is not None

sources = sorted(glob.glob("csrc/*.cpp"))
# -ffp-contract=off: no FMA contraction, so float results match the Python references bit
# for bit (see csrc/interaction_map.h).
extra_compile_args = {"cxx": ["-O3", "-fopenmp", "-ffp-contract=off"]}
define_macros = []
if with_cuda:
    sources += sorted(glob.glob("csrc/*.cu"))
    extra_compile_args["nvcc"] = ["-O3", "--use_fast_math", "-lineinfo"]
    define_macros.append(("WITH_CUDA", None))
    Extension = CUDAExtension
else:
    Extension = CppExtension

setup(
    name="egoexo",
    version="0.1.0",
    description="Ego-Exo (CVPR 2021) in plain PyTorch: fused C++/CUDA ops",
    py_modules=[],
    packages=[],
    ext_modules=[
        Extension(
            name="_egoexo_C",
            sources=sources,
            extra_compile_args=extra_compile_args,
            extra_link_args=["-fopenmp"],
            define_macros=define_macros,
            py_limited_api=False,
        )
    ],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
