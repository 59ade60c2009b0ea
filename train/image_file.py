"""The one way vae-tui opens an image file: a regular file, a raster format from an allow-list, its size checked
from the header before anything is decoded, every failure one line.

Pillow picks a decoder from a file's first bytes, not from its name, and some of its plugins hand the data to
another program (EPS and PDF to Ghostscript) or decode far more than their header says (an ICO's embedded PNG).
Only the formats below are ever tried: each is decoded by Pillow itself, and the size a header states bounds the
memory and time its decode takes.
"""

import contextlib
import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from models.errors import UserError
from models.text import printable
from train.run_files import NotRegularFile, open_regular_stat

# Raster formats decoded in-process with no interpreter: photos (JPEG, WEBP), lossless images (PNG, BMP, PPM, TIFF
# for microscopy) and sprites (GIF). Not EPS or PDF (Ghostscript), ICO/ICNS (their frames may be larger than their
# header), nor anything else Pillow can read.
RASTER_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
MAX_PIXELS = 50_000_000  # a 50-megapixel photo decodes to 150 MB in RGB; larger is refused before decoding
MAX_BYTES = 256 << 20  # no raster image a user trains on or explores is this large on disk
# vae-tui's own limit, checked from the header in open_image, replaces Pillow's process-wide one: every image
# vae-tui reads opens here, and Pillow's would refuse a grid vae-tui itself wrote (up to 16384x16384 px).
Image.MAX_IMAGE_PIXELS = None
# What a damaged file makes Pillow's decoders raise, besides OSError (truncated, bad data) and ValueError.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, struct.error, ZeroDivisionError)


class ImageRefused(UserError):
    """A file that vae-tui does not decode: not a regular file, not an allowed format, too large, or damaged."""


def _open_regular(path: Path | str, max_bytes: int) -> int:
    """A read-only descriptor of path once it is known to be a regular, non-empty file of at most max_bytes
    (opened the way run folders' files are: train.run_files, never blocking on a FIFO)."""
    try:
        fd, info = open_regular_stat(path)
    except NotRegularFile:
        raise ImageRefused(f"{printable(str(path))} is not a file") from None
    except OSError as e:
        raise ImageRefused(f"cannot read {printable(str(path))}: {e.strerror or e}") from None
    size = info.st_size
    if size == 0 or size > max_bytes:
        os.close(fd)
        too_large = f"is {size >> 20} MB: larger than an image vae-tui reads ({max_bytes >> 20} MB)"
        raise ImageRefused(f"{printable(str(path))} {'is empty' if size == 0 else too_large}")
    return fd


@contextmanager
def quiet_images() -> Iterator[None]:
    """Pillow's warnings kept from the terminal, for the images opened within."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        yield


@contextmanager
def open_image(
    path: Path | str,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
    formats: tuple[str, ...] = RASTER_FORMATS,
    warnings_kept: bool = False,
) -> Iterator[Image.Image]:
    """path opened as an image whose header has been checked; decode it (convert, load) inside the with block.

    Any refusal, in the opening or in the decode within the block, is an ImageRefused in one line. Pillow's warnings
    (a decompression bomb, a malformed chunk) are kept from the terminal: the size is checked here instead.
    warnings_kept: the caller keeps them already, around many images (quiet_images), which saves each image the
    cost of catching them (a fifth of a small PNG's decode).
    """

    def shown() -> str:  # the path as messages show it: made only for one
        return printable(str(path))

    max_pixels, max_bytes = max_pixels or MAX_PIXELS, max_bytes or MAX_BYTES
    fd = _open_regular(path, max_bytes)
    caught = contextlib.nullcontext() if warnings_kept else quiet_images()
    with os.fdopen(fd, "rb") as file, caught:
        try:
            with Image.open(file, formats=formats) as image:
                width, height = image.size
                if width < 1 or height < 1:
                    raise ImageRefused(f"{shown()} has no pixels ({width}x{height})")
                if width * height > max_pixels:
                    raise ImageRefused(
                        f"{shown()} is {width}x{height}, over {max_pixels / 1e6:g} megapixels: shrink it first"
                    )
                yield image
        except UserError:
            raise
        except UnidentifiedImageError:
            raise ImageRefused(
                f"{shown()} is not an image vae-tui can read ({', '.join(formats)}, told by its content, not its name)"
            ) from None
        except MemoryError:
            raise ImageRefused(f"{shown()} is too large to decode here") from None
        except DECODE_ERRORS as e:
            detail = printable(str(getattr(e, "strerror", None) or e))[:80]
            raise ImageRefused(f"cannot read {shown()}: it is damaged or truncated ({detail})") from None
