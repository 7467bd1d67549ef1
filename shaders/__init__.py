"""Every WGSL kernel of the program, one file per family (loaded by compute/shaders.py)."""
