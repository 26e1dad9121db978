"""``python -m micronet_tf.torch_reference``: see :func:`micronet_tf.torch_reference.main`."""

from micronet_tf.torch_reference import main

main()
