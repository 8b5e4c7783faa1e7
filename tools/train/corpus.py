"""Select and split the training corpus: the local CPython standard library's .py files.

File rule: every `*.py` file under `sysconfig.get_paths()["stdlib"]`, excluding
any path with a component in EXCLUDED_DIRS, and any file under a directory whose
name starts with `config-` (the build's makefile helpers). Paths are relative to
the stdlib root, use `/`, and are sorted by their UTF-8 bytes.

Split rule: a file is held out for validation when the SHA-256 of its relative
path, read as a big-endian integer, is 0 modulo 20; all others are training files.
"""

import hashlib
import pathlib
import sysconfig

EXCLUDED_DIRS = frozenset(
    {
        "site-packages",
        "__pycache__",
        "test",
        "tests",
        "idlelib",
        "lib2to3",
        "turtledemo",
        "ensurepip",
        "encodings",  # mostly generated codec tables
        "tkinter",
    }
)
HELD_OUT_MODULUS = 20


def stdlib_root() -> pathlib.Path:
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def is_selected(relative: pathlib.PurePosixPath) -> bool:
    directories = relative.parts[:-1]
    if any(part in EXCLUDED_DIRS or part.startswith("config-") for part in directories):
        return False
    return relative.suffix == ".py"


def is_held_out(relative: str) -> bool:
    digest = hashlib.sha256(relative.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % HELD_OUT_MODULUS == 0


def list_files() -> list[str]:
    """Return the selected relative paths, sorted by their UTF-8 bytes."""
    root = stdlib_root()
    paths = []
    for path in root.rglob("*.py"):
        relative = pathlib.PurePosixPath(path.relative_to(root).as_posix())
        if is_selected(relative):
            paths.append(str(relative))
    return sorted(paths, key=lambda p: p.encode("utf-8"))


def read_text(relative: str) -> str:
    # A few stdlib files are not valid UTF-8; replacing the bad bytes keeps the
    # corpus identical from run to run.
    return (stdlib_root() / relative).read_bytes().decode("utf-8", errors="replace")


def split_files() -> tuple[list[str], list[str]]:
    """Return (training paths, held-out paths)."""
    files = list_files()
    train = [p for p in files if not is_held_out(p)]
    held_out = [p for p in files if is_held_out(p)]
    return train, held_out


if __name__ == "__main__":
    train, held_out = split_files()
    train_bytes = sum(len(read_text(p).encode("utf-8")) for p in train)
    held_out_bytes = sum(len(read_text(p).encode("utf-8")) for p in held_out)
    print(f"stdlib root: {stdlib_root()}")
    print(f"training files: {len(train)} ({train_bytes} bytes)")
    print(f"held-out files: {len(held_out)} ({held_out_bytes} bytes)")
    for path in held_out:
        print(f"  held out: {path}")
