# The structures of a fused call, set up by _chain.pyx and run by
# _chain_engine.pyx, and the engine's entry points.
from cython cimport floating

cdef enum:
    UNITS_PER_LAYER = 17      # second-phase units of a layer: 16 gradient blocks + its bias


cdef struct Chain:
    # What every batch of a fused call shares. The pointer arrays hold
    # floating* of the call's dtype, one per layer (A: n_layers + 1).
    int n_layers
    Py_ssize_t* dims          # n_layers + 1 widths
    int* acts
    void** A                  # A[0] the batch's input, A[l + 1] layer l's outputs
    void** W
    void** b
    void** D                  # dL/dz of each layer
    void** gW
    void** gb
    void* Y                   # the batch's targets
    void* sw                  # the batch's sample weights, or NULL
    int kind
    int update                # UPDATE_NONE: gradients only
    Py_ssize_t* offsets       # 2 per layer: where W[l] and b[l] start in theta
    void* s1                  # the velocity, or Adam's moments, laid out as theta
    void* s2
    double beta_1
    double beta_2
    double epsilon
    bint nesterov
    const void* X_src         # gathering: batch row i is row order[i] of these
    const void* Y_src
    const void* sw_src


cdef struct ChainBatch:
    # One batch of a fused call.
    Py_ssize_t m
    const Py_ssize_t* order   # m rows of the gather sources, or NULL: A[0], Y, sw are the batch
    double scale              # delta = scale * w_i * dl_i/dz
    double l2_coef            # grad_W += l2_coef * W (0: none)
    double learning_rate
    int n_groups
    int n_cols0               # column blocks of layer 0's forward (0: it runs in the row groups)
    int n_units
    int* unit_layer
    int* unit_block
    int* unit_blocks
    double* row_loss          # m
    double* sumsq             # n_units + 1 (the last: layers summed after the team's)


cdef void chain_units(ChainBatch* bt, int n_layers, const Py_ssize_t* dims) noexcept nogil
cdef int chain_run(const Chain* c, ChainBatch* batches, int n_batches, int n_threads,
                   Py_ssize_t work, floating* tag) noexcept nogil
