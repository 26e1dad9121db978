"""Package data, not code: the model-zoo manifest and cards, installed as
``micronet_tf.zoo.catalog`` (see setup.py)."""
