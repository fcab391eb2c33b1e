"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the values in
C order, big-endian::

    0x00 0x00 <type code> <ndim>  |  dim_0 ... dim_{ndim-1} (uint32 BE)  |  payload

Type codes (from the format's definition): 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64. The payload must hold exactly ``prod(dims) * itemsize`` bytes.
Files may be raw or gzip-compressed (recognised by gzip's own magic bytes, not the name).
"""
import gzip
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


def _read_bytes(path: str) -> bytes:
    """The file's contents, decompressed if it is a gzip stream.

    A damaged gzip stream surfaces as one of several exceptions (EOFError for a cut-off stream,
    zlib.error or BadGzipFile for garbage, OSError for a CRC mismatch); callers only need to know
    that the file is bad and which one, so they all become one ValueError.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip stream ({type(err).__name__}: "
                         f"{err}); delete the file and download it again") from err


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a native-endian ndarray.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    ndarray of shape ``dims`` and the dtype given by the type code (writable, native byte order).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is corrupt: bad magic number, unknown type code, truncated header or payload,
        trailing bytes, or a damaged gzip stream. The message names the file.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(data)} bytes, the magic number "
                         "alone needs 4)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: bad IDX magic number {data[:4].hex(' ')} (expected "
                         "00 00 <type> <ndim>)")
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_TYPE_CODES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in IDX_TYPE_CODES.items())
        raise ValueError(f"{path}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header_end} "
                         f"bytes, the file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPE_CODES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_end
    if payload != expected:
        problem = "truncated" if payload < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX payload {problem}: shape {shape} of {dtype.name} needs "
                         f"{expected} bytes, found {payload}")
    values = np.frombuffer(data, dtype=dtype.newbyteorder(">"), offset=header_end)
    # astype copies: the result is writable and native-endian whatever the buffer was.
    return values.astype(dtype).reshape(shape)


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
