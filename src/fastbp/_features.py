"""transform for every fastbp estimator: the last hidden layer's activations,
as features for other estimators (a Pipeline step), with sklearn's
set_output and get_feature_names_out."""
from typing import Any

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._inputs import check_fitted
from ._typing import MatrixLike, NDArray


class HiddenFeaturesMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin):
    """transform, fit_transform, set_output and get_feature_names_out
    (``<classname>0``, ...) for an estimator with ``_network``, ``_check_X``
    and ``_n_threads``; ``_hidden_features`` is the hook that shapes the
    output (the RNNs')."""

    def transform(self, X: MatrixLike) -> NDArray[Any]:
        """The last hidden layer's activations for X: the features the
        network learned, for other estimators to use (e.g. in a Pipeline).

        They come from the forward pass ``predict`` runs, in the model's dtype.

        Parameters
        ----------
        X : array-like
            Input, as for ``predict``.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features_out)
            n_features_out is the width of the last hidden layer:
            ``hidden_layer_sizes[-1]`` for the MLPs (the input itself when
            there is no hidden layer), 84 (F6) for LeNet-5, ``hidden_size``
            for the RNNs (the final hidden state of each sequence). With
            ``output='sequence'`` an RNN gives the hidden state of every step,
            shaped (n_sequences, n_steps, hidden_size), or a list of
            (n_steps_i, hidden_size) arrays for sequences of different
            lengths; such output cannot be a DataFrame. After
            ``set_output(transform="pandas")``, a DataFrame whose columns are
            ``get_feature_names_out()`` (``mlpclassifier0``, ...).
        """
        check_fitted(self)
        return self._hidden_features(self._check_X(X))

    def _hidden_features(self, X):
        """transform of an X checked by ``_check_X``."""
        return self._network.features(X, self._n_threads())

    @property
    def _n_features_out(self):
        """Width of transform's output (named by get_feature_names_out)."""
        check_is_fitted(self, "_network")
        return self._network.layers[-1].n_in

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
