"""Data shipped with the program: MNIST (gzipped IDX with MD5SUMS) and pretrained models."""
