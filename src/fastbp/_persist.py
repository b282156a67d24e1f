"""Saving and loading fitted estimators without pickle.

A model file is an ``.npz`` (zip) archive, written to exactly the path given
whatever its suffix: numeric arrays (theta, optimizer state, numeric labels)
plus one JSON document (``__meta__``) with the format version, the
estimator's name, its hyperparameters and its fitted scalars.
Loading uses ``allow_pickle=False`` and accepts only known estimator classes,
so opening a file from someone else runs no code. Every shape, dtype and
field is checked; a truncated, tampered or foreign file raises ``ValueError``.
"""
import io
import json
import math
import numbers
import os
import zipfile
from typing import NoReturn

import numpy as np
from sklearn.utils import check_random_state

from ._registry import loadable_classes
from ._typing import Any, FileLike

FORMAT = "fastbp-model"
FORMAT_VERSION = 1
META_KEY = "__meta__"
# Fitted attributes every estimator has, with the JSON types they may take.
COMMON_FITTED = {
    "n_features_in_": (int,),
    "n_iter_": (int,),
    "t_": (int,),
    "loss_": (float, int, type(None)),
    "loss_curve_": (list,),
    "best_loss_": (float, int, type(None)),
    "validation_scores_": (list, type(None)),
    "validation_loss_curve_": (list, type(None)),
    "best_validation_score_": (float, int, type(None)),
}


class ModelFileError(ValueError):
    """A model file that is not a valid fastbp model."""


def _fail(path, what) -> NoReturn:
    if hasattr(path, "read") or hasattr(path, "write"):  # a file object: its name
        path = getattr(path, "name", None) or "the file object"
    raise ModelFileError(f"{path!s} is not a valid fastbp model file: {what}")


def _check_binary(file, mode):
    """A text-mode file object would fail deep inside numpy or zipfile."""
    if isinstance(file, io.TextIOBase):
        raise ValueError(f"a model file must be opened in binary mode ({mode!r}), "
                         f"got a text-mode {type(file).__name__}")


def _to_json(value):
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_to_json(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a model file")


def save(estimator: Any, path: FileLike) -> None:
    """Write a fitted estimator to ``path`` (an .npz archive, no pickle).

    Parameters
    ----------
    estimator : fitted fastbp estimator
    path : str, path-like or binary file object
        Destination, used exactly as given: no suffix is added, so
        ``load(path)`` reads it back whatever its name. A file object must be
        open for binary writing; it is written to and left open.
    """
    from sklearn.utils.validation import check_is_fitted

    from ._version import __version__

    check_is_fitted(estimator, "_network")
    net = estimator._network
    params = estimator.get_params(deep=False)
    # the architecture the weights were trained with, not a set_params since
    params.update(getattr(estimator, "_built_with", {}))
    if not (params.get("random_state") is None
            or isinstance(params["random_state"], numbers.Integral)):
        params["random_state"] = None  # a RandomState object has no safe text form
    if isinstance(params.get("class_weight"), dict):
        # as [label, weight] pairs: JSON object keys would turn labels into text
        params["class_weight"] = [[k, w] for k, w in params["class_weight"].items()]
    fitted = {name: _to_json(getattr(estimator, name, None)) for name in COMMON_FITTED}
    # what continued training reads besides (epochs without improvement so
    # far; early stopping's best weights are theta once a fit ends)
    fitted["no_improvement_count"] = int(getattr(estimator, "_no_improvement_count", 0))
    names = getattr(estimator, "feature_names_in_", None)
    arrays = {"theta": net.theta}
    target_meta, target_arrays = estimator._target_state()
    arrays.update({f"target.{k}": v for k, v in target_arrays.items()})
    optimizer_meta, optimizer_arrays = _optimizer_state(estimator)
    arrays.update({f"optimizer.{k}": v for k, v in optimizer_arrays.items()})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastbp_version": __version__,
        "estimator": type(estimator).__name__,
        "params": _to_json(params),
        "fitted": fitted,
        "feature_names_in": None if names is None else [str(n) for n in names],
        "dtype": net.dtype.name,
        "sample_shape": [int(s) for s in estimator._sample_shape],
        "n_outputs": int(net.n_outputs),
        "target": target_meta,
        "optimizer": optimizer_meta,
    }
    blob = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    contents: dict[str, Any] = {META_KEY: blob, **arrays}
    if hasattr(path, "write"):
        _check_binary(path, "wb")
        np.savez(path, **contents)
    else:  # np.savez appends ".npz" to a name; handed a file object, it adds nothing
        with open(os.fspath(path), "wb") as f:
            np.savez(f, **contents)


