"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the values in
C order, big-endian::

    0x00 0x00 <type code> <ndim>  |  dim_0 ... dim_{ndim-1} (uint32 BE)  |  payload

Type codes (from the format's definition): 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64. The payload must hold exactly ``prod(dims) * itemsize`` bytes.
Files may be raw or gzip-compressed (recognised by gzip's own magic bytes, not the name).
"""
import gzip
import math
import os
import zlib

import numpy as np

from ..io.atomic import atomic_write_bytes

from ..tensor import Tensor

IDX_TYPE_CODES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(np.int16),
    0x0C: np.dtype(np.int32),
    0x0D: np.dtype(np.float32),
    0x0E: np.dtype(np.float64),
}
_CODE_OF_DTYPE = {dtype: code for code, dtype in IDX_TYPE_CODES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


# The most payload bytes read_idx accepts by default: 20 times MNIST's largest file (47 MB).
DEFAULT_MAX_IDX_BYTES = 1 << 30


def _open_stream(path: str, raw):
    """The file as a readable stream of IDX bytes, gzip-decompressed on the fly if it is one."""
    magic = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw, mode="rb") if magic == _GZIP_MAGIC else raw


def _read_into(stream, buffer: np.ndarray) -> int:
    """Fill the uint8 array ``buffer`` from ``stream``; returns the bytes read (fewer at the
    end of the stream)."""
    view, filled = memoryview(buffer), 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def read_idx(path, max_bytes: int = DEFAULT_MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian ndarray.

    The header is read first and the payload size it declares checked (against ``max_bytes``
    and, for a raw file, the file's size) before anything else is read or allocated; a gzip
    stream is decompressed straight into the result, never further than the declared size.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.
    max_bytes : int
        The largest payload accepted (default ``DEFAULT_MAX_IDX_BYTES``, 1 GiB).

    Returns
    -------
    ndarray of shape ``dims`` and the dtype given by the type code (writable, native byte order).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is corrupt: bad magic number, unknown type code, truncated header or payload,
        trailing bytes, a payload over ``max_bytes``, or a damaged gzip stream. The message names
        the file.
    """
    path = os.fspath(path)
    with open(path, "rb") as raw:
        stream = _open_stream(path, raw)
        try:
            return _read_idx_stream(path, stream, raw if stream is raw else None, max_bytes)
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as err:
            # A damaged gzip stream surfaces as EOFError (cut off), zlib.error or BadGzipFile
            # (garbage) or OSError (CRC mismatch): to the caller, one bad file.
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({type(err).__name__}: "
                             f"{err}); delete the file and download it again") from err


def _read_idx_stream(path, stream, raw_file, max_bytes) -> np.ndarray:
    magic = np.empty(4, np.uint8)
    count = _read_into(stream, magic)
    if count < 4:
        raise ValueError(f"{path}: not an IDX file (only {count} bytes, the magic number "
                         "alone needs 4)")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{path}: bad IDX magic number {magic.tobytes().hex(' ')} (expected "
                         "00 00 <type> <ndim>)")
    type_code, ndim = int(magic[2]), int(magic[3])
    if type_code not in IDX_TYPE_CODES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in IDX_TYPE_CODES.items())
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    dims = np.empty(4 * ndim, np.uint8)
    if _read_into(stream, dims) < dims.size:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need "
                         f"{4 + 4 * ndim} bytes")
    shape = tuple(int(d) for d in dims.view(">u4"))
    dtype = IDX_TYPE_CODES[type_code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if expected > max_bytes:
        raise ValueError(f"{path}: IDX header declares shape {shape} of {dtype.name}, "
                         f"{expected:,} bytes, more than the {max_bytes:,} read_idx accepts "
                         "(max_bytes)")
    if raw_file is not None:
        payload = os.fstat(raw_file.fileno()).st_size - 4 - 4 * ndim
        if payload != expected:
            problem = "truncated" if payload < expected else "has trailing bytes"
            raise ValueError(f"{path}: IDX payload {problem}: shape {shape} of {dtype.name} "
                             f"needs {expected} bytes, found {payload}")
    values = np.empty(shape, dtype=dtype.newbyteorder(">"))
    found = _read_into(stream, values.reshape(-1).view(np.uint8))
    if found < expected:
        raise ValueError(f"{path}: IDX payload truncated: shape {shape} of {dtype.name} needs "
                         f"{expected} bytes, found {found}")
    if stream.read(1):
        raise ValueError(f"{path}: IDX payload has trailing bytes: shape {shape} of "
                         f"{dtype.name} needs {expected} bytes")
    return values.astype(dtype)  # native byte order (a copy for multi-byte types)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file, gzip-compressed if ``path`` ends in ``.gz``.

    The file is written to a temporary file in the same directory and moved into place with
    ``os.replace``, so a reader never sees a half-written file.

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    array : array_like of any shape (at most 255 dimensions, each < 2**32)
        With dtype uint8, int8, int16, int32, float32 or float64 (the types IDX can hold).
    """
    path = os.fspath(path)
    array = np.asarray(array.data if isinstance(array, Tensor) else array)
    dtype = array.dtype.newbyteorder("=")
    if dtype not in _CODE_OF_DTYPE:
        names = ", ".join(d.name for d in IDX_TYPE_CODES.values())
        raise TypeError(f"write_idx: array dtype {array.dtype} has no IDX type code "
                        f"(supported: {names})")
    if array.ndim > 255:
        raise ValueError(f"write_idx: array has {array.ndim} dimensions, IDX allows at most 255")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx: dimension sizes {array.shape} must each be < 2**32")

    header = bytes([0, 0, _CODE_OF_DTYPE[dtype], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = np.ascontiguousarray(array, dtype=dtype.newbyteorder(">")).tobytes()
    contents = header + payload
    if path.endswith(".gz"):
        # mtime=0 keeps the output byte-for-byte reproducible.
        contents = gzip.compress(contents, mtime=0)

    atomic_write_bytes(path, contents)
