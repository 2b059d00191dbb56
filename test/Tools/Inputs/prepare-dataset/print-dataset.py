"""Prints a dataset safetensors file for FileCheck: per tensor name, dtype, shape, then rows
(integers in full; floats as min/max/mean, and whether every example's pixels differ)."""
import sys

from safetensors.numpy import load_file

d = load_file(sys.argv[1])
for name in sorted(d):
    v = d[name]
    print(f"{name} {v.dtype} {list(v.shape)}")
    if v.dtype.kind == "f":
        flat = v.reshape(v.shape[0], -1)
        distinct = len({row.tobytes() for row in flat})
        print(f"  min {v.min():.3f} max {v.max():.3f} distinct-rows {distinct}")
    else:
        for row in v:
            print("  " + " ".join(str(int(x)) for x in row))
