"""Scalar formulas shared by every kernel (one definition, compiled per target).

Everything here works on one output point and never validates: the public
functions have already checked shapes, dtypes and options.  ``build(jit, ceil)``
compiles the same source for one target: ``njit(inline="always")`` for the
CPU loops, ``cuda.jit(device=True)`` for the CUDA kernels, so the two backends
cannot drift apart.

The one operation the targets spell differently is the float ceiling: NumPy's
``np.ceil`` has no lowering on the CUDA target, and ``math.ceil`` returns an
int64 under ``njit`` but a float (``ceilf``/``ceil``) on CUDA.  ``build``
therefore takes it as an argument: ``np.ceil`` for the CPU, ``math.ceil`` for
CUDA.  Both return the exact ceiling, so the results agree bit for bit.  Floor
is never needed: every rounding-down here is of a number ``>= 0``, where
conversion to int64 (truncation) is the floor.

Conventions
-----------
``top`` is the tuple of ``dim - 1`` per axis, floats of the compute dtype, ``one`` is ``1`` in
the compute dtype (kept as a value so that no float64 literal promotes a
float32 computation).  An index of ``-1`` marks a corner that lies outside the
volume: it contributes ``outside`` (the fill value).

Linear weights follow DeepReg v0.1.1 exactly, operation for operation, so that
float32 results agree to the last bit:

- ``boundary="clamp"``: ``c`` is clipped to ``[0, top]``, ``hi = ceil(c)``,
  ``lo = max(hi - 1, 0)``, ``w_lo = hi - c``.  A NaN ``c`` gives a NaN weight
  and therefore a NaN value.
- ``boundary="constant"``: ``c`` is not clipped; ``hi = ceil(c)``,
  ``lo = hi - 1``, ``w_lo = hi - c``; a corner outside ``[0, top]`` is ``-1``.
  A coordinate outside ``(-1, top + 1)`` (or NaN) has both corners outside.

Corners are combined as DeepReg's ``pyramid_combination``: first along axis
0, then axis 1, then axis 2, each step ``v_lo * w_lo + v_hi * (1 - w_lo)``.
"""

from types import SimpleNamespace

import numpy as np


