"""Reading a checkpoint file in order: its length and header first, then only the data the header announces.

A safetensors file is an 8-byte header length, a JSON header (each tensor's dtype, shape and
byte range in the data) and the data. The file's length must be exactly what the header
announces, so a truncated or padded file is refused before any data is read, and the data
is read once into one buffer that the tensors then share (no copy per tensor).
"""

import hashlib
import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from models.errors import CheckpointError
from models.limits import available_memory, gigabytes, shown
from models.names import MAX_HEADER_BYTES, METADATA_KEY

# 2**64 has 20 digits: no size, count, offset or seed of a checkpoint needs more. Python refuses to
# parse integers past 4,300 digits with a ValueError of its own; this refuses them far earlier.
MAX_INTEGER_DIGITS = 20
MAX_DIMENSIONS = 8
DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@dataclass(frozen=True)
class Entry:
    """One tensor as the header announces it."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int  # byte range in the data section
    end: int


@dataclass(frozen=True)
class Layout:
    """What the header of a checkpoint file says: its tensors, our metadata, and where the data lies."""

    data_start: int  # 8 + header length
    data_bytes: int
    entries: dict[str, Entry]
    info: dict[str, Any]  # the vae_tui metadata, parsed


class _IntegerTooLong(ValueError):
    """An integer in JSON longer than MAX_INTEGER_DIGITS."""

    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _bounded_int(text: str) -> int:
    """json's parse_int: the integer, unless it has more digits than any checkpoint's."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _IntegerTooLong(digits)
    return int(text)


def parse_json(text: str, where: str, path: Path) -> object:
    """JSON from a checkpoint's header; None if it is not JSON; a CheckpointError for an overlong integer."""
    try:
        return json.loads(text, parse_int=_bounded_int)
    except _IntegerTooLong as e:
        raise CheckpointError(
            f"{path} has an integer of {e.digits} digits in its {where}, longer than any vae-tui checkpoint's"
        ) from None
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return None


def read_layout(file: BinaryIO, path: Path) -> Layout:
    """Read and check the header of an open checkpoint file; nothing of the data is read."""
    prefix = file.read(8)
    if len(prefix) < 8:
        raise CheckpointError(f"{path} is empty or truncated ({len(prefix)} bytes): not a vae-tui checkpoint")
    header_len = struct.unpack("<Q", prefix)[0]
    size = os.fstat(file.fileno()).st_size
    if 8 + header_len > size:
        raise CheckpointError(f"{path} is truncated or not a safetensors file")
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointError(f"{path} has a {header_len}-byte header, larger than any vae-tui checkpoint's")
    raw = file.read(header_len)
    if len(raw) != header_len:
        raise CheckpointError(f"{path} is truncated or not a safetensors file")
    try:
        header = parse_json(raw.decode("utf-8"), "header", path)
    except UnicodeDecodeError:
        header = None
    metadata = header.pop("__metadata__", None) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not isinstance(metadata.get(METADATA_KEY), str):
        raise CheckpointError(f"{path} is not a vae-tui checkpoint (no vae-tui metadata in its header)")
    entries = {name: _entry(name, value, path) for name, value in header.items()}
    data_start = 8 + header_len
    announced = data_start + _check_tiling(entries, path)
    if size < announced:
        raise CheckpointError(f"{path} is truncated: its header announces {announced} bytes, the file has {size}")
    if size > announced:
        raise CheckpointError(
            f"{path} has {size - announced} bytes after the {announced} its header announces:"
            " not a checkpoint as vae-tui writes them"
        )
    info = parse_json(metadata[METADATA_KEY], "metadata", path)
    if not isinstance(info, dict):
        raise CheckpointError(f"{path} has corrupted metadata")
    return Layout(data_start, announced - data_start, entries, info)


def _entry(name: str, value: object, path: Path) -> Entry:
    """A header entry, checked: a known dtype, a shape, a byte range that holds exactly that many elements."""
    bad = CheckpointError(f"{path} is corrupted: its header describes the tensor {shown(name)} wrongly")
    if not isinstance(value, dict) or set(value) != {"dtype", "shape", "data_offsets"}:
        raise bad
    dtype = DTYPES.get(value["dtype"]) if isinstance(value["dtype"], str) else None
    shape, offsets = value["shape"], value["data_offsets"]
    if dtype is None or not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
        raise bad
    if len(shape) > MAX_DIMENSIONS or not all(type(n) is int and n >= 0 for n in [*shape, *offsets]):
        raise bad
    begin, end = offsets
    if end - begin != math.prod(shape) * dtype.itemsize:
        raise bad
    return Entry(dtype, tuple(shape), begin, end)


def _check_tiling(entries: dict[str, Entry], path: Path) -> int:
    """The data section's length: the tensors' byte ranges must follow each other from 0, no gap, no overlap."""
    position = 0
    for entry in sorted(entries.values(), key=lambda e: (e.begin, e.end)):
        if entry.begin != position:
            raise CheckpointError(f"{path} is corrupted: its header's tensors overlap or leave gaps in the data")
        position = entry.end
    return position


def read_tensors(file: BinaryIO, layout: Layout, path: Path) -> dict[str, torch.Tensor]:
    """Read the data section once, check its SHA-256, and return the tensors as views of it."""
    need = 2 * layout.data_bytes  # the data, and the weights copied out of it
    if need > (available := available_memory()):
        raise CheckpointError(
            f"{path} holds {gigabytes(layout.data_bytes)} of tensors: loading it needs about {gigabytes(need)},"
            f" and {gigabytes(available)} of memory is available"
        )
    data = bytearray(layout.data_bytes)
    view = memoryview(data)
    file.seek(layout.data_start)
    filled = 0
    while filled < len(data):
        count = file.readinto(view[filled:])
        if not count:
            raise CheckpointError(f"{path} is truncated: it became shorter while being read")
        filled += count
    if hashlib.sha256(view).hexdigest() != layout.info.get("sha256"):
        raise CheckpointError(f"{path} is corrupted: its weights do not match their checksum")
    return {name: _view(data, entry) for name, entry in layout.entries.items()}


def _view(data: bytearray, entry: Entry) -> torch.Tensor:
    """entry's tensor, sharing data's memory (writable, so the optimizer can update its state in place).

    Little-endian, as safetensors stores them and as every machine vae-tui runs on reads them.
    """
    count = math.prod(entry.shape)
    if count == 0:  # frombuffer refuses empty tensors
        return torch.empty(entry.shape, dtype=entry.dtype)
    return torch.frombuffer(data, dtype=entry.dtype, count=count, offset=entry.begin).view(entry.shape)
