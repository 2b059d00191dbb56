"""Writes the inputs of sub-over-second-operand.onnxtext and the expected
output y = r - exp(x) (r broadcast over the rows), standard library only."""
import json
import math
import struct
import sys


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, shape, values in tensors:
        blob = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


x = [0.1 * i - 0.5 for i in range(12)]
r = [1.0, -2.0, 3.5, 0.25]
# Rounded to float32 first, as the kernels see them.
x = [struct.unpack("<f", struct.pack("<f", v))[0] for v in x]
y = [r[i % 4] - math.exp(x[i]) for i in range(12)]
write(sys.argv[1], [("x", [3, 4], x), ("r", [1, 4], r)])
write(sys.argv[2], [("y", [3, 4], y)])
