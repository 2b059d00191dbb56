#!/usr/bin/env python3
"""Checks a --mixed-precision bf16 bundle's converted weights and makes the
f32 twin of its model (standard library only).

    round_converted_weights.py BUNDLE MODEL_DIR OUT_DIR

For every weight the manifest lists under options.converted_weights, the
bundle's weights.bf16.bin must hold the f32 source bytes rounded to the
nearest bf16 (ties to even). OUT_DIR gets a copy of MODEL_DIR in which those
f32 bytes are replaced by the same rounded values widened back to f32: a
model compiled from it in f32 computes exactly what the bf16 bundle computes
(the kernels widen bf16 to f32 exactly), so its outputs must be bitwise
equal.
"""
import json
import os
import shutil
import struct
import sys


def to_bf16(bits):
    if (bits & 0x7FFFFFFF) > 0x7F800000:  # NaN: quiet, keep the sign
        return ((bits >> 16) | 0x40) & 0xFFFF
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) & 0xFFFF


def main():
    bundle, model_dir, out_dir = sys.argv[1:4]
    manifest = json.load(open(os.path.join(bundle, "manifest.json")))
    converted = manifest["options"].get("converted_weights", [])
    if not converted:
        sys.exit("no converted weights in " + bundle)
    packed = open(os.path.join(bundle, "weights.bf16.bin"), "rb").read()
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    shutil.copytree(model_dir, out_dir)
    files = {}
    for w in converted:
        path = os.path.join(out_dir, w["from_file"])
        data = files.setdefault(path, bytearray(open(path, "rb").read()))
        n = w["length"] // 2
        src = struct.unpack_from("<%dI" % n, data, w["from_offset"])
        got = struct.unpack_from("<%dH" % n, packed, w["offset"])
        want = [to_bf16(b) for b in src]
        if list(got) != want:
            bad = next(i for i in range(n) if got[i] != want[i])
            sys.exit("%s: element %d is 0x%04x, want 0x%04x (from 0x%08x)"
                     % (w["name"], bad, got[bad], want[bad], src[bad]))
        struct.pack_into("<%dI" % n, data, w["from_offset"], *[h << 16 for h in want])
    for path, data in files.items():
        open(path, "wb").write(data)
    print("converted %d weights: ok" % len(converted))


if __name__ == "__main__":
    main()
