#!/usr/bin/env python3
"""Check that gguf-py, llama.cpp's Python package, reads GGUF files written by mamba-edge.

Opens each FILE with gguf.GGUFReader, decodes every metadata value and touches every
tensor's data, then prints one summary line per file. The exit status is 1 if any file
fails and 2 on a usage error.

Usage: check_gguf_python.py FILE...

Write a sample first with
`cargo run -p mamba-core --example write_sample_gguf -- /tmp/sample.gguf`.
Run it with the interpreter that has the `gguf` package, for example
/work/pyenv/venv/bin/python.
"""

import os
import sys

import gguf
import numpy as np


def check_file(path: str) -> str:
    """Read every key and tensor of `path` and return a summary line.

    Raises ValueError (or whatever gguf-py raises) when something does not read.
    """
    reader = gguf.GGUFReader(path)
    file_size = os.path.getsize(path)

    # Header fields that gguf-py adds under GGUF.* names.
    tensor_count = int(reader.fields["GGUF.tensor_count"].contents())
    kv_count = int(reader.fields["GGUF.kv_count"].contents())
    keys = [name for name in reader.fields if not name.startswith("GGUF.")]
    if len(keys) != kv_count:
        raise ValueError(f"header says {kv_count} keys but {len(keys)} were read")
    if len(reader.tensors) != tensor_count:
        raise ValueError(f"header says {tensor_count} tensors but {len(reader.tensors)} were read")

    # Every value must decode; contents() raises on bad UTF-8 or a broken layout.
    for key in keys:
        field = reader.fields[key]
        if field.contents() is None:
            raise ValueError(f"key {key!r} has no decodable value")

    # Every tensor's bytes must lie inside the file at an aligned offset.
    for tensor in reader.tensors:
        if tensor.data_offset % reader.alignment != 0:
            raise ValueError(
                f"tensor {tensor.name!r} starts at {tensor.data_offset}, "
                f"not a multiple of the alignment {reader.alignment}"
            )
        if tensor.data_offset + tensor.n_bytes > file_size:
            raise ValueError(
                f"tensor {tensor.name!r} ends at {tensor.data_offset + tensor.n_bytes}, "
                f"past the end of the file at {file_size}"
            )
        data = np.asarray(tensor.data)
        if data.nbytes != tensor.n_bytes:
            raise ValueError(f"tensor {tensor.name!r} has {data.nbytes} bytes, expected {tensor.n_bytes}")
        # Touch the bytes so that a bad memory map fails here.
        data.tobytes()

    types = sorted({tensor.tensor_type.name for tensor in reader.tensors})
    return (
        f"{len(keys)} keys, {len(reader.tensors)} tensors ({', '.join(types) or 'none'}), "
        f"alignment {reader.alignment}, data at {reader.data_offset}, {file_size} bytes"
    )


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    failed = 0
    for path in paths:
        try:
            summary = check_file(path)
        except Exception as error:  # gguf-py raises many exception types; report them all.
            failed += 1
            print(f"FAIL {path}: {type(error).__name__}: {error}")
        else:
            print(f"ok   {path}: {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
