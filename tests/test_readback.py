"""The readback meters themselves: the wgpu-level meter of the tests (conftest.WgpuReads)
sees every GPU -> CPU transfer, and the device's ReadbackMeter, which the program's
"zero readback" promise rests on, agrees with it for every read the engine makes."""
import numpy as np
import wgpu

from mnist_viz.compute.metrics import RunMetrics


def test_wgpu_meter_sees_raw_reads_and_not_writes(device, wgpu_reads):
    """Guards against a meter with holes: a raw queue.read_buffer, a raw map of a staging
    buffer and a texture read must each count once with their size; uploads must not."""
    buf = device.upload(np.arange(100, dtype=np.float32), "probe")
    device.queue.read_buffer(buf)                                  # raw: bypasses Device.read
    staging = device.device.create_buffer(size=64, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST,
                                          label="staging")
    staging.map_sync(wgpu.MapMode.READ)
    staging.unmap()
    tex = device.device.create_texture(size=(8, 4, 1), format=wgpu.TextureFormat.rgba8unorm,
                                       usage=wgpu.TextureUsage.COPY_SRC | wgpu.TextureUsage.COPY_DST, label="tex")
    device.queue.read_texture({"texture": tex}, {"bytes_per_row": 32}, (8, 4, 1))
    upload = device.device.create_buffer(size=64, usage=wgpu.BufferUsage.MAP_WRITE | wgpu.BufferUsage.COPY_SRC)
    upload.map_sync(wgpu.MapMode.WRITE)
    upload.unmap()
    device.write(buf, np.zeros(100, np.float32))
    assert wgpu_reads.reads == [("probe", 400), ("staging", 64), ("tex", 128)]


def test_device_meter_counts_every_read_the_engine_makes(device, wgpu_reads):
    """Guards against a Device.read / read_async that stops recording (the meter's record
    call removed): the device's count and bytes must equal what wgpu transferred."""
    metrics = RunMetrics(10)
    buf = device.upload(np.arange(64, dtype=np.uint32), "probe")
    before = device.readback.snapshot()
    device.read(buf)
    device.read(buf, 16, 32)
    pending = device.read_async(buf, 8, 16, "probe.async")
    assert np.frombuffer(pending.result(), np.uint32).tolist() == [2, 3, 4, 5]
    metrics.read_state()
    metrics.read_history(0, 3)
    metrics.read_evaluation()
    total, count, _ = device.readback.snapshot()
    assert wgpu_reads.count == 7
    assert (count - before[1], total - before[0]) == (wgpu_reads.count, wgpu_reads.total_bytes)
