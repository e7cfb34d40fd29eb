"""The data-source registry: a name -> loader map and :func:`load_dataset`.

Every loader returns a :class:`~noisyclr.data.table.DatasetSplits` with clean labels (``true_labels`` set) unless
the source says its labels are themselves noisy; label noise is added afterwards by :mod:`noisyclr.data.noise`.
A source that can stream (``folder``, ``mini_imagenet_cnwl``, ``clothing1m``, ``webvision``) also has a lister:
:func:`list_dataset` gives its splits as file listings (:class:`~noisyclr.data.table.FileTable`) without decoding
them.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .animal10n import load_animal10n
from .cifar import load_cifar10, load_cifar100
from .cifar_n import load_cifar10n, load_cifar100n
from .clothing1m import list_clothing1m, load_clothing1m
from .digits import load_digits
from .folder import list_folder, load_folder
from .mini_imagenet import list_mini_imagenet_cnwl, load_mini_imagenet_cnwl
from .synthetic import load_synthetic
from .table import DatasetSplits
from .tiny_imagenet import load_tiny_imagenet
from .webvision import list_webvision, load_webvision


@dataclass(frozen=True)
class _Source:
    loader: Callable[..., DatasetSplits]
    needs_root: bool
    uses_cache: bool
    description: str
    # the same splits listed, not decoded (a streamed run); None: the source is always decoded into memory
    lister: Callable[..., DatasetSplits] | None = None


_REGISTRY: dict[str, _Source] = {
    "digits": _Source(load_digits, False, False,
                      "scikit-learn's bundled 8x8 digits (1,297 train / 500 test, 10 classes); needs no root"),
    "synthetic": _Source(load_synthetic, False, False,
                         "generated class templates for tests; options num_classes, image_size, channels, "
                         "train_size, test_size, seed; needs no root"),
    "cifar10": _Source(load_cifar10, True, False,
                       "root holds cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta) or is it"),
    "cifar100": _Source(load_cifar100, True, False,
                        "root holds cifar-100-python/ (train, test, meta) or is it"),
    "cifar10n": _Source(load_cifar10n, True, True,
                        "CIFAR-10 with the CIFAR-10N human labels (use noise.kind=none): root holds CIFAR-10_human.pt "
                        "and cifar-10-batches-py/ or a train/<class>/, test/<class>/ image folder; options labels "
                        "(aggre|random1|random2|random3|worst, default worst), human_file, images "
                        "(auto|pickles|folder), index_file (folder: CSV path,index of the original order)"),
    "cifar100n": _Source(load_cifar100n, True, True,
                         "CIFAR-100 with the CIFAR-100N human labels (use noise.kind=none): root holds "
                         "CIFAR-100_human.pt and cifar-100-python/ or a train/<class>/, test/<class>/ image folder; "
                         "options labels (noisy_label|noisy_coarse_label: the 20 superclasses, default noisy_label), "
                         "human_file, images (auto|pickles|folder), index_file"),
    "folder": _Source(load_folder, True, True,
                      "root/train/<class>/* and root/test/<class>/* images (any format); option image_size; "
                      "can stream (dataset.stream)", lister=list_folder),
    "tiny_imagenet": _Source(load_tiny_imagenet, True, True,
                             "root is tiny-imagenet-200/ or holds it (train/<wnid>/images, val/val_annotations.txt)"),
    "animal10n": _Source(load_animal10n, True, True,
                         "root holds training/*.jpg (50,000, noisy labels) and testing/*.jpg (5,000), 64x64; "
                         "label = first character of the file name"),
    "mini_imagenet_cnwl": _Source(load_mini_imagenet_cnwl, True, True,
                                  "CNWL mini-ImageNet (100 classes, 84x84): root holds split/{red,blue}_noise_nl_<r> "
                                  "and split/clean_validation ('name.jpg label' lines), all_images/<name> and "
                                  "validation/<label>/<name>; options color (red|blue), noise_rate (r), image_size "
                                  "(default 84); can stream (dataset.stream)", lister=list_mini_imagenet_cnwl),
    "clothing1m": _Source(load_clothing1m, True, True,
                          "Clothing1M (14 classes, 1M noisy train, clean val and test): root holds "
                          "noisy_train_key_list.txt, noisy_label_kv.txt, clean_label_kv.txt, clean_val_key_list.txt, "
                          "clean_test_key_list.txt ('images/0/xx/yy.jpg label' lines) and images/0..9/; options "
                          "image_size (default 256), train_keys (first N training keys); can stream (dataset.stream)",
                          lister=list_clothing1m),
    "webvision": _Source(load_webvision, True, True,
                         "mini-WebVision (first 50 classes of the Google subset; test = WebVision val, extra test "
                         "imagenet_val): root holds info/train_filelist_google.txt, info/val_filelist.txt, "
                         "info/synsets.txt, google/, val_images_256/, imagenet/val/<wnid>/; options num_classes "
                         "(default 50), image_size (default 320), imagenet_val (true|false); can stream "
                         "(dataset.stream)",
                         lister=list_webvision),
}

#: name -> one line saying what the source expects on disk (shown by ``noisyclr datasets``).
SOURCES: dict[str, str] = {name: src.description for name, src in _REGISTRY.items()}


def describe_sources() -> list[tuple[str, str]]:
    """``(name, description)`` for every registered source, sorted by name."""
    return sorted(SOURCES.items())


def _options_of(loader: Callable) -> list[str]:
    params = inspect.signature(loader).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "cache_dir"]


def streaming_sources() -> list[str]:
    """Names of the sources that can stream (have a lister), sorted."""
    return sorted(name for name, src in _REGISTRY.items() if src.lister is not None)


def can_stream(name: str) -> bool:
    """Whether the source ``name`` can be listed without decoding (:func:`list_dataset`)."""
    source = _REGISTRY.get(name)
    return source is not None and source.lister is not None


def load_dataset(name: str, root: str | None = None, *, cache_dir: str | None = None, **options) -> DatasetSplits:
    """Load the source ``name`` (see :data:`SOURCES`) with its source-specific ``options``.

    ``root`` is the dataset folder for file-based sources (ignored by ``digits`` and ``synthetic``); ``cache_dir``
    is where decoded images are cached (``folder``, ``tiny_imagenet``; default ``$NOISYCLR_CACHE`` or
    ``~/.cache/noisyclr``). Unknown names and options raise :class:`UserError`.
    """
    return _call(name, root, cache_dir, options, listing=False)


def list_dataset(name: str, root: str | None = None, *, cache_dir: str | None = None, **options) -> DatasetSplits:
    """The splits of source ``name`` as file listings (:class:`~noisyclr.data.table.FileTable`), nothing decoded;
    same arguments and checks as :func:`load_dataset`. Only for sources where :func:`can_stream` holds."""
    return _call(name, root, cache_dir, options, listing=True)


def check_source(name: str, root, options: dict) -> None:
    """The source ``name`` exists, takes ``options``, and has the root folder it needs (UserErrors); nothing is
    read. The layout under the root is checked when the source loads."""
    source = _REGISTRY.get(name)
    if source is None:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown dataset '{name}'; {hint}valid names: {', '.join(sorted(_REGISTRY))}")
    valid = _options_of(source.loader)
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            if close:
                hint = f"did you mean '{close[0]}'?"
            else:
                hint = f"valid options: {', '.join(valid)}" if valid else "it takes no options"
            raise UserError(f"unknown option dataset.options.{key} for dataset {name}; {hint}")
    if source.needs_root:
        if root is None:
            raise UserError(f"dataset {name} needs a root folder; set dataset.root=PATH ({source.description})")
        if not Path(root).expanduser().is_dir():
            raise UserError(f"dataset root {root} does not exist or is not a folder; set dataset.root=PATH "
                            f"({source.description})")


def _call(name: str, root, cache_dir, options: dict, listing: bool) -> DatasetSplits:
    check_source(name, root, options)
    source = _REGISTRY[name]
    args = [root] if source.needs_root else []
    if source.uses_cache:
        options["cache_dir"] = cache_dir
    if listing:
        if source.lister is None:
            raise ValueError(f"dataset {name} cannot be listed without decoding")  # callers check can_stream
        return source.lister(*args, **options)
    return source.loader(*args, **options)
