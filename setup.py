"""Packaging glue; the metadata lives in setup.cfg.

Adds the TFDS dataset folders under ``datasets/`` as ``micronet_tf.tfds_datasets.<name>``
(``datasets/`` itself must never be a package: it would shadow Hugging Face's ``datasets``),
and the model-zoo catalogue ``zoo/`` (manifest.json, cards/) as ``micronet_tf.zoo.catalog``.
"""

from setuptools import find_packages, setup

TFDS_DATASETS = ("micronet_segmentation", "micronet")

setup(
    packages=find_packages(include=["micronet_tf", "micronet_tf.*"])
    + [f"micronet_tf.tfds_datasets.{name}" for name in TFDS_DATASETS]
    + ["micronet_tf.zoo.catalog"],
    package_dir={
        **{f"micronet_tf.tfds_datasets.{name}": f"datasets/{name}" for name in TFDS_DATASETS},
        "micronet_tf.zoo.catalog": "zoo",
    },
    package_data={
        **{
            f"micronet_tf.tfds_datasets.{name}": [
                "README.md",
                "CITATIONS.bib",
                "TAGS.txt",
                "checksums.tsv",
                "dummy_data/**/*",
            ]
            for name in TFDS_DATASETS
        },
        "micronet_tf.zoo.catalog": ["manifest.json", "README.md", "cards/*.md"],
    },
)