def build(jit, ceil):
    """Compile every formula with ``jit`` and the target's float ``ceil``; returns a namespace of them."""

    @jit
    def linear_axis(c, top, one, constant):
        """Return ``(lo, hi, w_lo)``: the two corners along one axis and the floor weight."""
        if constant:
            if not (c > -one and c < top + one):
                return -1, -1, one
            hi_f = ceil(c)
            hi = np.int64(hi_f)
            lo = hi - 1
            if hi_f > top:
                hi = -1
            return lo, hi, hi_f - c
        if c != c:
            return 0, 0, c
        if c < 0:
            c = top - top
        elif c > top:
            c = top
        hi_f = ceil(c)
        hi = np.int64(hi_f)
        lo = hi - 1 if hi > 0 else hi
        return lo, hi, hi_f - c


    @jit
    def nearest_axis(c, top, constant):
        """Index of the nearest voxel, rounding half up: ``floor(c + 1/2)``; ``-1`` when outside or NaN.

        Past the checks ``c + 1/2 >= 0``, so the int64 conversion (truncation) is the floor.
        """
        if c != c:
            return -1
        if constant:
            if not (c >= -0.5 and c < top + 0.5):
                return -1
        elif c <= 0:
            return 0
        elif c >= top:
            return np.int64(top)
        return np.int64(np.float64(c) + 0.5)


    @jit
    def mix(v_lo, v_hi, w_lo, one):
        """DeepReg's one-dimensional combination ``v_lo * w_lo + v_hi * (1 - w_lo)``."""
        return v_lo * w_lo + v_hi * (one - w_lo)


    @jit
    def trilinear(v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one):
        """The 8 corner values ``v_ijk`` (``0`` = lo, ``1`` = hi corner per axis) combined in DeepReg's
        order: along axis 0 with ``wi``, then axis 1 with ``wj``, then axis 2 with ``wk``."""
        f00 = mix(v000, v100, wi, one)
        f10 = mix(v010, v110, wi, one)
        f01 = mix(v001, v101, wi, one)
        f11 = mix(v011, v111, wi, one)
        return mix(mix(f00, f10, wj, one), mix(f01, f11, wj, one), wk, one)


    @jit
    def tf_lerp(v_lo, v_hi, t):
        """TensorFlow's resize interpolation ``v_lo + (v_hi - v_lo) * t``."""
        return v_lo + (v_hi - v_lo) * t


    @jit
    def corner(src, offset, inside, outside):
        """``src[offset]`` for a corner inside the volume, else ``outside``."""
        if inside:
            return src[offset]
        return outside


    @jit
    def sample_point3(src, dims, base, x, y, z, top, nearest, constant, one, outside, dst, dst_base):
        """Sample a 3-D volume at ``(x, y, z)`` and write its channels to ``dst[dst_base:dst_base + ch]``.

        ``src`` is the flat C-order volume ``(batch, d1, d2, d3, ch)`` and
        ``dims == (d1, d2, d3, ch)``; ``base`` is the flat offset of the batch
        element.  Corners become flat offsets once per point, then every channel
        is combined in DeepReg's order (axis 0, 1, then 2).
        """
        d1, d2, d3, n_ch = dims
        s3 = n_ch
        s2 = d3 * s3
        s1 = d2 * s2
        if nearest:
            i = nearest_axis(x, top[0], constant)
            j = nearest_axis(y, top[1], constant)
            k = nearest_axis(z, top[2], constant)
            inside = i >= 0 and j >= 0 and k >= 0
            offset = base + i * s1 + j * s2 + k * s3
            for ch in range(n_ch):
                dst[dst_base + ch] = corner(src, offset + ch, inside, outside)
            return
        i0, i1, wi = linear_axis(x, top[0], one, constant)
        j0, j1, wj = linear_axis(y, top[1], one, constant)
        k0, k1, wk = linear_axis(z, top[2], one, constant)
        a0, a1 = base + i0 * s1, base + i1 * s1
        b0, b1 = j0 * s2, j1 * s2
        c0, c1 = k0 * s3, k1 * s3
        if not constant:
            for ch in range(n_ch):
                dst[dst_base + ch] = trilinear(
                    src[a0 + b0 + c0 + ch], src[a1 + b0 + c0 + ch], src[a0 + b1 + c0 + ch], src[a1 + b1 + c0 + ch],
                    src[a0 + b0 + c1 + ch], src[a1 + b0 + c1 + ch], src[a0 + b1 + c1 + ch], src[a1 + b1 + c1 + ch],
                    wi, wj, wk, one)
            return
        in_i0, in_i1, in_j0, in_j1, in_k0, in_k1 = i0 >= 0, i1 >= 0, j0 >= 0, j1 >= 0, k0 >= 0, k1 >= 0
        for ch in range(n_ch):
            dst[dst_base + ch] = trilinear(
                corner(src, a0 + b0 + c0 + ch, in_i0 and in_j0 and in_k0, outside),
                corner(src, a1 + b0 + c0 + ch, in_i1 and in_j0 and in_k0, outside),
                corner(src, a0 + b1 + c0 + ch, in_i0 and in_j1 and in_k0, outside),
                corner(src, a1 + b1 + c0 + ch, in_i1 and in_j1 and in_k0, outside),
                corner(src, a0 + b0 + c1 + ch, in_i0 and in_j0 and in_k1, outside),
                corner(src, a1 + b0 + c1 + ch, in_i1 and in_j0 and in_k1, outside),
                corner(src, a0 + b1 + c1 + ch, in_i0 and in_j1 and in_k1, outside),
                corner(src, a1 + b1 + c1 + ch, in_i1 and in_j1 and in_k1, outside),
                wi, wj, wk, one)


    @jit
    def sample_point2(src, dims, base, x, y, top, nearest, constant, one, outside, dst, dst_base):
        """Sample a 2-D volume ``(batch, d1, d2, ch)`` (flat ``src``, ``dims == (d1, d2, ch)``) at ``(x, y)``."""
        d1, d2, n_ch = dims
        s2 = n_ch
        s1 = d2 * s2
        if nearest:
            i = nearest_axis(x, top[0], constant)
            j = nearest_axis(y, top[1], constant)
            inside = i >= 0 and j >= 0
            offset = base + i * s1 + j * s2
            for ch in range(n_ch):
                dst[dst_base + ch] = corner(src, offset + ch, inside, outside)
            return
        i0, i1, wi = linear_axis(x, top[0], one, constant)
        j0, j1, wj = linear_axis(y, top[1], one, constant)
        a0, a1 = base + i0 * s1, base + i1 * s1
        b0, b1 = j0 * s2, j1 * s2
        for ch in range(n_ch):
            f0 = mix(corner(src, a0 + b0 + ch, i0 >= 0 and j0 >= 0, outside),
                     corner(src, a1 + b0 + ch, i1 >= 0 and j0 >= 0, outside), wi, one)
            f1 = mix(corner(src, a0 + b1 + ch, i0 >= 0 and j1 >= 0, outside),
                     corner(src, a1 + b1 + ch, i1 >= 0 and j1 >= 0, outside), wi, one)
            dst[dst_base + ch] = mix(f0, f1, wj, one)


    @jit
    def warp_grid_point(g0, g1, g2, t0, t1, t2, t3):
        """``[g0, g1, g2, 1] @ [t0, t1, t2, t3]``, accumulated in float64."""
        return np.float64(g0) * t0 + np.float64(g1) * t1 + np.float64(g2) * t2 + np.float64(t3)


    @jit
    def axis_derivative(field, offset, stride, index, size, inv_step, half):
        """The derivative of ``field`` along one axis at ``field[offset]`` (``index`` of ``size`` on that axis).

        Central difference ``(f[+1] - f[-1]) * (inv_step * half)`` inside; one-sided
        ``(f[+1] - f[0]) * inv_step`` and ``(f[0] - f[-1]) * inv_step`` at the two
        borders; 0 on an axis of one voxel.  ``stride`` is the axis's flat step.
        """
        if size == 1:
            return inv_step - inv_step
        if index == 0:
            return (field[offset + stride] - field[offset]) * inv_step
        if index == size - 1:
            return (field[offset] - field[offset - stride]) * inv_step
        return (field[offset + stride] - field[offset - stride]) * (inv_step * half)

    @jit
    def jacobian_point(field, offset, dims, i, j, k, inv_steps, half, one):
        """``det(I + du/dx)`` at voxel ``(i, j, k)`` of a flat field ``(..., f1, f2, f3, 3)`` (``dims``).

        ``offset`` is the flat index of the voxel's first component; entry ``(c, a)``
        of the Jacobian is :func:`axis_derivative` of component ``c`` along axis ``a``,
        and the determinant is expanded along the first row.
        """
        f1, f2, f3 = dims
        s2 = 3 * f3
        s1 = s2 * f2
        a00 = one + axis_derivative(field, offset, s1, i, f1, inv_steps[0], half)
        a01 = axis_derivative(field, offset, s2, j, f2, inv_steps[1], half)
        a02 = axis_derivative(field, offset, 3, k, f3, inv_steps[2], half)
        a10 = axis_derivative(field, offset + 1, s1, i, f1, inv_steps[0], half)
        a11 = one + axis_derivative(field, offset + 1, s2, j, f2, inv_steps[1], half)
        a12 = axis_derivative(field, offset + 1, 3, k, f3, inv_steps[2], half)
        a20 = axis_derivative(field, offset + 2, s1, i, f1, inv_steps[0], half)
        a21 = axis_derivative(field, offset + 2, s2, j, f2, inv_steps[1], half)
        a22 = one + axis_derivative(field, offset + 2, 3, k, f3, inv_steps[2], half)
        return a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20)

    @jit
    def resize_point_linear(image, b, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, ch):
        """One voxel of the separable half-pixel linear resize, in TensorFlow's order: axis 3, 2, then 1."""
        r00 = tf_lerp(image[b, lo1, lo2, lo3, ch], image[b, lo1, lo2, hi3, ch], t3)
        r01 = tf_lerp(image[b, lo1, hi2, lo3, ch], image[b, lo1, hi2, hi3, ch], t3)
        r10 = tf_lerp(image[b, hi1, lo2, lo3, ch], image[b, hi1, lo2, hi3, ch], t3)
        r11 = tf_lerp(image[b, hi1, hi2, lo3, ch], image[b, hi1, hi2, hi3, ch], t3)
        return tf_lerp(tf_lerp(r00, r01, t2), tf_lerp(r10, r11, t2), t1)

    return SimpleNamespace(
        linear_axis=linear_axis,
        nearest_axis=nearest_axis,
        mix=mix,
        trilinear=trilinear,
        tf_lerp=tf_lerp,
        corner=corner,
        sample_point3=sample_point3,
        sample_point2=sample_point2,
        warp_grid_point=warp_grid_point,
        resize_point_linear=resize_point_linear,
        axis_derivative=axis_derivative,
        jacobian_point=jacobian_point,
    )
