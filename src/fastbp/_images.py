"""Images that a network sees zero-padded, kept unpadded until a batch or a
chunk of them is used: LeNet-5's 28x28 images, padded to 32x32 as LeCun did."""
import operator

import numpy as np

from ._gather import gather
from ._memory import aligned_zeros

# Bytes of images from which padded_into copies on the team (where take_rows
# itself starts to share a gather: one image alone took 4 us longer there).
_TEAM_MIN_BYTES = 32768


class PaddedImages:
    """Images that the network sees zero-padded by ``pad`` on each side,
    padded one batch at a time as a fit gathers them
    (``_batches.PaddedImageBatches``) and one chunk at a time by
    ``Network.predict``, instead of as a whole padded copy. NumPy sees the
    padded copy (``np.asarray``).

    Parameters
    ----------
    images : ndarray of shape (n_samples, maps, height, width)
        C-contiguous (a copy is made otherwise).
    pad : int
        At least 1.

    Attributes
    ----------
    images : ndarray
    pad : int
    shape : tuple of int
        The padded shape, (n_samples, maps, height + 2 pad, width + 2 pad).
    dtype : numpy.dtype
    """

    def __init__(self, images, pad):
        pad = operator.index(pad)
        if images.ndim != 4 or pad < 1:
            raise ValueError(f"PaddedImages takes images (n, maps, height, width) and a pad "
                             f"of at least 1, got shape {images.shape} and pad {pad}")
        self.images, self.pad = np.ascontiguousarray(images), pad

    @property
    def shape(self):
        n, maps, h, w = self.images.shape
        return (n, maps, h + 2 * self.pad, w + 2 * self.pad)

    @property
    def dtype(self):
        return self.images.dtype

    def __len__(self):
        return self.images.shape[0]

    def __getitem__(self, idx):
        """The samples ``idx`` (an index array or slice), still unpadded."""
        images = self.images[idx]
        if images.ndim != 4:
            raise TypeError(f"PaddedImages selects samples by an index array or a slice, "
                            f"not {idx!r}")
        return PaddedImages(images, self.pad)

    def astype(self, dtype, copy=True):
        """The images in ``dtype``, still unpadded."""
        return PaddedImages(self.images.astype(dtype, copy=copy), self.pad)

    def padded(self, dtype=None):
        """All the images padded: an ndarray of :attr:`shape`."""
        return self.padded_into(aligned_zeros(self.shape, self.dtype if dtype is None else dtype))

    def padded_into(self, out, n_threads=1):
        """The images written into the interior of ``out`` (an ndarray of
        :attr:`shape`, its border zero already, as a buffer reused for
        chunk after chunk keeps it), on ``n_threads`` of fastbp's team;
        returns ``out``."""
        if out.shape != self.shape:  # one check for both paths (NumPy would broadcast)
            raise ValueError(f"padded_into needs an output of shape {self.shape}, "
                             f"got {out.shape}")
        if n_threads > 1 and self.images.nbytes >= _TEAM_MIN_BYTES:
            gather([self.images], np.arange(len(self), dtype=np.intp), [out], n_threads,
                   pad=self.pad)
        else:  # a few images: NumPy's copy costs less than the team call's setup
            p = self.pad
            out[:, :, p:-p, p:-p] = self.images
        return out

    def __array__(self, dtype=None, copy=None):
        # NumPy's view of them: the padded copy (the network's input)
        if copy is False:
            raise ValueError("PaddedImages are padded into a new array: they cannot be "
                             "seen as one without a copy")
        return self.padded(dtype)
