"""75 seconds of the visualizer doing everything a user does, in a loop: live GPU
objects, RSS and frame time stay flat (benchmarks/soak.py runs it for 10 minutes)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))


@pytest.mark.slow
def test_one_minute_soak_is_flat(device):
    from soak import soak
    # A fixed 4 steps a frame and 1,000 test images: every cycle does the same work, so
    # frame time is comparable from the first third to the last.
    r = soak(seconds=30, warmup=45, sample_every=5, steps_per_frame=4, test_limit=1000, log=lambda *a: None)
    assert r["ok"], {k: r[k] for k in ("objects_growth", "rss_growth", "frame_ms_first", "frame_ms_last")}
    assert len(r["samples"]) >= 6
