"""A function directory as the files of a deploy body, read the way the
CLI reads it (``hearth_api::bundle::Bundle::from_dir``): every regular file
under the directory, paths relative with ``/``, content in base64, the
executable bit from the file's mode, sorted by path; VCS folders, caches
and dependency folders skipped at any depth; a symbolic link refused. The
daemon checks paths, sizes and the manifest itself."""

import base64
import os
import stat
from typing import Any, Dict, List

from .errors import BadBundle

#: Directory and file names never deployed (as the CLI skips them), and
#: any name ending in ``.pyc``.
SKIPPED = frozenset(
    {"__pycache__", "node_modules", ".git", ".hg", ".svn", ".venv", ".DS_Store"}
)


def read_files(directory: str) -> List[Dict[str, Any]]:
    """``[{"path", "data" (base64), "executable"}]`` of ``directory``."""
    root = os.fspath(directory)
    if not os.path.isdir(root):
        raise BadBundle(
            message="%s is not a directory; give the directory that holds the "
            "function's hearth.toml" % root
        )
    out: List[Dict[str, Any]] = []

    def walk(dir_path: str, parts: List[str]) -> None:
        with os.scandir(dir_path) as entries:
            for entry in entries:
                name = entry.name
                if name in SKIPPED or name.endswith(".pyc"):
                    continue
                if entry.is_symlink():
                    raise BadBundle(
                        message="%s: symbolic links are not deployed; copy the file "
                        "into the directory instead" % entry.path
                    )
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, parts + [name])
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                with open(entry.path, "rb") as f:
                    data = f.read()
                mode = entry.stat(follow_symlinks=False).st_mode
                out.append(
                    {
                        "path": "/".join(parts + [name]),
                        "data": base64.b64encode(data).decode("ascii"),
                        "executable": bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)),
                    }
                )

    walk(root, [])
    out.sort(key=lambda f: f["path"].encode("utf-8", "surrogateescape"))
    return out
