"""GPU time of encoded work from a compute pass's timestamps: the one measurement the
micro-benchmarks share (dispatch_floor.py, grid_barrier.py, resident_profile.py)."""
from __future__ import annotations

import numpy as np
import wgpu


def gpu_us(dev, encode, per: int, repeats: int = 3, after=None) -> float:
    """Best of `repeats` GPU times, in us, of what `encode(encoder, timestamp_writes)` puts in one
    compute pass, divided by `per` (the dispatches or steps it holds). `after()` runs after each."""
    qs = dev.device.create_query_set(type=wgpu.QueryType.timestamp, count=2)
    buf = dev.device.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
    best = float("inf")
    for _ in range(repeats):
        enc = dev.device.create_command_encoder()
        encode(enc, {"query_set": qs, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1})
        enc.resolve_query_set(qs, 0, 2, buf, 0)
        dev.submit(enc)
        t0, t1 = np.frombuffer(dev.read(buf, label="timestamps"), np.uint64)
        best = min(best, (t1 - t0) / per / 1000.0)      # WebGPU timestamps are nanoseconds
        if after is not None:
            after()
    return best
