"""Robust image reading and atomic writing.

Reading turns *any* failure (missing file, damaged data, unsupported format,
decoder crash, absurd dimensions) into a one-line ``ColorizerError`` that names
the file, so a batch run can report the bad photo and go on.  Writing never
leaves a half-written photo behind: the encoded bytes go through
hsvcolorizer.atomic.atomic_write (a temporary file in the target folder,
flushed, then renamed over the target in one step).  It also holds the
program's one 16-to-8-bit conversion (to_8bit) and its one answer to "is this
photo gray?" (is_grayscale).

Pillow decodes almost everything, but it silently reduces 16-bit colour PNG and
TIFF to 8 bits, so those (and only those) are decoded with OpenCV.  This module
has no Qt dependency so the CLI and the tests can use it headless.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from hsvcolorizer.atomic import atomic_write, os_reason as _os_reason
from hsvcolorizer.choices import OUTPUT_EXTENSIONS, SAME_FORMAT
from hsvcolorizer.errors import ColorizerError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "GRAY_CHROMA_THRESHOLD",
    "GRAY_CHECK_SIDE",
    "READ_EXTENSIONS",
    "WRITE_FORMATS",
    "Photo",
    "decode_image",
    "format_extensions",
    "gray_check_thumbnail",
    "is_grayscale",
    "iter_image_files",
    "mean_chroma",
    "output_path_for",
    "pixel_limit",
    "read_image",
    "to_8bit",
    "write_image",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS: int = 150_000_000
_MAX_PIXELS_ENV = "HSVCOLORIZER_MAX_PIXELS"

READ_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
)

# Output format name -> the extension written (hsvcolorizer.choices).
WRITE_FORMATS: dict[str, str] = dict(OUTPUT_EXTENSIONS)

# Extensions write_image accepts, mapped to the encoder that handles them.
_WRITE_ENCODERS: dict[str, str] = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".webp": "webp",
}

# Only these Pillow decoders are ever tried.  Pillow would otherwise sniff
# dozens of obscure formats, each one more decoder code exposed to whatever
# bytes a user (or the clipboard) hands us.  MPO is how older Pillow versions
# name the JPEGs many cameras write (JPEG plus an embedded preview).
_PILLOW_FORMATS = ("JPEG", "MPO", "PNG", "TIFF", "WEBP", "BMP", "GIF")
_FORMAT_NAMES = "JPEG, PNG, TIFF, WebP, BMP or GIF"

# We enforce our own, configurable pixel limit from the header before any
# decoding, with a message that says how to raise it.  Pillow's built-in bomb
# check would fire first (a warning above ~89 MP, an exception above ~179 MP)
# and make the outcome depend on whoever last touched this global, so turn it
# off.  decode_image still maps DecompressionBombError in case another module
# switches it back on.
Image.MAX_IMAGE_PIXELS = None
# We rely on Pillow's ImageFile.LOAD_TRUNCATED_IMAGES staying False (its
# default): then a truncated file fails in load() instead of coming back
# padded with gray.  Do not turn it on anywhere in this program.

# Every decoder complaint becomes one ColorizerError line, so the decoders'
# own chatter on stderr (OpenCV's "[ WARN:0@...]" log lines, Pillow's
# "Corrupt EXIF data" warnings and logged errors) would only add noise to it
# and break the CLI's one-line errors.  libpng prints its errors itself,
# which _check_png_chunks prevents by refusing damaged PNGs before OpenCV.
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - OpenCV built without its logging module
    pass
logging.getLogger("PIL").setLevel(logging.CRITICAL)
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")

# EXIF orientation tag.
_ORIENTATION = 0x0112

# "Is this photo gray?" has one answer everywhere: training leaves gray photos
# out (data.filter_grayscale), evaluation skips them, the application says
# whether an opened photo has colour (Photo.is_color). A photo is gray when
# the mean of max(R,G,B) - min(R,G,B) over its GRAY_CHECK_SIDE-px thumbnail
# (area-averaged, 8 bits) is below GRAY_CHROMA_THRESHOLD levels; a one-channel
# photo is always gray. A mean, not the largest difference, so that JPEG and
# scanner noise, a tinted border or a small coloured stamp on a black-and-white
# print do not make it a colour photo. Measured on ../shared/data/colour/train
# (23,858 photos): its 36 gray and near-gray photos score 0 to 0.22; the least
# colourful real colour photos (dim, brownish scenes) start at 1.55, and they
# should still be learned from.
GRAY_CHROMA_THRESHOLD = 1.0
GRAY_CHECK_SIDE = 96

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Photo:
    """A decoded image, ready for processing.

    ``pixels`` is HxWx3 RGB or HxW gray, uint8 or uint16 (16-bit sources are
    kept at 16 bits).  ``alpha`` is HxW with the same dtype, or None.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    path: Path | None = None
    # The source's EXIF block, with its orientation already set to 1 (the
    # pixels are upright), and its ICC colour profile; None when it had none.
    # write_image carries them into JPEG and TIFF outputs.
    exif: bytes | None = None
    icc_profile: bytes | None = None

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def is_color(self) -> bool:
        """True if the image has real colour, not just gray stored as RGB:
        `not is_grayscale(pixels)`, the answer training gives too."""
        return not is_grayscale(self.pixels)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order people and Pillow use."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


