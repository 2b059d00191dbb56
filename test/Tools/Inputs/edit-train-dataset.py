"""Writes a broken copy of a vlora-train dataset for the error tests.

    edit-train-dataset.py IN.safetensors OUT.safetensors EDIT

EDIT is one of
    drop:NAME             leave tensor NAME out
    int32:NAME            store tensor NAME as int32
    set:NAME:E:S:VALUE    set element [E, S] of tensor NAME to VALUE
    ignore-labels         every label -100
    truncate:N            keep the first N examples of every tensor
Only numpy and the safetensors layout (8-byte header length, JSON header,
data) are used.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "I64": np.int64, "I32": np.int32, "F64": np.float64}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(
            info["shape"]).copy()
    return tensors


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        b = t.tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    src, dst, edit = sys.argv[1:4]
    tensors = read(src)
    kind, _, arg = edit.partition(":")
    if kind == "drop":
        del tensors[arg]
    elif kind == "int32":
        tensors[arg] = tensors[arg].astype(np.int32)
    elif kind == "set":
        name, e, s, value = arg.split(":")
        tensors[name][int(e), int(s)] = int(value)
    elif kind == "ignore-labels":
        tensors["labels"][:] = -100
    elif kind == "truncate":
        tensors = {k: v[: int(arg)] for k, v in tensors.items()}
    else:
        sys.exit("unknown edit " + edit)
    write(dst, tensors)


if __name__ == "__main__":
    main()
