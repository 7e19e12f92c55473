"""Data sources: real and generated images as uint8 ``(N, C, H, W)`` numpy arrays.

- :mod:`.idx`: idx files and the Fashion-MNIST data set (Debian ``dataset-fashion-mnist``).
- :mod:`.folder`: folders of PNG/JPEG/WebP images, GM-CIFAR10-style benchmark layouts and folders of
  model folders (``models_path``).

Images keep their native channels (grayscale C=1, RGB C=3); any resize is an
explicit :class:`Resize` that can be recorded with ``Resize.to_dict()``.
"""

from manifpt_core.sources.folder import (
    IMAGE_SUFFIXES,
    MODEL_NAME_PATTERN,
    RESIZE_FILTERS,
    Resize,
    discover_benchmark,
    discover_models,
    folder_content_hash,
    folder_labels,
    list_image_files,
    load_image_folder,
    observe_folder,
)
from manifpt_core.sources.idx import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ENV,
    FASHION_MNIST_SPLITS,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
)

__all__ = [
    "DEFAULT_FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV",
    "FASHION_MNIST_SPLITS",
    "IMAGE_SUFFIXES",
    "MODEL_NAME_PATTERN",
    "RESIZE_FILTERS",
    "Resize",
    "discover_benchmark",
    "discover_models",
    "fashion_mnist_dir",
    "folder_content_hash",
    "folder_labels",
    "list_image_files",
    "load_fashion_mnist",
    "load_image_folder",
    "observe_folder",
    "read_idx",
]
