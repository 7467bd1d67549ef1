"""What the panels see: the UI's own state, and a read-only view of the app per frame.

Panels are plain functions `panel(v: ViewState, act: ActionQueue)`. They read the
ViewState, change only `v.ui` (what the user is looking at: tabs, pages, text
fields), and ask for everything else with actions.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class UIState:
    canvas_rect: tuple = (0.0, 0.0, 0.0, 0.0)      # screen rect of the canvas image (input mapping)
    canvas_hovered: bool = False
    show_help: bool = False
    show_box: bool = True
    checkpoint_path: str = ""
    file_message: str = ""
    select_tabs: set = field(default_factory=set)  # tab labels to bring to front next frame
    dataset_split: str = "test"
    dataset_page: int = 0
    dataset_selected: int | None = None
    mistakes_page: int = 0
    ui_scale: float = 1.0
    dataset_tab: bool = False        # the dataset browser is a tab of Metrics (a short window)
    file_rects: dict = field(default_factory=dict)   # screen rects of the path field and file buttons
    show_saliency: bool = False      # the saliency overlay on the canvas
    embedding_open: bool = False     # the embedding view was drawn this frame (set by its panel)
    embedding_cursor: tuple | None = None   # the cursor over the embedding, texture pixels (None: not over it)
    embedding_rect: tuple = (0.0, 0.0, 0.0, 0.0)   # its screen rect
    network_choice: str = "custom"   # the Net tab's chooser: a key of files.SHIPPED, or "custom"
    arch_text: str = ""              # its architecture field (a shipped network's while one is chosen)
    arch_checked: tuple = ()         # (text, ok, line): the field's parse, redone when the text changes
    network_message: str = ""        # what the last network build or load did, or its one-line error
    layer_rects: dict = field(default_factory=dict)  # (block, "filters" | "maps") -> screen rect in the Layers panel
    probed: tuple | None = None      # (block, "filters" | "maps", element) under the mouse this frame
    run_spec: str = "adam lr=0.001 seed=1"           # the Runs panel's field: a run to add


@dataclass
class ViewState:
    """References to what the panels draw from (built by App.view_state each frame)."""
    ui: UIState
    session: object          # viz.session.TrainingSession: status, run, recipe, watch, message
    metrics: object          # compute.metrics.RunMetrics: CPU mirrors of steps / evaluations
    values: dict             # the last 64-byte readout (viz.structs.READOUT fields)
    model: object
    canvas: object           # viz.canvas.PaintCanvas
    canvas_view: object
    model_views: object      # viz.views.ModelViews
    plots: object
    confusion: object
    mistakes: object | None
    dataset_view: object | None
    device: object
    frame_ms: float
    data_error: str | None
    autosave_path: object | None
    autosave_note: str       # why autosaves are not in the usual folder, or are off ("" when they are)
    autosaves: list          # earlier autosaves, newest first (File > Reopen)
    busy: str                # a long operation in progress ("" when none): shown, input disabled
    classes: object = None   # viz.classes.ClassInfo: the class names
    canvas_current: bool = False   # the readout's canvas fields are of the canvas shown now
    label_of: object = None  # (split, index) -> the dataset sample's label (host copy), or None
    embedding: object = None  # viz.embedding.Embedding (None until the dataset is in)
    saliency: object = None   # viz.saliency.Saliency
    timeline: object = None  # viz.timetravel.Timeline: snapshots, the chosen one
    histograms: object = None  # viz.histograms.Histograms: the ribbons
    other_views: list = field(default_factory=list)   # viz.runviews.OtherRunViews of the runs side by side
