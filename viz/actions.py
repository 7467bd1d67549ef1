"""Everything a user can ask of the window, as typed actions, and the one keymap.

Panels and keys never change the app; they `emit` an Action (with its argument,
if it takes one). The frame runs the queue before it encodes the GPU work, through
a table of handlers the app builds; an action with no handler is an error at once
(a typo cannot silently do nothing). The keymap feeds both the key handler and the
help panel, so a shortcut is stated once.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Action(enum.Enum):
    # training
    TRAIN = "train"                      # start a run from the current weights, or resume
    TOGGLE = "toggle"                    # start / pause / resume
    PAUSE = "pause"
    STEP = "step"                        # one training step
    REINITIALISE = "reinitialise"        # fresh He-initialised weights
    EVALUATE = "evaluate"                # test set now
    RESTORE = "restore"                  # the weights of the last epoch start
    SET_RECIPE = "set_recipe"            # (Recipe)
    SET_SPEED = "set_speed"              # (index into pacing.SPEEDS)
    SET_EVAL_EACH_EPOCH = "set_eval_each_epoch"  # (bool)
    # files
    SAVE = "save"                        # to the path in the panel
    LOAD = "load"                        # from the path in the panel
    LOAD_PRETRAINED = "load_pretrained"
    REOPEN_AUTOSAVE = "reopen_autosave"
    NEW_NETWORK = "new_network"          # (architecture string): a fresh network of it, random He init
    LOAD_SHIPPED = "load_shipped"        # (name in files.SHIPPED): a shipped network with its trained weights
    QUIT = "quit"
    # canvas
    CLEAR = "clear"
    BRUSH_SMALLER = "brush_smaller"
    BRUSH_LARGER = "brush_larger"
    SET_BRUSH = "set_brush"              # (radius in canvas pixels)
    SET_NORMALISE = "set_normalise"      # (bool)
    SET_SHOW_BOX = "set_show_box"        # (bool)
    LOAD_SAMPLE = "load_sample"          # (split, index): a dataset image or a mistake into the canvas
    # views
    CYCLE_MOSAIC = "cycle_mosaic"
    SET_MOSAIC = "set_mosaic"            # (mode index)
    PROBE = "probe"                      # (block, "filters" | "maps", element) under the mouse, or (None,)
    SET_ACCURACY_RANGE = "set_accuracy_range"  # (name in plots.ACC_RANGES)
    SET_SALIENCY = "set_saliency"        # (bool): the saliency overlay on the canvas
    SET_SALIENCY_CLASS = "set_saliency_class"  # (class index, or None: the predicted class)
    PUSH_TOWARD = "push_toward"          # (class index): gradient ascent on the input toward it
    TIMELINE_SELECT = "timeline_select"  # (index into the snapshots, oldest first; -1: live)
    TIMELINE_RESTORE = "timeline_restore"  # continue training from the chosen snapshot
    TIMELINE_SETTINGS = "timeline_settings"  # (every N steps, memory cap in MiB)
    HISTOGRAM_EVERY = "histogram_every"  # (run steps between histogram columns)
    # runs side by side (panels/runs.py)
    ADD_RUN = "add_run"                  # (text in the --compare syntax, or None: the current settings)
    SHOW_RUN = "show_run"                # (slot): that run becomes the one the views show
    PAUSE_RUN = "pause_run"              # (slot): pause / resume one other run
    STEP_RUN = "step_run"                # (slot): one step of one other run
    REMOVE_RUN = "remove_run"            # (slot)
    TOGGLE_HELP = "toggle_help"
    UI_SCALE = "ui_scale"                # (factor)


@dataclass(frozen=True)
class Binding:
    keys: tuple[str, ...]        # rendercanvas key names, lower-case for letters
    action: Action
    text: str                    # what the help panel says
    ctrl: bool = False

    @property
    def label(self) -> str:
        names = {" ": "Space", "Backspace": "Backspace", "Delete": "Delete"}
        shown = [names.get(k, k.upper() if len(k) == 1 else k) for k in self.keys]
        return ("Ctrl+" if self.ctrl else "") + ", ".join(shown)


KEYMAP: tuple[Binding, ...] = (
    Binding((" ",), Action.TOGGLE, "start / pause / resume training"),
    Binding(("n",), Action.STEP, "one training step"),
    Binding(("r",), Action.REINITIALISE, "re-initialise the weights (fresh He init)"),
    Binding(("e",), Action.EVALUATE, "evaluate on the test set now"),
    Binding(("c", "Backspace", "Delete"), Action.CLEAR, "clear the canvas"),
    Binding(("[",), Action.BRUSH_SMALLER, "smaller brush"),
    Binding(("]",), Action.BRUSH_LARGER, "larger brush"),
    Binding(("m",), Action.CYCLE_MOSAIC, "cycle the W1 mosaic view"),
    Binding(("s",), Action.SAVE, "save a checkpoint"),
    Binding(("h", "F1"), Action.TOGGLE_HELP, "show / hide this help"),
    Binding(("q",), Action.QUIT, "quit (autosaves a trained model)", ctrl=True),
)


def shortcut(action: Action) -> str | None:
    """The key label of an action, for menus."""
    for b in KEYMAP:
        if b.action is action:
            return b.label
    return None


def action_for_key(key: str, ctrl: bool = False) -> Action | None:
    k = key.lower() if len(key) == 1 else key
    for b in KEYMAP:
        if k in b.keys and b.ctrl == ctrl:
            return b.action
    return None


class ActionQueue:
    """Actions emitted during a frame, run before its GPU work is encoded."""

    def __init__(self):
        self._queue: list[tuple[Action, tuple]] = []

    def emit(self, action: Action, *args) -> None:
        if not isinstance(action, Action):
            raise TypeError(f"not an Action: {action!r}")
        self._queue.append((action, args))

    def __len__(self) -> int:
        return len(self._queue)

    def take(self) -> list[tuple[Action, tuple]]:
        queued, self._queue = self._queue, []
        return queued

    def run(self, handlers: dict, defer=None) -> None:
        """Run every queued action through `handlers`; `defer(action)` may keep one for later
        (it needs the dataset, say) by returning True."""
        kept = []
        for action, args in self.take():
            handler = handlers.get(action)
            if handler is None:
                raise KeyError(f"no handler for {action}")
            if defer is not None and defer(action):
                kept.append((action, args))
                continue
            handler(*args)
        self._queue = kept + self._queue
