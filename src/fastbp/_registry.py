"""The estimator classes that ``fastbp.load`` may build, by name.

Each estimator class registers itself with the :func:`loadable` decorator
where it is defined, so that the model-file reader looks classes up here
and imports no estimator module (which would close an import circle through
the base class that saves them).
"""

_LOADABLE: dict = {}


def loadable(cls):
    """Class decorator: let ``fastbp.load`` build ``cls`` from a model file
    that names it.

    Parameters
    ----------
    cls : type
        A fastbp estimator class; its ``__name__`` is what a model file
        records.

    Returns
    -------
    cls : type
        The class itself, unchanged.
    """
    known = _LOADABLE.get(cls.__name__)
    # the same class defined again (a reloaded module) takes the old one's place;
    # another class of the same name would make model files ambiguous
    if known is not None and (known.__module__, known.__qualname__) != (
            cls.__module__, cls.__qualname__):
        raise ValueError(f"two loadable estimator classes are named {cls.__name__}: "
                         f"{known.__module__}.{known.__qualname__} and "
                         f"{cls.__module__}.{cls.__qualname__}")
    _LOADABLE[cls.__name__] = cls
    return cls


def loadable_classes():
    """dict of str to type: every registered estimator class, by name."""
    return dict(_LOADABLE)
