from fastbp._version import __version__
