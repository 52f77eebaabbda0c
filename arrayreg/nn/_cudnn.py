"""float32 ``conv3d`` on the GPU through NVIDIA's cuDNN frontend (``pip install nvidia-cudnn-frontend``).

CuPy 14 removed ``cupy.cudnn``; the frontend's graph API is NVIDIA's supported
route.  :func:`conv3d` builds (once per shape) a one-node graph, a cross
correlation on channels-last tensors with TensorFlow's ``pre``/``post``
padding, keeps only plans without the TENSOR_CORE / DOWN_CONVERT_INPUTS
numerical notes (no TF32, so results are float32 sums like the cuBLAS path),
and runs it on CuPy's current stream.

The frontend imports without the cuDNN library (``nvidia-cudnn-cu12`` or
``-cu13``, which the ``cudnn`` extras install), so :func:`binding` asks the
library for its version before it says yes; without a usable library the
caller takes the cuBLAS path quietly.  Plans are walked in the heuristics'
order and the first that builds is used: a plan that raises (a deselected
TF32 plan, an engine that declines the shape) is skipped, not fatal.
TensorFlow's asymmetric "same" padding (stride 2, even size: one more voxel
after than before) goes to cuDNN as separate pre- and post-padding.  Any other
failure (an unsupported shape, an API difference between frontend versions)
is reported once per shape as a ``RuntimeWarning`` and that shape falls back
to cuBLAS.
"""

from __future__ import annotations

import functools
import warnings


@functools.lru_cache(maxsize=1)
def binding():
    """The ``cudnn`` frontend module, or None when it cannot be imported or its library cannot be used.

    Importing the frontend proves nothing (it loads ``libcudnn`` lazily), so
    the library is asked for its version (``cudnn.backend_version()``).
    """
    try:
        import cudnn

        cudnn.backend_version()
    except Exception:  # noqa: BLE001 - ImportError, a missing libcudnn or a failing load: no cuDNN path
        return None
    return cudnn


@functools.cache
def _handle(device: int):
    return binding().create_handle()


def _channels_last(dims):
    """cuDNN's logical ``(n, c, spatial...)`` dims and strides of a C-contiguous ``(n, spatial..., c)`` array."""
    n, *spatial, c = dims
    strides = [1] * len(dims)
    for axis in range(len(dims) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * dims[axis + 1]
    return [n, c, *spatial], [strides[0], 1, *strides[1:-1]]


@functools.lru_cache(maxsize=64)
def _plan(device, x_shape, w_shape, out_shape, strides, pre, post):
    """The built graph and its x, w, y tensors for one convolution shape (``w`` is ``(f, k1, k2, k3, c)``)."""
    cudnn = binding()
    graph = cudnn.pygraph(handle=_handle(device), io_data_type=cudnn.data_type.FLOAT,
                          compute_data_type=cudnn.data_type.FLOAT)
    tensors = {}
    for name, shape in (("x", x_shape), ("w", w_shape)):
        dim, stride = _channels_last(shape)
        tensors[name] = graph.tensor(name=name, dim=dim, stride=stride, data_type=cudnn.data_type.FLOAT)
    y = graph.conv_fprop(image=tensors["x"], weight=tensors["w"], pre_padding=list(pre), post_padding=list(post),
                         stride=list(strides), dilation=[1, 1, 1], compute_data_type=cudnn.data_type.FLOAT)
    dim, stride = _channels_last(out_shape)
    y.set_output(True).set_data_type(cudnn.data_type.FLOAT).set_dim(dim).set_stride(stride)
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.deselect_numeric_notes([cudnn.numerical_note.TENSOR_CORE, cudnn.numerical_note.DOWN_CONVERT_INPUTS])
    graph.check_support()
    _build_first_plan(graph)
    return graph, tensors["x"], tensors["w"], y


def _build_first_plan(graph) -> int:
    """Build and select the first plan, in heuristic order, that builds; plans that raise are skipped."""
    for index in range(graph.get_execution_plan_count()):
        try:
            graph.build_plan_at_index(index)
        except Exception:  # noqa: BLE001 - a deselected (TF32) or declining plan: try the next one
            continue
        return index
    raise RuntimeError("no cuDNN execution plan without TF32 builds for this convolution")


_failed: set = set()


def conv3d(x, kernel, strides, pads):
    """``conv3d`` of float32 CuPy arrays by cuDNN, or None when cuDNN cannot run it (the caller falls back).

    ``x`` is ``(n, d1, d2, d3, c)``, ``kernel`` Keras' ``(k1, k2, k3, c, f)``,
    ``pads`` TensorFlow's ``(out, before, after)`` per axis.
    """
    import cupy

    out_shape = (x.shape[0], *(o for o, _, _ in pads), kernel.shape[4])
    weight = cupy.ascontiguousarray(kernel.transpose(4, 0, 1, 2, 3))
    key = (cupy.cuda.Device().id, x.shape, weight.shape, out_shape, strides,
           tuple(b for _, b, _ in pads), tuple(a for _, _, a in pads))
    if key in _failed:
        return None
    try:
        graph, x_t, w_t, y_t = _plan(*key)
        x = cupy.ascontiguousarray(x)
        out = cupy.empty(out_shape, dtype=cupy.float32)
        workspace = cupy.empty(graph.get_workspace_size(), dtype=cupy.uint8)
        handle = _handle(key[0])
        binding().set_stream(handle=handle, stream=cupy.cuda.get_current_stream().ptr)
        graph.execute({x_t: x.data.ptr, w_t: weight.data.ptr, y_t: out.data.ptr}, workspace.data.ptr, handle=handle)
    except Exception as error:  # noqa: BLE001 - any binding failure: fall back to cuBLAS, say so once
        _failed.add(key)
        warnings.warn(f"cuDNN conv3d failed for {key[1]} -> {out_shape} ({type(error).__name__}: {error}); "
                      "using the cuBLAS path", RuntimeWarning, stacklevel=3)
        return None
    return out