# --------------------------------------------------------------------------
# 16 to 8 bits; gray or colour
# --------------------------------------------------------------------------


def to_8bit(arr: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 by rounding x / 257 (65535 -> 255, 257 k -> k); uint8 as is.

    The one 16-to-8-bit conversion of the program: what the screen shows, the
    8-bit files written (JPEG, WebP), the training crops and the evaluation's
    originals all come from it, so they never differ by a level.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype != np.uint16:
        raise ValueError(f"to_8bit takes uint8 or uint16, not {arr.dtype}")
    # x/257 is never exactly k + 0.5 for integer x, so this rounds correctly.
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def gray_check_thumbnail(pixels: np.ndarray) -> np.ndarray:
    """HxW or HxWx3(+) uint8/uint16 pixels -> the 8-bit picture is_grayscale
    judges: long side at most GRAY_CHECK_SIDE (area-averaged, never enlarged)."""
    px = np.asarray(pixels)
    if px.ndim == 3:
        px = px[..., :3]
    h, w = px.shape[:2]
    scale = GRAY_CHECK_SIDE / max(h, w, 1)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        px = cv2.resize(np.ascontiguousarray(px), size, interpolation=cv2.INTER_AREA)
    return to_8bit(px)


def mean_chroma(rgb: np.ndarray) -> float:
    """HxWx3 uint8 RGB -> mean of max(R,G,B) - min(R,G,B) in 8-bit levels."""
    x = np.asarray(rgb)[..., :3].astype(np.int16)
    return float((x.max(2) - x.min(2)).mean())


def is_grayscale(pixels: np.ndarray) -> bool:
    """The one answer to "is this photo gray?" (see GRAY_CHROMA_THRESHOLD).

    pixels: HxW (always gray) or HxWx3 RGB, uint8 or uint16, any size.
    """
    px = np.asarray(pixels)
    if px.ndim != 3 or px.shape[2] < 3 or px.size == 0:
        return True
    return mean_chroma(gray_check_thumbnail(px)) < GRAY_CHROMA_THRESHOLD


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str], max_pixels: int | None = None) -> Photo:
    """Read an image file; any failure raises ColorizerError naming the file.

    ``max_pixels`` defaults to $HSVCOLORIZER_MAX_PIXELS or DEFAULT_MAX_PIXELS.
    """
    path = Path(path)
    # Validate the limit first so a bad setting is reported even for a
    # missing file.
    limit = _pixel_limit(max_pixels)
    if path.is_dir():
        # Checked up front because Windows reports a folder as "permission
        # denied", which would send the user looking in the wrong place.
        raise ColorizerError(f"cannot read {path}: it is a folder, not a photo")
    try:
        # Bytes, not a path, go to the decoders: cv2.imread cannot open
        # non-ASCII paths on Windows, and one read gives both decoders the
        # same data.
        data = path.read_bytes()
    except FileNotFoundError:
        raise ColorizerError(f"cannot read {path}: the file does not exist") from None
    except PermissionError:
        raise ColorizerError(f"cannot read {path}: permission denied") from None
    except MemoryError:
        raise ColorizerError(f"cannot read {path}: not enough memory to load the file") from None
    except OSError as exc:
        raise ColorizerError(f"cannot read {path}: {_os_reason(exc)}") from None
    photo = decode_image(data, str(path), limit)
    photo.path = path
    return photo