def _optimizer_state(estimator):
    """The optimizer's ``state()``: its scalars (and kind) for the metadata,
    its arrays for the archive."""
    opt = getattr(estimator, "_optimizer", None)
    if opt is None:
        return None, {}
    state = opt.state()
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if k not in arrays}
    return {"kind": opt.kind, **meta}, arrays


def _npy_size(member):
    """Bytes the .npy ``member`` (an open archive member) says it holds past
    its header, and the header's length; ValueError when the header is
    malformed or holds objects."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f".npy format version {version}")
    if dtype.hasobject:
        raise ValueError("an array of Python objects")
    return math.prod(shape) * dtype.itemsize, member.tell()


def _members(path, npz):
    """The archive's arrays by name, each checked before it is read: a
    known name, stored as save stores it (uncompressed, so that no array
    is larger than the file), and its .npy header's size that of its data."""
    arrays = {}
    for info in npz.zip.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else None
        if name is None or not (name in (META_KEY, "theta")
                                or name.startswith(("target.", "optimizer."))):
            _fail(path, f"unexpected member {info.filename!r}")
        if info.compress_type != zipfile.ZIP_STORED:
            _fail(path, f"member {info.filename!r} is compressed")
        with npz.zip.open(info) as member:
            size, header = _npy_size(member)
        if size != info.file_size - header:
            _fail(path, f"member {info.filename!r} holds {info.file_size - header} bytes "
                        f"where its header says {size}")
        arrays[name] = npz[name]
    return arrays


def _read(path):
    _check_binary(path, "rb")
    try:
        if hasattr(path, "read"):
            start = path.tell()
            magic = path.read(4)
            path.seek(start)
        else:
            start = 0
            with open(os.fspath(path), "rb") as f:
                magic = f.read(4)
        if magic != b"PK\x03\x04":  # what np.load takes for an .npz archive
            _fail(path, "not an .npz archive")
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                _fail(path, "not an .npz archive")
            # zipfile reads the archive whose directory ends the stream
            if min((info.header_offset for info in npz.zip.infolist()), default=-1) != start:
                _fail(path, "the model is not the last thing in the file")
            arrays = _members(path, npz)
            if META_KEY not in arrays:
                _fail(path, "no metadata")
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError, MemoryError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        _fail(path, f"{type(exc).__name__}: {exc}")
    blob = arrays.pop(META_KEY)
    if blob.dtype != np.uint8 or blob.ndim != 1:
        _fail(path, "malformed metadata")
    try:
        meta = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        _fail(path, f"metadata is not JSON ({type(exc).__name__})")
    if not isinstance(meta, dict):
        _fail(path, "metadata is not a JSON object")
    return meta, arrays


