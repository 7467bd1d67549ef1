"""What a long run must keep flat: live GPU objects and process memory."""
from __future__ import annotations

import os

import wgpu

TRACKED = ("Buffer", "Texture", "TextureView", "BindGroup", "ComputePipeline", "RenderPipeline", "ShaderModule",
           "CommandEncoder", "CommandBuffer", "QuerySet", "Sampler")


def live_objects() -> dict[str, int]:
    """Live wgpu objects per type (wgpu-py's own counters)."""
    counts = wgpu.diagnostics.object_counts.get_dict()
    return {k: counts.get(k, {}).get("count", 0) for k in TRACKED}


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        return 0