def decode_image(data: bytes, name: str = "<memory>", max_pixels: int | None = None) -> Photo:
    """Decode image bytes (from a file, the clipboard, a fuzzer...).

    ``name`` is only used in error messages.  The returned Photo has no path.
    """
    limit = _pixel_limit(max_pixels)
    if not data:
        raise ColorizerError(f"cannot read {name}: the file is empty")
    try:
        pixels, alpha, exif, icc = _decode(bytes(data), name, limit)
    except ColorizerError:
        raise
    except Image.DecompressionBombError:
        # Only reachable if someone re-enabled Pillow's own limit.
        raise ColorizerError(
            f"cannot read {name}: the image is too large for the image library's safety limit"
        ) from None
    except UnidentifiedImageError:
        raise ColorizerError(
            f"cannot read {name}: the file is not a {_FORMAT_NAMES} image or is damaged"
        ) from None
    except MemoryError:
        raise ColorizerError(f"cannot read {name}: not enough memory to decode the image") from None
    except Exception:
        # Decoders signal damaged input with all sorts of exceptions
        # (OSError, SyntaxError, ValueError, EOFError, struct.error,
        # cv2.error, IndexError...), and a crafted file can provoke more.
        # None of them is a bug in the caller: it is always a bad file.
        raise ColorizerError(f"cannot read {name}: the file is not an image or is damaged") from None
    return Photo(pixels=pixels, alpha=alpha, path=None, exif=exif, icc_profile=icc)


def _decode(data: bytes, name: str, limit: int) -> tuple[np.ndarray, np.ndarray | None, bytes | None, bytes | None]:
    """Decode ``data`` to (pixels, alpha, EXIF, ICC profile); may raise
    anything, decode_image sorts it out."""
    with Image.open(io.BytesIO(data), formats=_pillow_formats()) as im:
        # Image.open has parsed only the header, so this check costs nothing
        # however large the image claims to be.
        _check_size(im.width, im.height, limit, name)
        opencv_kind = _needs_opencv(im, data)
        if opencv_kind is not None:
            orientation = _orientation_without_decoding(im)
            if im.format == "PNG":
                _check_png_chunks(data)
            if im.format == "TIFF":
                # OpenCV's TIFF decoder rotates by the Orientation tag itself,
                # whatever the imread flags say; neutralise the tag so the
                # rotation is applied exactly once, below, as for every path.
                data = _tiff_without_orientation(data)
            pixels, alpha = _decode_with_opencv(data, gray_alpha=opencv_kind == "gray_alpha")
        else:
            im.load()  # decode now, inside the caller's try, so damage raises here
            orientation = _orientation(im)
            pixels, alpha = _pillow_to_arrays(im)
        exif, icc = _metadata(im)
    pixels = _apply_orientation(pixels, orientation)
    if alpha is not None:
        alpha = _apply_orientation(alpha, orientation)
    return pixels, alpha, exif, icc


# The EXIF tags of the first IFD that describe the photo rather than how its
# pixels are stored (which is why a TIFF's strip offsets, sizes, compression...
# and a JPEG's thumbnail, now gray and stale, are not carried into outputs).
_EXIF_KEPT_TAGS = (
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    0x0112,  # Orientation (set to 1)
    0x011A, 0x011B, 0x0128,  # XResolution, YResolution, ResolutionUnit
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x8298,  # Copyright
)
_EXIF_KEPT_IFDS = (0x8769, 0x8825)  # the Exif and GPS sub-IFDs


def _metadata(im: Image.Image) -> tuple[bytes | None, bytes | None]:
    """(EXIF block with orientation 1, ICC profile) of an opened image, each
    None when absent or unreadable; never decodes the pixels."""
    icc = im.info.get("icc_profile")
    icc = bytes(icc) if isinstance(icc, (bytes, bytearray)) and len(icc) >= 128 else None
    try:
        if im.format == "PNG":  # see _orientation_without_decoding
            source = Image.Exif()
            raw = im.info.get("exif")
            if raw:
                source.load(raw)
        else:
            source = im.getexif()
        kept = Image.Exif()
        for tag in _EXIF_KEPT_TAGS:
            if tag in source:
                kept[tag] = source[tag]
        for tag in _EXIF_KEPT_IFDS:
            ifd = source.get_ifd(tag)
            if ifd:
                kept[tag] = dict(ifd)
        if not len(kept):
            return None, icc
        if _ORIENTATION in kept:
            kept[_ORIENTATION] = 1  # the pixels are upright now
        return kept.tobytes(), icc
    except Exception:
        return None, icc  # damaged EXIF: the photo itself is fine


def _pillow_formats() -> list[str]:
    """The allowed Pillow formats that this Pillow version registers.

    Image.open fails on a `formats` entry it does not know, and versions
    differ (some register MPO separately, newer ones fold it into JPEG).
    """
    Image.init()  # register all plugins; a no-op after the first call
    return [fmt for fmt in _PILLOW_FORMATS if fmt in Image.OPEN]