def load(path: FileLike) -> Any:
    """Load an estimator written by ``save``; runs no code from the file.

    Parameters
    ----------
    path : str, path-like or binary file object
        The file ``save`` wrote, by the same name (any suffix), or a file
        object open for binary reading, positioned at the model's start.

    Returns
    -------
    estimator : fitted fastbp estimator

    Raises
    ------
    ValueError
        When the file is truncated, tampered with or not a fastbp model.
    FileNotFoundError
        When no file exists at ``path``.
    """
    meta, arrays = _read(path)
    if meta.get("format") != FORMAT:
        _fail(path, "wrong format tag")
    if meta.get("format_version") != FORMAT_VERSION:
        _fail(path, f"unsupported format version {meta.get('format_version')!r}")
    classes = loadable_classes()
    name = meta.get("estimator")
    cls = classes.get(name) if isinstance(name, str) else None
    if cls is None:
        _fail(path, f"unknown estimator {meta.get('estimator')!r}")
    params = meta.get("params")
    if not isinstance(params, dict) or set(params) - set(cls().get_params()):
        _fail(path, "hyperparameters do not belong to " + cls.__name__)
    try:
        params = cls._params_from_json(params)
    except (ValueError, TypeError) as exc:
        _fail(path, f"invalid hyperparameters ({exc})")
    if isinstance(params.get("class_weight"), list):
        pairs = params["class_weight"]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, float, str))
                   for p in pairs):
            _fail(path, "malformed class_weight")
        params["class_weight"] = {label: weight for label, weight in pairs}
    estimator = cls(**params)
    try:
        estimator._validate_params()
        check_random_state(params.get("random_state"))
    except (ValueError, TypeError) as exc:
        _fail(path, f"invalid hyperparameters ({exc})")

    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        _fail(path, f"unsupported dtype {dtype!r}")
    shape, n_outputs = meta.get("sample_shape"), meta.get("n_outputs")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 4
            or not all(isinstance(s, int) and 0 < s <= 1 << 24 for s in shape)
            or not isinstance(n_outputs, int) or not 0 < n_outputs <= 1 << 24):
        _fail(path, "malformed input or output shape")
    theta = arrays.get("theta")
    if theta is None or theta.dtype != np.dtype(dtype) or theta.ndim != 1:
        _fail(path, "missing or malformed parameter vector")
    if not np.all(np.isfinite(theta)):
        _fail(path, "non-finite parameters")

    fitted = meta.get("fitted")
    if not isinstance(fitted, dict):
        _fail(path, "missing fitted state")
    for name, types in COMMON_FITTED.items():
        value = fitted.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            _fail(path, f"fitted attribute {name} has the wrong type")
        setattr(estimator, name, value)
    # absent from the files of fastbp 0.x before it was stored
    no_improvement = fitted.get("no_improvement_count", 0)
    if not isinstance(no_improvement, int) or isinstance(no_improvement, bool) \
            or no_improvement < 0:
        _fail(path, "fitted attribute no_improvement_count must be a count")
    for name in ("loss_curve_", "validation_scores_", "validation_loss_curve_"):
        values = getattr(estimator, name)
        if values is not None and not all(isinstance(v, (int, float)) for v in values):
            _fail(path, f"{name} must hold numbers")
    names = meta.get("feature_names_in")
    if names is not None:
        if not (isinstance(names, list) and len(names) == estimator.n_features_in_
                and all(isinstance(n, str) for n in names)):
            _fail(path, "malformed feature names")
        estimator.feature_names_in_ = np.asarray(names, dtype=object)

    target_arrays = {k[len("target."):]: v for k, v in arrays.items() if k.startswith("target.")}
    try:
        estimator._restore_target_state(meta.get("target"), target_arrays, n_outputs)
        if not estimator._fits_sample_shape(tuple(shape)):
            raise ValueError("n_features_in_ does not match the input shape")
        # no rows: the shapes alone build the network, whatever size they claim
        X = np.zeros((0, *shape), dtype=dtype)
        Y = np.zeros((0, n_outputs), dtype=dtype)
        estimator._sample_shape = tuple(shape)
        estimator._network = estimator._build_network(X, Y, theta=theta)
        estimator._built_with = estimator._architecture()
    except (ValueError, TypeError, KeyError) as exc:
        _fail(path, str(exc))
    _restore_optimizer(path, estimator, meta.get("optimizer"), arrays, theta.size, dtype)
    estimator._no_improvement_count = no_improvement
    estimator._best_theta = (estimator._network.theta.copy()
                             if getattr(estimator, "early_stopping", False) else None)
    return estimator


def _restore_optimizer(path, estimator, opt_meta, arrays, size, dtype):
    from ._optimizers import OPTIMIZERS
    from ._solvers import SolverSettings

    if opt_meta is None:
        return
    kind = opt_meta.get("kind") if isinstance(opt_meta, dict) else None
    if not isinstance(kind, str) or kind not in OPTIMIZERS:
        _fail(path, "malformed optimizer state")
    state = {k: v for k, v in opt_meta.items() if k != "kind"}
    state.update({k[len("optimizer."):]: v for k, v in arrays.items()
                  if k.startswith("optimizer.")})
    try:
        estimator._optimizer = OPTIMIZERS[kind].from_state(
            state, SolverSettings.from_params(estimator.get_params()), size, dtype)
    except ValueError as exc:
        _fail(path, str(exc))
