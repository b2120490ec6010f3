"""Binary PLY point clouds: ``x y z`` float32, ``red green blue`` uint8, optional
``confidence`` float32, little endian. The reader handles these files (and other
binary little-endian vertex-only PLY files with scalar properties)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fourdnex.errors import FourDNeXError
from fourdnex.io.atomic import atomic_file

_PLY_TYPES = {
    "float": "<f4", "float32": "<f4", "double": "<f8", "float64": "<f8",
    "uchar": "u1", "uint8": "u1", "char": "i1", "int8": "i1",
    "ushort": "<u2", "uint16": "<u2", "short": "<i2", "int16": "<i2",
    "uint": "<u4", "uint32": "<u4", "int": "<i4", "int32": "<i4",
}  # fmt: skip


def write_ply(
    path: str | Path, points: np.ndarray, colors: np.ndarray, conf: np.ndarray | None = None
) -> Path:
    """Write points (N, 3), uint8 colours (N, 3) and optional confidence (N,) atomically."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
              ("red", "u1"), ("green", "u1"), ("blue", "u1")]  # fmt: skip
    if conf is not None:
        fields.append(("confidence", "<f4"))
    data = np.empty(len(points), dtype=fields)
    data["x"], data["y"], data["z"] = points[:, 0], points[:, 1], points[:, 2]
    data["red"], data["green"], data["blue"] = colors[:, 0], colors[:, 1], colors[:, 2]
    if conf is not None:
        data["confidence"] = conf
    names = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment written by fourdnex",
              f"element vertex {len(points)}"]  # fmt: skip
    header += [f"property {names[t]} {n}" for n, t in fields]
    header.append("end_header")
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(data.tobytes())
    return path


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read the vertex properties of a binary little-endian PLY file, by name."""
    path = Path(path)
    raw = path.read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply") or end < 0:
        raise FourDNeXError(f"{path}: not a PLY file")
    lines = raw[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise FourDNeXError(f"{path}: only binary little-endian PLY is supported")
    count, fields, in_vertex = 0, [], False
    for line in lines:
        parts = line.split()
        if parts[:1] == ["element"]:
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
            elif int(parts[2]) > 0:
                raise FourDNeXError(f"{path}: elements other than vertices are not supported")
        elif parts[:1] == ["property"] and in_vertex:
            if parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise FourDNeXError(f"{path}: unsupported property {line!r}")
            fields.append((parts[2], _PLY_TYPES[parts[1]]))
    dtype = np.dtype(fields)
    body = raw[end + len(b"end_header\n") :]
    if len(body) < count * dtype.itemsize:
        raise FourDNeXError(f"{path}: truncated ({len(body)} bytes for {count} vertices)")
    data = np.frombuffer(body, dtype=dtype, count=count)
    return {name: np.array(data[name]) for name in dtype.names or ()}
