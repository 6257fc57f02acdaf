"""What `reid --version` prints, and the head of a failed command's traceback file: the versions a bug report needs."""

from __future__ import annotations

import importlib.metadata
import sys

from reid.bench.host import git_commit


def version_text() -> str:
    """`reid --version`: this package's version, the git commit of a checkout, and the versions a bug report needs
    (read from the installed packages' metadata: nothing heavy is imported)."""
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    line = f"reid {version('reid')}"
    commit = git_commit()
    line += f" (commit {commit})" if commit else ""
    deps = ", ".join(f"{d} {version(d)}" for d in ("ray", "torch", "torchvision"))
    return f"{line}\nPython {sys.version.split()[0]}, {deps}"
