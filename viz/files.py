"""The window's files: which model it opens, and autosaves.

Autosaves are per run: each close of a window that trained writes a new
timestamped file in the autosave folder, and only the newest AUTOSAVES_KEPT are
kept, so one window never overwrites another window's model (File > Reopen last
autosave opens the newest). The folder is chosen when the window opens
(autosave_folder), so a close never first learns that it cannot save.
"""
from __future__ import annotations

import os
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..compute.budget import BudgetError
from ..compute.model_io import data_it_fits, default_model_path, load_model
from ..compute.arch import Architecture, parse
from ..compute.nn import Sequential
from ..compute.recipe import CNN_ARCH

AUTOSAVES_KEPT = 5
MNIST_SHAPE = (28, 28, 10)    # height, width, classes of the bundled dataset
FRESH_HIDDEN = 128            # hidden units of a fresh network for a dataset no model fits


@dataclass(frozen=True)
class Shipped:
    """A network that comes with the package, trained."""
    label: str
    architecture: str
    asset: str                  # file name in mnist_viz/assets

    @property
    def path(self) -> Path:
        from ..compute.resources import asset_path
        return asset_path(self.asset)


SHIPPED = {
    "mlp": Shipped("shipped MLP", "Linear(784,128),ReLU(),Linear(128,10)", "mnist-784-128-10.safetensors"),
    "cnn": Shipped("shipped CNN", CNN_ARCH, "mnist-cnn.safetensors"),
}


def checkpoint_path(given: Path) -> Path:
    """--checkpoint as given, or the shipped model it names where no such file is there: `mlp` or
    `cnn`, or a shipped file's name (`assets/mnist-cnn.safetensors`, as the README writes it from
    the checkout), so that the commands work the same from an installed package. Neither: one
    line saying what can be given instead (UserError)."""
    if given.exists() or given.is_symlink():
        return given
    named = SHIPPED.get(str(given)) or next((m for m in SHIPPED.values() if m.asset == given.name), None)
    if named is not None and named.path.exists():
        return named.path
    from ..compute.pathinfo import printable_path
    from .errors import UserError
    raise UserError(f"--checkpoint {printable_path(given)}: no such file; give a .safetensors file, or "
                    f"{' / '.join(SHIPPED)} for the shipped models")


def shipped_for(arch: str | None) -> Path | None:
    """The shipped model of architecture `arch` (`cnn`, `mlp` or its text), if one is."""
    if arch is None:
        return None
    text = arch.strip()
    named = SHIPPED.get(text) or next((m for m in SHIPPED.values() if m.architecture == text.replace(" ", "")), None)
    return named.path if named is not None else None


def default_autosave_dir() -> Path | None:
    """$XDG_CACHE_HOME/mnist-viz/autosaves, else under ~/.cache; None without a home directory."""
    try:
        given = os.environ.get("XDG_CACHE_HOME", "")
        # A relative value is ignored, as the XDG spec says (it would follow the working directory)
        base = Path(given) if given and Path(given).is_absolute() else Path.home() / ".cache"
    except RuntimeError:          # no $HOME and no password entry
        return None
    return base / "mnist-viz" / "autosaves"


def autosave_folder(preferred: Path | None) -> tuple[Path | None, str]:
    """(the folder autosaves go to, a line saying why it is not `preferred`, "" when it is).
    `preferred` if it can be created and written, else this user's private folder in the system
    temp directory; None (autosave off) if neither can."""
    why = _cannot_write(preferred) if preferred is not None else "no home directory"
    if why is None:
        return preferred, ""
    wanted = f"{preferred} ({why})" if preferred is not None else "~/.cache (no home directory)"
    try:
        fallback = Path(tempfile.gettempdir()) / f"mnist-viz-{os.getuid()}" / "autosaves"
    except OSError as e:          # no usable temp directory either
        fallback, why_not = None, e.strerror or str(e)
    else:
        why_not = _cannot_write(fallback, private=True)
    fix = "set XDG_CACHE_HOME to a folder you can write"
    if why_not is None:
        return fallback, (f"autosaves go to {fallback} (a temp folder the system may clear): cannot write {wanted}; "
                          f"{fix}")
    return None, (f"autosave is off: cannot write {wanted} nor {fallback or 'a temp folder'} ({why_not}); "
                  f"{fix}, or save with File > Save before closing")


