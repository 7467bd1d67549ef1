"""What the window draws of a run side by side (not the main one): its forward pass on
the canvas (its class for the painted digit goes into the frame's one readout) and a
small mosaic of its first layer's weights. Both are redrawn only when the canvas or
the run's weights changed.
"""
from __future__ import annotations

from .gpu import ViewTexture
from .inference import Forward
from .views import CMAP_DIVERGING, Heatmap, ScaleBank, grid_cols


class OtherRunViews:
    def __init__(self, entry, canvas, image_shape=(28, 28)):
        self.entry = entry
        self.run = entry.run
        model = entry.model
        self.forward = Forward(model, canvas.x, label=f"viz.forward.{entry.slot}")
        self.scales = ScaleBank()
        self.mosaic: Heatmap | None = None
        ih, iw = image_shape
        index, first = model.linears[0] if model.linears else (None, None)
        if index == 0 and first.in_features == ih * iw:     # an MLP: W1's columns are images
            w, h = model.weight(0), first.out_features
            slot = self.scales.add(model.arena.buffer, w.offset // 4, w.size)
            self.mosaic = Heatmap(f"W1 mosaic ({entry.name})", model.arena.buffer, w.offset // 4, iw, ih, h,
                                  grid_cols(h), 1, sx=h, sy=iw * h, st=1, cmap=CMAP_DIVERGING, scale_slot=slot,
                                  scales=self.scales.buffer)
        self._key = None

    @property
    def textures(self) -> list[ViewTexture]:
        return [self.mosaic.texture] if self.mosaic is not None else []

    def dispatches(self, canvas_revision: int, canvas_busy: bool = False) -> list:
        key = (canvas_revision, self.run.weights_version)
        if key == self._key and not canvas_busy:
            return []
        self._key = key
        mosaic = [self.mosaic.dispatch] if self.mosaic is not None else []
        return self.forward.dispatches() + self.scales.dispatches() + mosaic
