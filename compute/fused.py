"""Placeholder replaced below."""
def fused_supported(model, config):
    return False
