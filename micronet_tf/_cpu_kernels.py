"""Turn on TensorFlow's oneDNN CPU kernels on every x86 CPU, before TensorFlow is imported.

TensorFlow enables them by default only on CPUs with AVX-512 VNNI / BF16 or AMX. On others
(an AVX2-only AMD EPYC here) a U-Net resnet18 training step at 8x256x256 takes 3.8 s without
them and 2.9 s with them. A user's own ``TF_ENABLE_ONEDNN_OPTS`` (``0`` turns them off) wins;
importing TensorFlow before micronet_tf leaves TensorFlow's own default in place.
"""

from __future__ import annotations

import os

ENV = "TF_ENABLE_ONEDNN_OPTS"

os.environ.setdefault(ENV, "1")
