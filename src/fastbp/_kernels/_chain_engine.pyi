# Type stub of the compiled module _chain_engine.pyx (keep the two in step: a test compares them).
# The engine has no Python-level names: _chain.pyx calls it through its .pxd.
