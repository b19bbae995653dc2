"""Saving results: atomic writes of JSON summaries and ``.npz`` arrays.

A run that is interrupted never leaves a half-written file behind: every file is
written to a temporary name in the same folder and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def _to_jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_to_jsonable(v) for v in x]
    if hasattr(x, "__array__") and not isinstance(x, str):
        a = np.asarray(x)
        return a.item() if a.ndim == 0 else a.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (temporary file, then rename).

    Example:
        >>> import tempfile
        >>> p = atomic_write_bytes(tempfile.mkdtemp() + "/sub/x.bin", b"abc")
        >>> p.read_bytes(), sorted(f.name for f in p.parent.iterdir())
        (b'abc', ['x.bin'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes ``obj`` (NumPy/JAX arrays allowed) as indented JSON, atomically.

    Example:
        >>> import tempfile, json, numpy as np
        >>> d = tempfile.mkdtemp()
        >>> p = save_json(d + "/s.json", {"a": np.arange(3), "b": 1.5})
        >>> json.loads(p.read_text())
        {'a': [0, 1, 2], 'b': 1.5}
    """
    text = json.dumps(_to_jsonable(obj), indent=2, allow_nan=False, default=str)
    return atomic_write_bytes(path, (text + "\n").encode())


def save_npz(path: str | os.PathLike, arrays: Mapping[str, Any], compress: bool = False
             ) -> Path:
    """Writes a dict of arrays as an ``.npz`` (optionally compressed), atomically.

    Example:
        >>> import tempfile, numpy as np
        >>> p = save_npz(tempfile.mkdtemp() + "/a.npz", {"x": np.ones(2)})
        >>> np.load(p)["x"].tolist()
        [1.0, 1.0]
    """
    return atomic_write_bytes(path, npz_bytes(arrays, compress))


def npz_bytes(arrays: Mapping[str, Any], compress: bool = False) -> bytes:
    """The bytes of an ``.npz`` holding ``arrays`` (what :func:`save_npz` writes), read
    by ``np.load``. The same arrays give the same bytes (every member is dated
    1980-01-01, where ``np.savez`` stamps the time), so identical runs write identical
    files with identical checksums.

    Example:
        >>> a = npz_bytes({"x": np.zeros(1)})
        >>> a[:4], a == npz_bytes({"x": np.zeros(1)})
        (b'PK\\x03\\x04', True)
    """
    import io as _io
    import zipfile

    buf = _io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method, allowZip64=True) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
    return buf.getvalue()


def load_json(path: str | os.PathLike) -> Any:
    """Reads a JSON file.

    Example:
        >>> import tempfile
        >>> load_json(save_json(tempfile.mkdtemp() + "/s.json", {"a": [1, 2]}))
        {'a': [1, 2]}
    """
    return json.loads(Path(path).read_text())