def _cannot_write(directory: Path, private: bool = False) -> str | None:
    """Why a file cannot be made in `directory` (created if missing), or None. `private`: the
    folder and its parent must be this user's alone (0700), as a shared temp directory needs."""
    try:
        if private:
            for d in (directory.parent, directory):
                d.mkdir(mode=0o700, exist_ok=True)
                st = os.lstat(d)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
                    return f"{d} is not a folder of this user's alone"
        else:
            directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as e:
        return e.strerror or str(e)
    return None


def autosaves(directory: Path) -> list[Path]:
    """Autosave files, newest first."""
    try:
        files = [p for p in Path(directory).glob("autosave-*.safetensors") if p.is_file()]
    except OSError:
        return []
    return sorted(files, key=lambda p: p.name, reverse=True)


def next_autosave_path(directory: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(directory) / f"autosave-{stamp}-{os.getpid()}.safetensors"
    return path


def prune_autosaves(directory: Path, keep: int = AUTOSAVES_KEPT) -> None:
    for old in autosaves(directory)[keep:]:
        try:
            old.unlink()
        except OSError:
            pass


def describe_accuracy(meta: dict) -> str:
    """' (test accuracy 97.40% on 10,000 test images)': the number the file records, with the test
    images it was measured on where the file says (an autosave of a --test-limit 200 window said
    99.00% for a model `eval` scores 97.40% on 2,000: a first user's trial)."""
    acc = meta.get("test_accuracy")
    try:
        if not acc:
            return ""
        n = meta.get("test_images", "")
        on = f" on {int(n):,} test image{'s' * (int(n) != 1)}" if n.isdigit() else ""
        return f" (test accuracy {float(acc) * 100:.2f}%{on})"
    except ValueError:
        return ""


def _fresh_mlp(h: int, w: int, classes: int) -> tuple[Architecture, str]:
    """The MLP a dataset gets when no model fits it: 128 hidden units, fewer when this GPU's
    binding limit cannot hold that many for these images (and a note saying so)."""
    from ..compute.budget import Limits, mlp_hidden_fit
    hidden = min(FRESH_HIDDEN, max(1, mlp_hidden_fit(h * w, classes, Limits.current(), FRESH_HIDDEN)))
    note = "" if hidden == FRESH_HIDDEN else f" ({FRESH_HIDDEN} hidden units do not fit this GPU's limits for these images)"
    return Architecture.mlp([h * w, hidden, classes], image_shape=(h, w)), note


def initial_model(checkpoint: Path | None, data_shape: tuple[int, int, int], arch: str | None = None,
                  dataset: str = "MNIST"):
    """(model, message, metadata): --checkpoint if given (read as --arch if given; it must fit the
    data), else a fresh --arch network, else for MNIST the pretrained model, else (none
    shipped; other data: the MNIST model would read Fashion-MNIST as digits, other shapes
    not at all) a fresh MLP that fits. The metadata is the checkpoint's ({} for a fresh network)."""
    h, w, classes = data_shape
    if arch is not None and checkpoint is None:
        architecture = parse(arch, (h, w))
        problem = architecture.misfit(h, w, classes)
        if problem:
            raise ValueError(f"--arch: {problem}")
        return Sequential(architecture), f"a fresh {architecture.short} from random weights", {}
    fresh, narrowed = _fresh_mlp(h, w, classes)
    path = Path(checkpoint) if checkpoint is not None else default_model_path()
    if checkpoint is None and dataset != "MNIST":
        return Sequential(fresh), (f"{dataset}: a fresh {fresh.short} from random weights (the pretrained "
                                   "model is for MNIST digits); press Train"), {}
    if checkpoint is None and not path.exists():
        return Sequential(fresh), "no pretrained model found: starting from random weights" + narrowed, {}
    try:
        model, meta = load_model(path, arch=arch, image_shape=(h, w))
    except BudgetError as e:
        raise BudgetError(f"{path.name}: {e}") from None
    problem = model.arch.misfit(h, w, classes)
    if problem:
        if checkpoint is not None:
            raise ValueError(f"{path.name}: {problem}; {data_it_fits(meta, model.arch)}")
        return Sequential(fresh), (f"the pretrained model reads 28 x 28 digits in 10 classes: starting "
                                   f"{fresh.short} from random weights for this dataset{narrowed}"), {}
    note = f"; {meta['_note']}" if "_note" in meta else ""
    return model, f"loaded {path.name}{describe_accuracy(meta)}{note}", meta
