#!/usr/bin/env python3
"""Inputs and expected outputs for one run of a training bundle's @train_step
(Python standard library only; docs/training.md).

  train_step_io.py BUNDLE DATASET ADAPTERS INPUTS_OUT
      [--reference-grads GRADS --reference-json REFERENCE --expected-out EXPECTED]

INPUTS_OUT gets every input of the manifest's "train_step" program: the model
inputs and labels from DATASET (one batch: the dataset must hold exactly the
compiled batch), loss_scale = 1, the adapters from ADAPTERS (a PEFT
adapter_model.safetensors), zero gradient accumulators and, with dropout,
dropout_rng = [0, 0]. With the reference options EXPECTED gets `loss` (the
step-0 loss of REFERENCE's "step0_loss") and `<key>.grad` for every adapter
(GRADS' tensor `<key>`), so that compare-safetensors can check the run.
"""
import argparse
import json
import struct
import sys

SIZES = {"F32": 4, "F64": 8, "I64": 8, "I32": 4, "BOOL": 1, "U8": 1}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[b:e])
    return out


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, blob = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bundle")
    p.add_argument("dataset")
    p.add_argument("adapters")
    p.add_argument("inputs_out")
    p.add_argument("--reference-grads")
    p.add_argument("--reference-json")
    p.add_argument("--expected-out")
    a = p.parse_args()
    manifest = json.load(open(a.bundle + "/manifest.json"))
    program = manifest["programs"]["train_step"]
    dataset, adapters = read(a.dataset), read(a.adapters)
    names = {t["name"] for t in manifest["training"]["adapters"]}
    inputs = {}
    for t in program["inputs"]:
        name, dtype, shape = t["name"], t["dtype"], t["shape"]
        if name in dataset:
            given = dataset[name]
            if given[0] != dtype or given[1] != shape:
                sys.exit(f"{a.dataset}: '{name}' is {given[0]}{given[1]}, the program takes {dtype}{shape}")
            inputs[name] = given
        elif name == "loss_scale":
            inputs[name] = (dtype, shape, struct.pack("<f", 1.0))
        elif name == "dropout_rng":
            inputs[name] = (dtype, shape, struct.pack("<2q", 0, 0))
        elif name in names:
            if name not in adapters:
                sys.exit(f"{a.adapters}: no adapter '{name}'")
            inputs[name] = adapters[name]
        elif name.endswith(".grad") and name[:-5] in names:
            inputs[name] = (dtype, shape, bytes(count(shape) * SIZES[dtype]))
        else:
            sys.exit(f"no value for train_step input '{name}'")
    write(a.inputs_out, inputs)
    if a.expected_out:
        grads = read(a.reference_grads)
        loss = json.load(open(a.reference_json))["step0_loss"]
        expected = {"loss": ("F32", [], struct.pack("<f", loss))}
        for name in names:
            if name not in grads:
                sys.exit(f"{a.reference_grads}: no gradient for '{name}'")
            expected[name + ".grad"] = grads[name]
        write(a.expected_out, expected)


if __name__ == "__main__":
    main()