def pixel_limit() -> int:
    """The pixel limit in force ($HSVCOLORIZER_MAX_PIXELS or the default), for
    code that opens images with Pillow itself; raises ColorizerError if the
    setting is not a positive whole number."""
    return _pixel_limit(None)


def _pixel_limit(max_pixels: int | None) -> int:
    """The pixel limit in force: argument, then environment, then default."""
    if max_pixels is None:
        raw = os.environ.get(_MAX_PIXELS_ENV, "").strip()
        if not raw:
            return DEFAULT_MAX_PIXELS
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise ColorizerError(
                f"{_MAX_PIXELS_ENV} must be a positive whole number of pixels, not {raw!r}"
            )
        return value
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ColorizerError(f"the pixel limit must be a positive whole number, not {max_pixels!r}")
    return max_pixels


def _check_size(width: int, height: int, limit: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise ColorizerError(f"cannot read {name}: the image has no pixels ({width}x{height})")
    if width * height > limit:
        raise ColorizerError(
            f"{name} is {width}x{height} pixels ({_megapixels(width * height)} megapixels), "
            f"above the limit of {_megapixels(limit)} megapixels; "
            f"set {_MAX_PIXELS_ENV} to allow more"
        )


def _megapixels(pixels: int) -> str:
    mp = pixels / 1_000_000
    # Whole numbers for real photos; a couple of digits for tiny test limits
    # so they do not print as "0 megapixels".
    return f"{mp:.0f}" if mp >= 10 else f"{mp:.2g}"


def _needs_opencv(im: Image.Image, data: bytes) -> str | None:
    """Say whether Pillow would lose bits on this image, and of which kind.

    Returns None (use Pillow), "color" or "gray_alpha".  Pillow keeps 16-bit
    *gray* (mode I;16) but reduces 16-bit colour and 16-bit gray+alpha to 8
    bits, so those go to OpenCV.
    """
    if im.format == "PNG" and data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        bit_depth, color_type = data[24], data[25]
        if bit_depth == 16 and color_type in (2, 6):  # RGB, RGBA
            return "color"
        if bit_depth == 16 and color_type == 4:  # gray + alpha
            return "gray_alpha"
        return None
    if im.format == "TIFF":
        tags = getattr(im, "tag_v2", {})
        bits = tags.get(258, (1,))  # BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        samples = tags.get(277, 1)  # SamplesPerPixel
        if max(bits) == 16 and samples >= 2:
            photometric = tags.get(262, 2)  # 0/1 = gray, 2 = RGB
            return "gray_alpha" if photometric in (0, 1) and samples == 2 else "color"
    return None


def _check_png_chunks(data: bytes) -> None:
    """Raise ValueError unless every chunk up to IEND is whole and its CRC right.

    Run before OpenCV, whose libpng prints "libpng error: ..." on stderr for
    a cut or damaged file; Pillow's own PNG reader checks the same itself.
    Cheap: CRC-32 runs at memory speed and nothing is decompressed.
    """
    view = memoryview(data)  # slices of a view are not copies
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise ValueError("PNG file is truncated")
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("PNG file is truncated")
        kind = data[pos + 4 : pos + 8]
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[pos + 4 : end - 4]) & 0xFFFFFFFF != crc:
            raise ValueError(f"PNG chunk {kind!r} is damaged")
        if kind == b"IEND":
            return
        pos = end


def _decode_with_opencv(data: bytes, gray_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    # IMREAD_UNCHANGED keeps 16 bits and alpha, and ignores EXIF orientation,
    # which the caller applies exactly once for both decoders.
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:  # OpenCV reports damaged data by returning None
        raise ValueError("OpenCV could not decode the image")
    decoded = _to_supported_dtype(decoded)
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[..., 0]
    if decoded.ndim == 2:
        return np.ascontiguousarray(decoded), None
    channels = decoded.shape[2]
    if gray_alpha:
        # OpenCV expands gray+alpha to BGRA; the file is gray, keep it gray.
        alpha = decoded[..., 3] if channels == 4 else decoded[..., 1]
        return np.ascontiguousarray(decoded[..., 0]), np.ascontiguousarray(alpha)
    if channels == 4:
        rgba = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    if channels == 3:
        return np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)), None
    raise ValueError(f"unexpected channel count {channels}")


