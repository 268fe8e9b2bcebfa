"""Writing checkpoint folders so that a reader never sees a half-written one."""

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yields a temporary folder beside `final`; renames it to `final` only if the block succeeds.

    The temporary folder lives in the same parent, so the rename is atomic on one filesystem.
    On any error it is removed and nothing appears at `final`.
    """
    if final.exists():
        raise FileExistsError(f"{final} already exists; checkpoints are never overwritten.")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield staging
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def write_once(final: Path, write: Callable[[Path], None]) -> Path:
    """Runs `write(folder)` into a staging folder and moves it to `final`; returns `final`."""
    with atomic_folder(final) as staging:
        write(staging)
    return final
