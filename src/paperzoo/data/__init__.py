"""Datasets: procedural generators (embedded scales) and real-data loaders (paper scale).

* :mod:`.primitives`   shape kinds, textures and colours shared by the generators
* :mod:`.shapes`       COCO-format detection + instance segmentation set (PNG + COCO JSON)
* :mod:`.classes`      many-class classification set with disjoint upstream/downstream classes
* :mod:`.digits`       scikit-learn's bundled ``load_digits`` (real 8x8 images, offline)
* :mod:`.sets`         in-memory ``ClassificationSet`` / ``DetectionSet`` and batch helpers
* :mod:`.generate`     CLI writing a dataset + ``manifest.json`` (what the Snakemake rules call)
* :mod:`.coco_download` COCO 2017 download / safe extraction / verification (paper scale)
* :mod:`.coco`         real COCO loader with the DETR augmentations

Embedded-scale data stay in memory as uint8 tensors: the 2-core CPU is the bottleneck,
so there are no DataLoader workers.
"""