def _pillow_to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert a loaded Pillow image to (pixels, alpha) in our layout."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        # Palette transparency becomes a real alpha channel.
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "La":
        im = im.convert("LA")  # un-premultiply
    elif mode == "RGBa":
        im = im.convert("RGBA")  # un-premultiply
    elif mode in ("I", "F") or mode.startswith("I;16"):
        return _to_supported_dtype(np.asarray(im)), None
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        # CMYK (Pillow undoes Adobe's inverted CMYK in the JPEG decoder),
        # YCbCr, RGBX, LAB, HSV...: Pillow knows how to make RGB of them.
        im = im.convert("RGB")

    arr = np.asarray(im)
    if im.mode == "LA":
        return np.ascontiguousarray(arr[..., 0]), np.ascontiguousarray(arr[..., 1])
    if im.mode == "RGBA":
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    # np.asarray of a Pillow image may be a read-only view; callers expect
    # an ordinary array they own.
    return np.array(arr, copy=True, order="C"), None


def _to_supported_dtype(arr: np.ndarray) -> np.ndarray:
    """Bring any decoded sample type to uint8 or native uint16."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "f":
        data = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=65535.0, neginf=0.0)
        # Float images are usually normalised to 0..1; anything else is
        # taken as already being in 16-bit units.
        if data.size and data.min() >= 0.0 and data.max() <= 1.0:
            data = data * 65535.0
        return np.clip(np.rint(data), 0, 65535).astype(np.uint16)
    if arr.dtype.kind in "iu":
        # Covers big-endian I;16B (byte-swapped into native order here), 32-bit
        # "I" images and signed samples; out-of-range values are clipped.
        if arr.dtype.kind == "u" and arr.dtype.itemsize <= 2:
            return arr.astype(np.uint16)
        return np.clip(arr, 0, 65535).astype(np.uint16)
    raise ValueError(f"unsupported sample type {arr.dtype}")


def _orientation(im: Image.Image) -> int:
    """EXIF orientation (1..8) of a Pillow image; 1 if absent or unreadable."""
    try:
        return _valid_orientation(im.getexif().get(_ORIENTATION, 1))
    except Exception:
        # Damaged EXIF is common in real photos; the pixels themselves are
        # fine, so show them unrotated rather than refusing the photo.
        return 1


def _orientation_without_decoding(im: Image.Image) -> int:
    """Like _orientation, but never lets Pillow decode the pixels.

    Pillow's PNG getexif() decodes the whole image when the eXIf chunk is not
    before the image data; on the OpenCV path that would be a wasted decode.
    """
    if im.format == "PNG":
        raw = im.info.get("exif")
        if not raw:
            return 1
        try:
            exif = Image.Exif()
            exif.load(raw)
            return _valid_orientation(exif.get(_ORIENTATION, 1))
        except Exception:
            return 1  # damaged EXIF: see _orientation
    return _orientation(im)  # TIFF: the tag comes from the header already read


def _valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _tiff_without_orientation(data: bytes) -> bytes:
    """Copy of TIFF ``data`` with the first image's Orientation set to 1.

    Returns ``data`` unchanged if there is no such tag or the header cannot
    be followed (then the decoder will complain about it anyway).
    """
    byte_order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if byte_order is None:
        return data
    try:
        (magic,) = struct.unpack_from(byte_order + "H", data, 2)
        if magic == 42:  # classic TIFF: 16-bit entry count, 12-byte entries
            (ifd,) = struct.unpack_from(byte_order + "I", data, 4)
            count_format, entry_size, value_at = "H", 12, 8
        elif magic == 43:  # BigTIFF: 64-bit count and offsets, 20-byte entries
            (ifd,) = struct.unpack_from(byte_order + "Q", data, 8)
            count_format, entry_size, value_at = "Q", 20, 12
        else:
            return data
        (count,) = struct.unpack_from(byte_order + count_format, data, ifd)
        first_entry = ifd + struct.calcsize(count_format)
        for index in range(count):
            entry = first_entry + index * entry_size
            tag, field_type = struct.unpack_from(byte_order + "HH", data, entry)
            if tag == _ORIENTATION and field_type == 3:  # SHORT, stored inline
                patched = bytearray(data)
                struct.pack_into(byte_order + "H", patched, entry + value_at, 1)
                return bytes(patched)
    except struct.error:  # offsets point outside the data
        return data
    return data


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Turn ``arr`` (HxW or HxWxC) upright per EXIF orientation.

    Same results as PIL.ImageOps.exif_transpose, done on arrays so that the
    OpenCV and Pillow paths share it.
    """
    if orientation == 2:
        out = arr[:, ::-1]  # mirrored left-right
    elif orientation == 3:
        out = arr[::-1, ::-1]  # upside down
    elif orientation == 4:
        out = arr[::-1]  # mirrored top-bottom
    elif orientation == 5:
        out = arr.swapaxes(0, 1)  # transpose
    elif orientation == 6:
        out = np.rot90(arr, k=-1)  # camera turned right: rotate clockwise
    elif orientation == 7:
        out = np.rot90(arr, k=2).swapaxes(0, 1)  # transverse
    elif orientation == 8:
        out = np.rot90(arr, k=1)  # camera turned left: rotate counter-clockwise
    else:
        return arr
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def write_image(
    path: str | os.PathLike[str],
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    quality: int = 95,
    exif: bytes | None = None,
    icc_profile: bytes | None = None,
    sync_folder: bool = True,
) -> Path:
    """Encode and write an image atomically; return the path written.

    The format comes from the extension (.png .jpg .jpeg .tif .tiff .webp).
    PNG and TIFF keep 16 bits; JPEG and WebP are 8-bit.  JPEG drops alpha.
    The target is either fully replaced or left untouched.

    ``exif`` and ``icc_profile`` (a source Photo's) go into JPEG and 8-bit
    TIFF files; the profile only when its colour space is the pixels' (RGB
    or gray).  Other formats, and 16-bit TIFF, are written without them.
    ``sync_folder``: as atomic_write's (False: the caller syncs the folder).
    """
    path = Path(path)
    ext = path.suffix.lower()
    encoder = _WRITE_ENCODERS.get(ext)
    if encoder is None:
        raise ColorizerError(
            f"cannot write {path}: unsupported file type {ext or '(none)'!r}; "
            "use .png, .jpg, .tif or .webp"
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ColorizerError(f"the quality must be a whole number from 1 to 100, not {quality!r}")
    pixels, alpha = _validate_arrays(pixels, alpha)

    folder = path.parent
    if not folder.is_dir():
        # Creating folders is the caller's decision (a typo in --output should
        # not silently scatter photos into a new tree).
        raise ColorizerError(f"cannot write {path}: the folder {folder} does not exist")

    try:
        data = _encode(encoder, ext, pixels, alpha, quality, exif, _matching_icc(icc_profile, pixels))
    except MemoryError:
        raise ColorizerError(f"cannot write {path}: not enough memory to encode the image") from None
    except (cv2.error, OSError, ValueError) as exc:
        raise ColorizerError(f"cannot write {path}: encoding failed ({_one_line(exc)})") from None
    # atomic_write looks _write_bytes up at each call, so tests can replace it.
    atomic_write(path, lambda fileobj: _write_bytes(fileobj, data), sync_folder=sync_folder)
    return path


def _validate_arrays(
    pixels: np.ndarray, alpha: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Check the array layout; these are programming errors, hence ValueError."""
    pixels = np.asarray(pixels)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be uint8 or uint16, not {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"pixels must be HxW or HxWx3, not shape {pixels.shape}")
    if alpha is None:
        return pixels, None
    alpha = np.asarray(alpha)
    if alpha.shape != pixels.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match pixels {pixels.shape[:2]}")
    # Processing may change the pixel depth (e.g. an 8-bit result for a
    # 16-bit source); bring the alpha along rather than refuse.
    if alpha.dtype != pixels.dtype:
        if pixels.dtype == np.uint8 and alpha.dtype == np.uint16:
            alpha = to_8bit(alpha)
        elif pixels.dtype == np.uint16 and alpha.dtype == np.uint8:
            alpha = alpha.astype(np.uint16) * 257
        else:
            raise ValueError(f"alpha must be uint8 or uint16, not {alpha.dtype}")
    return pixels, alpha


def _matching_icc(icc: bytes | None, pixels: np.ndarray) -> bytes | None:
    """``icc`` when its colour space (header bytes 16-20) fits ``pixels``: a
    gray photo's gray profile must not be attached to its colour result."""
    if not icc or len(icc) < 128:
        return None
    wanted = b"GRAY" if pixels.ndim == 2 else b"RGB "
    return bytes(icc) if bytes(icc[16:20]) == wanted else None


def _encode(encoder: str, ext: str, pixels: np.ndarray, alpha: np.ndarray | None, quality: int,
            exif: bytes | None = None, icc: bytes | None = None) -> bytes:
    """Encode to bytes in memory, so a failure cannot leave a partial file."""
    if encoder == "tiff" and (exif or icc) and pixels.dtype == np.uint8:
        # OpenCV cannot write EXIF or a profile; Pillow can, at 8 bits, and
        # only uncompressed (its libtiff encoder refuses the Exif sub-IFD).
        image = Image.fromarray(pixels)
        if alpha is not None:
            image.putalpha(Image.fromarray(to_8bit(alpha)))
        extra = {"exif": exif} if exif else {}
        if icc:
            extra["icc_profile"] = icc
        out = io.BytesIO()
        image.save(out, "TIFF", **extra)
        return out.getvalue()
    if encoder in ("png", "tiff"):
        # OpenCV writes 16-bit colour PNG/TIFF, which Pillow cannot.
        if alpha is None:
            image = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
        else:
            # OpenCV encodes 1, 3 or 4 channels only, so gray+alpha is
            # written as BGRA with equal colour channels.
            rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
            image = cv2.cvtColor(np.dstack([rgb, alpha]), cv2.COLOR_RGBA2BGRA)
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(image))
        if not ok:
            raise ValueError(f"OpenCV could not encode {ext}")
        return buf.tobytes()

    # JPEG and WebP: 8 bits per sample.
    pixels8 = to_8bit(pixels)
    out = io.BytesIO()
    if encoder == "jpeg":
        # JPEG has no alpha; drop it.  Keep full-resolution colour at high
        # quality: colour is this program's whole output, and 4:2:0 chroma
        # subsampling would halve its resolution.
        full_chroma = quality >= 90
        if exif is not None and not isinstance(exif, bytes):
            exif = exif.tobytes() if isinstance(exif, Image.Exif) else bytes(exif)  # as Pillow took them
        exif_payload = exif[len(_EXIF_HEADER):] if exif and exif.startswith(_EXIF_HEADER) else exif
        if (not exif_payload or len(exif_payload) <= _JPEG_SEGMENT - len(_EXIF_HEADER)) and \
                (not icc or len(icc) <= _JPEG_SEGMENT - len(_ICC_SEGMENT_HEADER)):
            return _encode_jpeg_opencv(pixels8, quality, full_chroma, exif_payload, icc)
        # OpenCV writes each block in one JPEG segment (64 KB at most);
        # Pillow splits a larger ICC profile over several, as the ICC
        # specification allows (and refuses EXIF that large, as JPEG does).
        extra = {"exif": exif} if exif else {}
        if icc:
            extra["icc_profile"] = icc
        Image.fromarray(pixels8).save(out, "JPEG", quality=quality, subsampling=0 if full_chroma else 2, **extra)
    else:
        image = Image.fromarray(pixels8)
        if alpha is not None:
            image.putalpha(Image.fromarray(to_8bit(alpha)))
        image.save(out, "WEBP", quality=quality)
    return out.getvalue()


_EXIF_HEADER = b"Exif\x00\x00"  # how Pillow's EXIF bytes begin; OpenCV adds it itself
_ICC_SEGMENT_HEADER = b"ICC_PROFILE\x00" + bytes(2)  # tag, sequence number and count in each APP2 segment
_JPEG_SEGMENT = 65533  # the most bytes a JPEG segment holds after its 2-byte length


def _encode_jpeg_opencv(pixels8: np.ndarray, quality: int, full_chroma: bool, exif: bytes | None,
                        icc: bytes | None) -> bytes:
    """JPEG bytes of HxW or HxWx3 uint8 RGB pixels, with the EXIF block
    (without its "Exif\\0\\0" header) and ICC profile given, through OpenCV.

    OpenCV's encoder runs without Python's lock, so batch's writing threads
    encode on every core at once; Pillow's encoder into memory holds the lock
    (on the H200 machine's 16 cores a batch of 12-megapixel photos wrote 7 JPEGs
    per second whatever the number of threads, and more PNGs, which OpenCV
    encodes). Both are libjpeg with its standard quality tables.
    """
    image = pixels8 if pixels8.ndim == 2 else cv2.cvtColor(pixels8, cv2.COLOR_RGB2BGR)
    sampling = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if full_chroma else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling]
    kinds, blocks = [], []
    for kind, block in ((cv2.IMAGE_METADATA_EXIF, exif), (cv2.IMAGE_METADATA_ICCP, icc)):
        if block:
            kinds.append(kind)
            blocks.append(np.frombuffer(block, np.uint8))
    image = np.ascontiguousarray(image)
    if kinds:
        ok, buf = cv2.imencodeWithMetadata(".jpg", image, kinds, blocks, params)
    else:
        ok, buf = cv2.imencode(".jpg", image, params)
    if not ok:
        raise ValueError("OpenCV could not encode JPEG")
    return buf.tobytes()


