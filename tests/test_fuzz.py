"""Fuzzing the checkpoint loader, its metadata, the training settings and the IDX reader: only our own errors come out.

A few hundred examples run in the suite; VAE_TUI_FUZZ_EXAMPLES=20000 runs more.
"""

import contextlib
import copy
import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import NamedTuple
from unittest import mock

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import Checkpoint, CheckpointError, DataError, UserError, build_model, load_checkpoint, save_checkpoint
from models.checkpoint import METADATA_KEY, _data_offset
from models.limits import MAX_EPOCHS, MAX_SEED, MAX_SIZE
from tests.conftest import TINY_SETTINGS, idx_bytes, make_split
from train import data as data_module
from train.data import parse_idx, read_idx_bytes
from train.settings import TrainSettings

EXAMPLES = int(os.environ.get("VAE_TUI_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def valid_checkpoint(tmp_path_factory: pytest.TempPathFactory, make_checkpoint: Callable) -> bytes:
    """A resumable checkpoint whose training settings are complete and match its model."""
    checkpoint = make_checkpoint(resume=True)
    checkpoint.training = asdict(TINY_SETTINGS)
    return save_checkpoint(tmp_path_factory.mktemp("fuzz") / "valid.safetensors", checkpoint).read_bytes()


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
    """Load blob as a checkpoint, weights only and to resume; what loads must also resume and train a step."""
    path.write_bytes(blob)
    for with_resume in (False, True):
        with contextlib.suppress(UserError):
            checkpoint = load_checkpoint(path, with_resume=with_resume)
            if with_resume:
                resume_one_step(checkpoint)


def resume_one_step(checkpoint: Checkpoint) -> None:
    """What `train --resume` does with a checkpoint before its first batch, then one Adam step as the Trainer takes it
    (fused, on the CPU); raises only UserError for what it refuses."""
    training = TrainSettings.from_checkpoint(checkpoint)
    model = build_model(training.model_config(num_classes=10))
    model.load_state_dict(checkpoint.model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, fused=True)
    try:  # as Trainer._restore: a state of another shape is refused there in one line
        optimizer.load_state_dict(checkpoint.resume.optimizer)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(str(e)) from None
    for group in optimizer.param_groups:
        group.update({"fused": True, "foreach": None, "capturable": False})
    for name, state in checkpoint.resume.tensors.items():
        if name.startswith("rng") and name.endswith(".cpu"):
            torch.Generator().set_state(state)
    model.loss(torch.rand(4, 784), torch.arange(4))[0].backward()
    optimizer.step()


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


# --- the metadata's fields: types, ranges, huge integers, markup and control characters -----

HUGE = "HUGE_INTEGER"  # written into the JSON text as 5000 digits: json.dumps cannot write such an int
HOSTILE_STRINGS = [
    "",
    "[/]",
    "[link=http://x]a[/link]",
    "\x1b]2;pwned\x07",
    "\x1b[2J",
    "\x9b31m",
    "\u202eevil",
    "\ud800",
]
HOSTILE_STRINGS += ["128", "1e-3", "abc", "vae", "cvae", "mnist", "fashion-mnist", "NaN", HUGE, "-" + HUGE]
BOUNDS = [0, 1, -1, 2, 9, 10, 784, 2**31, MAX_SIZE, MAX_SIZE + 1, MAX_EPOCHS + 1, MAX_SEED, MAX_SEED + 1, 2**64, 10**30]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(BOUNDS),
    st.floats(allow_subnormal=False),  # train.loop flushes denormals to zero (hypothesis checks)
    st.sampled_from(HOSTILE_STRINGS),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
FIELDS = [
    ("format_version",), ("model",), ("model", "kind"), ("model", "input_dim"), ("model", "hidden_dim"),
    ("model", "latent_dim"), ("model", "num_classes"), ("dataset",), ("class_names",), ("class_names", 0),
    ("class_names", 9), ("epoch",), ("metrics",), ("metrics", "test_loss"), ("training",),
    *[("training", f.name) for f in fields(TrainSettings)], ("package_version",), ("created",), ("optimizer",),
    ("optimizer", "param_groups"), ("optimizer", "param_groups", 0), ("optimizer", "scalars"),
    ("optimizer", "scalars", "0"), ("optimizer", "scalars", "0", "step"),
    *[("optimizer", "param_groups", 0, key) for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")],
    *[("optimizer", "param_groups", 0, key) for key in ("foreach", "fused", "capturable", "params", "extra")],
    ("resume",), ("resume", "epoch"), ("resume", "step"), ("resume", "best_epoch"), ("resume", "best_test_loss"),
]  # fmt: skip
EDIT = st.tuples(st.sampled_from(FIELDS), st.booleans(), VALUES)  # (field, delete it?, else its new value)


class Parts(NamedTuple):
    """A checkpoint's tensors and metadata, to edit and sign again; shown short in hypothesis' reports."""

    tensors: dict[str, torch.Tensor]
    info: dict

    def __repr__(self) -> str:
        return "<the valid checkpoint's tensors and metadata>"


@pytest.fixture(scope="module")
def valid_parts(valid_checkpoint: bytes) -> Parts:
    """The valid checkpoint's tensors and metadata."""
    header = json.loads(valid_checkpoint[8 : _data_offset(valid_checkpoint)])
    return Parts(safetensors.torch.load(valid_checkpoint), json.loads(header["__metadata__"][METADATA_KEY]))


def edited(info: dict, edits: list[tuple[tuple, bool, object]]) -> dict:
    """A copy of info with each edit applied where its path still leads to an object or list."""
    info = copy.deepcopy(info)
    for path, delete, value in edits:
        parent = info
        for key in path[:-1]:
            parent = parent[key] if isinstance(parent, dict | list) and _has(parent, key) else None
        if isinstance(parent, dict | list) and (_has(parent, path[-1]) or isinstance(parent, dict)):
            if delete and _has(parent, path[-1]):
                del parent[path[-1]]
            elif not delete:
                parent[path[-1]] = value
    return info


def _has(container: dict | list, key: object) -> bool:
    return key in container if isinstance(container, dict) else isinstance(key, int) and key < len(container)


def signed(tensors: dict, info: dict) -> bytes:
    """A checkpoint of tensors with metadata info, its checksum matching (the HUGE strings as 5000-digit integers)."""
    unsigned = safetensors.torch.save(tensors)
    info = {**info, "sha256": hashlib.sha256(unsigned[_data_offset(unsigned) :]).hexdigest()}
    text = json.dumps(info).replace(f'"{HUGE}"', "9" * 5000).replace(f'"-{HUGE}"', "-" + "9" * 5000)
    return safetensors.torch.save(tensors, metadata={METADATA_KEY: text})


@FUZZ
@given(edits=st.lists(EDIT, min_size=1, max_size=3))
def test_checkpoint_metadata_fields(tmp_path: Path, valid_parts: Parts, edits: list) -> None:
    """Fields replaced or deleted, the file signed again: the loader and the resume see values a buggy or hostile
    writer could leave."""
    tensors, info = valid_parts
    load_only_our_errors(tmp_path / "fields.safetensors", signed(tensors, edited(info, edits)))


TENSOR_NAMES = ["resume.rng_now.cpu", "resume.rng_epoch_start.cpu", "resume.rng_now.cuda", "resume.rng_now.mps"]
TENSOR_NAMES += [
    "resume.loss_sum",
    "optimizer.0.step",
    "optimizer.0.exp_avg",
    "optimizer.9.exp_avg_sq",
    "class_centroids",
]
TENSOR_NAMES += ["model.to_mu.bias", "optimizer.10.step", "optimizer.0.max_exp_avg_sq", "resume", "junk"]
DTYPES = [torch.uint8, torch.float32, torch.float64, torch.int64, torch.bool, torch.float16]


@FUZZ
@given(
    name=st.sampled_from(TENSOR_NAMES),
    delete=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 6000), max_size=2),
    fill=st.sampled_from([0.0, 1.0, -1.0, float("nan"), 255.0]),
)
def test_checkpoint_resume_tensors(
    tmp_path: Path,
    valid_parts: Parts,
    name: str,
    delete: bool,
    dtype: torch.dtype,
    shape: list,
    fill: float,
) -> None:
    """RNG states, Adam's state and weights replaced by tensors of another dtype, shape or content, or removed."""
    tensors, info = valid_parts
    tensors = dict(tensors)
    if delete:
        tensors.pop(name, None)
    elif 0 < torch.Size(shape).numel() <= 1 << 16 or not shape:
        tensors[name] = torch.full(shape, fill).to(dtype)
    load_only_our_errors(tmp_path / "tensors.safetensors", signed(tensors, info))


SETTING_NAMES = [f.name for f in fields(TrainSettings)]


@FUZZ
@given(
    changes=st.dictionaries(
        st.sampled_from(SETTING_NAMES) | st.text(max_size=4), VALUES | st.just(10**5000), max_size=4
    ),
    drop=st.lists(st.sampled_from(SETTING_NAMES), max_size=2),
)
def test_train_settings_from_metadata(changes: dict, drop: list) -> None:
    """Settings as read from a checkpoint: refused with a UserError, or every field of its type and in its range."""
    values = {**asdict(TINY_SETTINGS), **changes}
    for name in drop:
        values.pop(name, None)
    try:
        training = TrainSettings.from_dict(values)
    except UserError:
        return
    assert type(training.lr) is float and training.lr > 0
    sizes = (training.batch_size, training.latent_dim, training.hidden_dim)
    assert all(type(n) is int and 0 < n <= MAX_SIZE for n in sizes) and 0 < training.epochs <= MAX_EPOCHS
    assert type(training.seed) is int and 0 <= training.seed <= MAX_SEED
    torch.Generator().manual_seed(training.seed)
    training.model_config(num_classes=10)


# --- PNG text records (sample --from-png) ------------------------------------------------------------------------

RECORD = {
    "format": 1, "checkpoint": "/x.safetensors", "sha256": "0" * 64, "kind": "vae",
    "class": [None, None], "z": [[0.5, -1.0], None], "columns": 2, "scale": 4,
}  # fmt: skip
RECORD_FIELDS = [(key,) for key in RECORD] + [("z", 0), ("z", 0, 0), ("class", 0)]


@pytest.fixture(scope="module")
def blank_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("records") / "blank.png"
    Image.new("L", (4, 4)).save(path)
    return path


@FUZZ
@given(
    edits=st.lists(st.tuples(st.sampled_from(RECORD_FIELDS), st.booleans(), VALUES), max_size=3),
    depth=st.sampled_from([0, 0, 0, 50_000]),
    huge=st.booleans(),
)
def test_png_records(tmp_path: Path, blank_png: Path, edits: list, depth: int, huge: bool) -> None:
    """A vae-tui record edited, nested deeply or carrying huge integers: read_export reads it or says it is garbled."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from vae_tui.exports import read_export

    text = json.dumps(edited(RECORD, edits)).replace(f'"{HUGE}"', "9" * 401)
    if huge:
        text = text.replace("0.5", "1" + "0" * 400)
    if depth:
        text = "[" * depth + text + "]" * depth
    info = PngInfo()
    info.add_text("vae-tui", text)
    png = tmp_path / "record.png"
    with Image.open(blank_png) as image:
        image.save(png, pnginfo=info)
    try:
        export = read_export(png)
    except UserError as e:
        assert "\n" not in str(e) and "\x1b" not in str(e)
        return
    assert all(cell is None or all(abs(v) <= 1e4 for v in cell) for cell in export.z)


# --- run folders: metrics.jsonl rows and layouts (vae-tui runs) --------------------------------------------------

METRIC_ROW = {"epoch": 1, "train_loss": 286.3, "test_loss": 262.6, "test_kl": 15.7, "threads": 2}
METRIC_FIELDS = [(key,) for key in METRIC_ROW]
RUN_ENTRIES = ["metrics.jsonl", "last.safetensors", "best.safetensors", ".lock", "reconst-1.png", "other"]
ENTRY_KINDS = st.sampled_from(["bytes", "folder", "link to /dev/zero", "dangling link", "link to the run", "fifo"])


def checked_run(folder: Path) -> None:
    """scan_run on folder gives a Run whose cells are printable and whose row is standard JSON."""
    from models.text import CONTROL
    from train.runs import row_cells, scan_run

    run = scan_run(folder)
    assert not any(CONTROL.search(cell) for cell in row_cells(run))
    json.dumps(run.as_json(), allow_nan=False)
    assert all(math.isfinite(row["test_loss"]) and math.isfinite(row["train_loss"]) for row in run.metrics)


@FUZZ
@given(
    rows=st.lists(st.lists(st.tuples(st.sampled_from(METRIC_FIELDS), st.booleans(), VALUES), max_size=3), max_size=4),
    tail=st.sampled_from(["", "cut", "deep", "escape", "digits"]),
)
def test_metrics_rows(valid_checkpoint: bytes, rows: list, tail: str) -> None:
    """metrics.jsonl rows with fields replaced or deleted (huge integers, NaN, markup, control characters), and a
    last line cut, nested deeply or of digits: the listing keeps the good rows before a bad one, and never fails."""
    tail = {"": "", "cut": "{", "deep": "[" * 50_000, "escape": "\x1b]2;x\x07", "digits": "9" * 5000}[tail]
    folder = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
    (folder / "last.safetensors").write_bytes(valid_checkpoint)
    lines = [json.dumps(edited({**METRIC_ROW, "epoch": i + 1}, edits)) for i, edits in enumerate(rows)]
    lines = [line.replace(f'"{HUGE}"', "9" * 401) for line in lines]
    (folder / "metrics.jsonl").write_text("\n".join([*lines, tail]) + "\n")
    try:
        checked_run(folder)
    finally:
        shutil.rmtree(folder)


@FUZZ
@given(layout=st.dictionaries(st.sampled_from(RUN_ENTRIES), st.tuples(ENTRY_KINDS, st.binary(max_size=64)), max_size=6))
def test_run_folder_layouts(layout: dict) -> None:
    """A run folder's files as folders, FIFOs, links to /dev/zero, to the folder itself or to nothing, or bytes:
    scan_run answers at once (a FIFO would block a plain open) with a state, never an exception."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-run-"))
    for name, (kind, data) in layout.items():
        path = folder / name
        if kind == "bytes":
            path.write_bytes(data)
        elif kind == "folder":
            path.mkdir()
        elif kind == "link to /dev/zero":
            path.symlink_to("/dev/zero")
        elif kind == "dangling link":
            path.symlink_to(folder / "nothing")
        elif kind == "link to the run":
            path.symlink_to(folder)
        else:
            os.mkfifo(path)
    try:
        checked_run(folder)
    finally:
        shutil.rmtree(folder)
