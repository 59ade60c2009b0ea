"""Fuzzing the checkpoint loader and the IDX reader: whatever the bytes, only our own errors come out.

A few hundred examples run in the suite; VAE_TUI_FUZZ_EXAMPLES=20000 runs more.
"""

import contextlib
import gzip
import os
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import CheckpointError, DataError, load_checkpoint, save_checkpoint
from tests.conftest import idx_bytes, make_split
from train import data as data_module
from train.data import parse_idx, read_idx_bytes

EXAMPLES = int(os.environ.get("VAE_TUI_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def valid_checkpoint(tmp_path_factory: pytest.TempPathFactory, make_checkpoint: Callable) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "valid.safetensors"
    return save_checkpoint(path, make_checkpoint(resume=True)).read_bytes()


def mutate(data: bytes, edits: list[tuple[int, int, int]], cut: int | None) -> bytes:
    """Apply (position, kind, byte) edits: 0 overwrites, 1 inserts, 2 deletes; then maybe truncate."""
    out = bytearray(data)
    for position, kind, value in edits:
        if not out:
            break
        position %= len(out)
        if kind == 0:
            out[position] = value
        elif kind == 1:
            out.insert(position, value)
        else:
            del out[position]
    return bytes(out[:cut] if cut is not None else out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 2), st.integers(0, 255)), max_size=8)
HEADER_EDITS = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 2), st.integers(32, 126)), min_size=1, max_size=4
)


def load_only_our_errors(path: Path, blob: bytes) -> None:
    path.write_bytes(blob)
    for with_resume in (False, True):
        with contextlib.suppress(CheckpointError):
            load_checkpoint(path, with_resume=with_resume)


@FUZZ
@given(blob=st.binary(max_size=4096))
def test_checkpoint_random_bytes(tmp_path: Path, blob: bytes) -> None:
    load_only_our_errors(tmp_path / "random.safetensors", blob)


@FUZZ
@given(edits=EDITS, cut=st.none() | st.integers(0, 1 << 24))
def test_checkpoint_mutations(tmp_path: Path, valid_checkpoint: bytes, edits: list, cut: int | None) -> None:
    load_only_our_errors(tmp_path / "mutated.safetensors", mutate(valid_checkpoint, edits, cut))


@FUZZ
@given(edits=HEADER_EDITS)
def test_checkpoint_header_mutations(tmp_path: Path, valid_checkpoint: bytes, edits: list) -> None:
    """Printable edits inside the JSON header: the weights' checksum still matches, the metadata does not."""
    load_only_our_errors(
        tmp_path / "header.safetensors", mutate(valid_checkpoint, [(8 + p, k, v) for p, k, v in edits], None)
    )


def valid_idx(kind: str) -> bytes:
    images, labels = make_split(20, seed=0)
    return idx_bytes(images if kind == "images" else labels)


@FUZZ
@given(blob=st.binary(max_size=2048), ndim=st.sampled_from([1, 3]))
def test_idx_random_bytes(blob: bytes, ndim: int) -> None:
    with contextlib.suppress(DataError):
        parse_idx(blob, Path("fuzz"), ndim)


@FUZZ
@given(kind=st.sampled_from(["images", "labels"]), gz=st.booleans(), edits=EDITS, cut=st.none() | st.integers(0, 20000))
def test_idx_mutations(tmp_path: Path, kind: str, gz: bool, edits: list, cut: int | None) -> None:
    content = valid_idx(kind)
    name = "train-images-idx3-ubyte" if kind == "images" else "train-labels-idx1-ubyte"
    data = gzip.compress(content, mtime=0) if gz else content
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(mutate(data, edits, cut))
    # MNIST with no MD5 known, so that every mutation reaches gunzip and the IDX parser
    with contextlib.suppress(DataError), mock.patch.object(data_module, "_torchvision_md5", lambda dataset: {}):
        parse_idx(read_idx_bytes(path, "mnist"), path, 3 if kind == "images" else 1)
