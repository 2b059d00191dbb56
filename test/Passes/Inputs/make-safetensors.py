#!/usr/bin/env python3
"""Writes a small safetensors file for the init-from tests (no numpy needed).

usage: make-safetensors.py OUT [--bad-offsets | --not-json | --short] NAME=DTYPE:D0xD1 ...

Tensors are written in the order given with zero bytes and the header size
is printed (`header bytes N`) for FileCheck's numeric variables; `--bad-offsets`
makes the last tensor's data_offsets run past the end of the file,
`--not-json` writes a header that is not JSON, `--short` writes 4 bytes.
"""

import json
import struct
import sys

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def main():
    out, args = sys.argv[1], sys.argv[2:]
    flags = {a for a in args if a.startswith("--")}
    specs = [a for a in args if not a.startswith("--")]
    if "--short" in flags:
        open(out, "wb").write(b"\x01\x02\x03\x04")
        return
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for spec in specs:
        name, rest = spec.split("=")
        dtype, dims = rest.split(":")
        shape = [int(d) for d in dims.split("x")]
        size = SIZES[dtype]
        for d in shape:
            size *= d
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + size]}
        offset += size
    if "--bad-offsets" in flags:
        last = header[specs[-1].split("=")[0]]
        last["data_offsets"] = [last["data_offsets"][0] + 8, last["data_offsets"][1] + 8]
    text = b"{not json" if "--not-json" in flags else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    print(f"header bytes {len(text)}")
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(b"\0" * offset)


if __name__ == "__main__":
    main()