def _write_bytes(fileobj: BinaryIO, data: bytes) -> None:
    """The one place bytes hit the disk (tests replace it to simulate ENOSPC)."""
    view = memoryview(data)
    while view:
        written = fileobj.write(view)
        # Raw file objects may write less than asked; buffered ones write all.
        view = view[written if written is not None else len(view) :]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------


def format_extensions(fmt: str) -> tuple[str, ...]:
    """The extensions a WRITE_FORMATS key may be written under ("jpg": .jpg and .jpeg)."""
    encoder = _WRITE_ENCODERS[WRITE_FORMATS[fmt]]
    return tuple(ext for ext, enc in _WRITE_ENCODERS.items() if enc == encoder)


def output_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be written as an image, found without writing it:
    an extension no encoder takes, or a parent that is a file or missing.
    None when it looks writable (the write itself may still fail)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITE_ENCODERS:
        return f"cannot write {path}: unsupported file type {ext or '(none)'!r}; use .png, .jpg, .tif or .webp"
    blocker = existing_non_folder_ancestor(path.parent)
    if blocker is not None:
        return f"cannot write {path}: {blocker} is a file, not a folder"
    if not path.parent.is_dir():
        return f"cannot write {path}: the output folder {path.parent} does not exist"
    return None


def existing_non_folder_ancestor(folder: str | os.PathLike[str]) -> Path | None:
    """The nearest of ``folder`` and its parents that exists, when it is not a
    folder (a file where a folder should be); None otherwise."""
    for candidate in (Path(folder), *Path(folder).parents):
        try:
            if candidate.exists():
                return None if candidate.is_dir() else candidate
        except OSError:
            return None
    return None


