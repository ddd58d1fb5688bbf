"""Crafted weights files (bytes) for the tests of ``load_weights``: damaged,
inconsistent or hostile versions of what ``save_weights`` writes."""

import io
import json
import struct
import zipfile

import numpy as np

from retune_sklearn.persistence import save_weights


def saved(est):
    """The bytes ``save_weights`` writes for ``est``."""
    buffer = io.BytesIO()
    save_weights(est, buffer)
    return buffer.getvalue()


def rewritten(data, change=None, text=None):
    """``data`` with ``change(description, arrays)`` applied to its content, and
    ``text(json_text)`` to the JSON of its description."""
    with np.load(io.BytesIO(data), allow_pickle=False) as content:
        arrays = {k: content[k] for k in content.files}
    description = json.loads(str(arrays.pop("description")))
    if change is not None:
        change(description, arrays)
    json_text = json.dumps(description)
    if text is not None:
        json_text = text(json_text)
    buffer = io.BytesIO()
    np.savez(buffer, description=np.array(json_text), **arrays)
    return buffer.getvalue()


def members(data):
    """The members of a zip file as ``{name: bytes}``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zipped(contents, compression=zipfile.ZIP_STORED):
    """A zip file of ``{name: bytes}``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, payload in contents.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def npy_header(shape, descr="<f8"):
    """The header of a ``.npy`` file declaring an array of ``shape``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def declaring_size(data, name, size):
    """``data`` whose zip directories declare ``size`` uncompressed bytes for ``name``."""
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        name_at = 30 if signature == b"PK\x03\x04" else 46
        start = data.find(signature)
        while start >= 0:
            length = struct.unpack_from("<H", data, start + name_at - 4 if name_at == 30
                                        else start + 28)[0]
            if bytes(data[start + name_at:start + name_at + length]) == name.encode():
                struct.pack_into("<I", data, start + offset, size)
            start = data.find(signature, start + 4)
    return bytes(data)
