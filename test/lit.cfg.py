# -*- Python -*-
# lit configuration for the vlora compiler tests.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "VLORA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".onnxtext", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.vlora_obj_root, "test")

import sys
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%models", os.path.join(config.vlora_src_root, "test", "models")))
config.substitutions.append(("%onnx_testdata", "/usr/share/libonnx-testdata/data/node"))
config.substitutions.append(("%vlora_src_root", config.vlora_src_root))
config.substitutions.append(("%vlora_tools_dir", config.vlora_tools_dir))
if os.path.isdir("/usr/share/libonnx-testdata/data/node"):
    config.available_features.add("onnx-testdata")

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])

# Feature `cuda-device`: this build has the CUDA backend (--device cuda) and
# `nvidia-smi -L` lists a GPU. The GPU tests (test/cuda) say `REQUIRES:
# cuda-device` and are UNSUPPORTED without one; the test that --device cuda
# fails cleanly says `UNSUPPORTED: cuda-device`.
def has_cuda_device():
    import shutil
    import subprocess

    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


if getattr(config, "vlora_cuda_backend", False) and has_cuda_device():
    config.available_features.add("cuda-device")

# Sanitizer builds: libLLVM is not instrumented, so the poisoning that LLVM's
# allocators do in inline code would be reported falsely; everything else is
# checked, and any report fails the test.
if config.vlora_sanitize:
    config.environment["ASAN_OPTIONS"] = "allow_user_poisoning=0:detect_leaks=1:abort_on_error=0"
    config.environment["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    config.available_features.add("sanitizer")
llvm_config.use_default_substitutions()

tool_dirs = [config.vlora_tools_dir, config.llvm_tools_dir]
tools = ["vlora-opt", "vlora-translate", "vlora-compile", "vlora-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.vlora_tools_dir, append_path=True)

# Feature `torch` and substitution %torch_python: a Python with torch,
# transformers and peft (the reference scripts and scripts/prepare-dataset).
# $VLORA_TORCH_PYTHON, else /work/venv/bin/python, else the source tree's
# .venv/ (scripts/setup --with-python); probed once here. Tests that need it
# say `REQUIRES: torch` and are reported UNSUPPORTED without it. Feature
# `pillow`: the same Python also has PIL (reading images).
def find_torch_python():
    import subprocess

    env = os.environ.get("VLORA_TORCH_PYTHON")
    candidates = [env] if env else ["/work/venv/bin/python",
                                    os.path.join(config.vlora_src_root, ".venv", "bin", "python")]
    probe = ("import torch, transformers, peft\n"
             "try:\n    import PIL\n    print('pillow')\nexcept ImportError:\n    print('-')\n")
    for py in candidates:
        if not os.path.exists(py):
            continue
        try:
            out = subprocess.run([py, "-c", probe], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            return py, out.stdout.strip() == "pillow"
    return None, False


torch_python, has_pillow = find_torch_python()
if torch_python:
    config.available_features.add("torch")
    config.substitutions.append(("%torch_python", torch_python))
    if has_pillow:
        config.available_features.add("pillow")
