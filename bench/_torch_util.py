"""PyTorch pieces shared by the bench scripts' torch contenders. Only a torch
contender's own process calls these (torch is imported inside them)."""
from _harness import Unavailable


def import_torch(n_threads):
    """torch, its intra-op pool set to n_threads; Unavailable if not installed."""
    try:
        import torch
    except ImportError:
        raise Unavailable("PyTorch is not installed")
    torch.set_num_threads(n_threads)
    return torch


def backend_report(torch):
    """What PyTorch computes with, for the report's "blas" entry."""
    return [f"torch {torch.__version__}, MKL: {torch.backends.mkl.is_available()}, "
            f"oneDNN: {torch.backends.mkldnn.is_available()}"]


def train_step(model, optimizer, loss_fn):
    """One mini-batch step, ``step(xb, yb)``: forward, loss, backward and the
    optimizer's update (what every torch contender times)."""
    def step(xb, yb):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    return step


def snapshot(model):
    """Copies of the parameters, for ``reset_in_place``."""
    return [p.detach().clone() for p in model.parameters()]


def reset_in_place(torch, model, optimizer, initial):
    """Back to the ``snapshot`` with no momentum, after a warm-up: a zero
    momentum buffer gives torch's first SGD step, as no buffer does."""
    with torch.no_grad():
        for p, p0 in zip(model.parameters(), initial):
            p.copy_(p0)
        for state in optimizer.state.values():
            if state.get("momentum_buffer") is not None:
                state["momentum_buffer"].zero_()
