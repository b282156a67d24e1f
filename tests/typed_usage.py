"""A user's typed program, checked by mypy in test_typing.py (never run)."""
from typing import Any

import numpy as np
from numpy.typing import NDArray

import fastbp

X = np.zeros((12, 4))
y = np.arange(12) % 2

clf: fastbp.MLPClassifier = fastbp.MLPClassifier(max_iter=5).fit(X, y)
clf = clf.partial_fit(X, y)
proba: NDArray[Any] = clf.predict_proba(X)
features: NDArray[Any] = clf.transform(X)
result: fastbp.Backprop = clf.backprop(X, y)
loss: float = result.loss
gradients: dict[str, NDArray[Any]] = result.gradients
error: float = fastbp.check_gradients(clf, X, y)
clf.save("model.npz")
loaded = fastbp.load("model.npz")
with open("model.fbp", "wb") as out:
    clf.save(out)
with open("model.fbp", "rb") as src:
    loaded = fastbp.load(src)

reg: fastbp.MLPRegressor = fastbp.MLPRegressor().fit(X, y.astype(float))
net: fastbp.LeNet5Classifier = fastbp.LeNet5Classifier().fit(np.zeros((4, 28, 28)), y[:4])

sequences = [np.zeros((3, 2)), np.zeros((5, 2))]
rnn: fastbp.RNNClassifier = fastbp.RNNClassifier(output="sequence").fit(
    sequences, [np.zeros(3), np.ones(5)])
labels: NDArray[Any] | list[Any] = rnn.predict(sequences)
states: NDArray[Any] | list[Any] = rnn.transform(sequences)
images, targets = fastbp.datasets.load_fashion_mnist(subset="test")