def output_path_for(src: Path, out_dir: Path, fmt: str) -> Path:
    """Where the result for ``src`` goes: ``out_dir / <stem>_color<extension>``,
    the name ``colorize`` and the window's Save As give a result too.

    ``fmt`` is a WRITE_FORMATS key or "same".  "same" keeps the source's
    extension when it can be written (.jpeg stays .jpeg) and uses .png for
    formats that cannot (.gif, .bmp).
    """
    src, out_dir = Path(src), Path(out_dir)
    key = fmt.lower()
    if key == SAME_FORMAT:
        ext = src.suffix if src.suffix.lower() in _WRITE_ENCODERS else ".png"
    elif key in WRITE_FORMATS:
        ext = WRITE_FORMATS[key]
    else:
        choices = ", ".join([*WRITE_FORMATS, SAME_FORMAT])
        raise ColorizerError(f"unknown output format {fmt!r}; choose one of {choices}")
    return out_dir / f"{src.stem}_color{ext}"


def iter_image_files(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Sorted image files in ``folder`` (and below it if ``recursive``).

    Only READ_EXTENSIONS (any case) count.  Hidden files and folders are
    skipped: they are thumbnails, editor/OS metadata or our own temporary
    files.  Each real folder is visited once, so symlink loops terminate, and
    a symlinked folder that leads back into ``folder`` is not followed, so each
    photo is listed once, under its real path.
    """
    root = Path(folder)
    if not root.exists():
        raise ColorizerError(f"the folder {root} does not exist")
    if not root.is_dir():
        raise ColorizerError(f"{root} is not a folder")

    root_real = os.path.realpath(root)
    found: list[Path] = []
    visited: set[str] = set()
    pending = [root]
    while pending:
        current = pending.pop()
        real = os.path.realpath(current)
        if real in visited:
            continue  # reached again through a symlink
        visited.add(real)
        try:
            with os.scandir(current) as entries:
                entries = list(entries)
        except OSError as exc:
            if current == root:
                raise ColorizerError(f"cannot list the folder {root}: {_os_reason(exc)}") from None
            # One unreadable subfolder should not stop a whole batch.
            log.warning("skipping folder %s: %s", current, _os_reason(exc))
            continue
        for entry in entries:
            if _is_hidden(entry):
                continue
            try:
                if entry.is_dir():
                    if recursive and not _links_into(entry, root_real):
                        pending.append(Path(entry.path))
                elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in READ_EXTENSIONS:
                    found.append(Path(entry.path))
            except OSError:
                continue  # vanished or unreadable entry: nothing to process
    return sorted(found)


def _links_into(entry: os.DirEntry[str], root_real: str) -> bool:
    """True for a symlink to a folder inside ``root_real`` (or to it): what it
    leads to is listed anyway, under its real path."""
    if not entry.is_symlink():
        return False
    real = os.path.realpath(entry.path)
    return real == root_real or real.startswith(os.path.join(root_real, ""))


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith("."):
        return True
    # Windows marks hidden files with an attribute rather than a dot.
    hidden_flag = getattr(stat, "FILE_ATTRIBUTE_HIDDEN", 0)
    if hidden_flag:
        try:
            return bool(entry.stat(follow_symlinks=False).st_file_attributes & hidden_flag)
        except (OSError, AttributeError):
            return False
    return False
