"""Containers of live parameter views that write through into the model.

sklearn's ``coefs_`` is a plain list, so ``clf.coefs_[0] = W`` replaces the
layer's weights. fastbp's weights live in one flat vector, and a plain list of
views would silently drop such an assignment; these containers copy it into
the view instead, after checking its shape.
"""
import numpy as np


def copy_all_into(pairs):
    """Copy each (view, value, label)'s value into its parameter view, after
    checking every shape first, so that a bad item changes nothing."""
    checked = []
    for view, value, label in pairs:
        array = np.asarray(value)
        if array.shape != view.shape:
            raise ValueError(
                f"{label} has shape {view.shape}; got an array of shape {array.shape}. "
                "A fitted model's layer sizes are fixed: refit to change them.")
        checked.append((view, array))
    for view, array in checked:
        view[...] = array


class ParameterList(list):
    """A list of live views (one per layer) whose item assignment writes into
    the model. Its length is fixed; a copy (``copy.deepcopy``, pickle) is a
    plain list, detached from the model."""

    def __init__(self, views, name):
        super().__init__(views)
        self._name = name

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            targets = list(range(len(self)))[index]
            values = list(value)
            if len(values) != len(targets):
                raise ValueError(f"{self._name} holds one array per layer: {len(targets)} "
                                 f"arrays are needed here, got {len(values)}.")
            copy_all_into((list.__getitem__(self, i), v, f"{self._name}[{i}]")
                          for i, v in zip(targets, values))
            return
        i = range(len(self))[index]  # IndexError as for a list
        copy_all_into([(list.__getitem__(self, i), value, f"{self._name}[{i}]")])

    def _fixed_length(self, *args, **kwargs):
        raise TypeError(f"{self._name} holds one array per layer of the fitted model; "
                        "its length cannot change (refit with other hidden_layer_sizes).")

    append = extend = insert = pop = remove = clear = __delitem__ = _fixed_length
    __iadd__ = __imul__ = _fixed_length

    def __reduce_ex__(self, protocol):
        return list, (list(self),)


class ParameterDict(dict):
    """A dict of live views by name whose item assignment writes into the
    model. Its keys are fixed; a copy is a plain dict, detached from the model."""

    def __setitem__(self, key, value):
        self.update({key: value})

    def _fixed_keys(self, *args, **kwargs):
        raise TypeError("parameters_ holds the fitted model's parameters; "
                        "its keys cannot change.")

    __delitem__ = pop = popitem = clear = setdefault = _fixed_keys

    def update(self, *args, **kwargs):
        """Copy each given array into the parameter of its name; every key
        and shape is checked before anything is written."""
        items = dict(*args, **kwargs)
        for key in items:
            if key not in self:
                raise KeyError(f"{key!r} is not a parameter of this model; "
                               f"it has {', '.join(self)}.")
        copy_all_into((dict.__getitem__(self, key), value, f"parameters_[{key!r}]")
                      for key, value in items.items())

    def __ior__(self, other):  # type: ignore[misc]  # returns self, written through
        self.update(other)
        return self

    def __reduce_ex__(self, protocol):
        return dict, (dict(self),)
