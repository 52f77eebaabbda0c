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

The interpolation ``method`` is one of the ints :data:`LINEAR`, :data:`NEAREST`,
:data:`LABEL` and :data:`CUBIC` (module constants, so a literal method compiles
to one branch):

- ``LABEL``: the linear corners and weights; each label id among the 8 corners
  scores ``trilinear`` of its indicator (1 where a corner holds the id, else 0),
  exactly the value a one-hot warp gives its channel, and the highest score wins,
  ties to the smallest id.
- ``CUBIC``: the cubic B-spline of the image extended to infinity (by its edge
  values for ``clamp``, by ``outside`` for ``constant``), evaluated from the
  prefiltered coefficients (:func:`build` ``.cubic_point3``).  The coefficients
  beyond the grid follow from those inside in closed form: along an axis, with
  ``z = sqrt(3) - 2`` and ``e`` the extension value, ``c[-m] = e + z**m (c[0] - e)``,
  where for ``clamp`` ``e = ((4 + z) c[0] + c[1]) / (5 + z)`` (the sample at 0).  A
  tap outside is therefore folded onto the taps 0 and 1 (or ``n - 1`` and
  ``n - 2``), and the 4 taps of an axis always fall in 4 consecutive voxels.
"""

from types import SimpleNamespace

import numpy as np

LINEAR, NEAREST, LABEL, CUBIC = 0, 1, 2, 3
CUBIC_MARGIN = 32  # voxels: beyond it, z**m < 1e-18 and the spline equals its limit to float64 rounding


def build(jit, ceil, call=None):
    """Compile every formula with ``jit`` and the target's float ``ceil``; returns a namespace of them.

    ``call`` (default ``jit``) compiles the large formulas of the label vote, the
    cubic spline and its prefilter: on the CPU a plain ``njit``, so that they are
    called (and inlined by LLVM where it pays) rather than inlined into every
    kernel's Numba IR, which would make compiling them take minutes.
    """
    call = jit if call is None else call

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


    @call
    def indicator(value, label, one):
        """``1`` where ``value == label``, else ``0``, in the compute dtype."""
        return one if value == label else one - one

    @call
    def label_score(label, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one):
        """:func:`trilinear` of the indicator of ``label`` at the 8 corners: its channel in a one-hot warp."""
        return trilinear(indicator(v000, label, one), indicator(v100, label, one), indicator(v010, label, one),
                         indicator(v110, label, one), indicator(v001, label, one), indicator(v101, label, one),
                         indicator(v011, label, one), indicator(v111, label, one), wi, wj, wk, one)

    @call
    def better_label(best, best_score, label, score):
        """The winner of two ``(label, score)`` candidates: the higher score, ties to the smaller label."""
        if score > best_score or (score == best_score and label < best):
            return label, score
        return best, best_score

    @call
    def label_vote(v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one):
        """The label of the 8 corners with the largest :func:`label_score` (ties to the smallest id); each
        distinct label is scored once."""
        if (v000 == v100 and v000 == v010 and v000 == v110 and v000 == v001 and v000 == v101 and v000 == v011
                and v000 == v111):
            return v000
        best, best_score = v000, label_score(v000, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one)
        if v100 != v000:
            best, best_score = better_label(best, best_score, v100, label_score(
                v100, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        if v010 != v000 and v010 != v100:
            best, best_score = better_label(best, best_score, v010, label_score(
                v010, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        if v110 != v000 and v110 != v100 and v110 != v010:
            best, best_score = better_label(best, best_score, v110, label_score(
                v110, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        if v001 != v000 and v001 != v100 and v001 != v010 and v001 != v110:
            best, best_score = better_label(best, best_score, v001, label_score(
                v001, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        if v101 != v000 and v101 != v100 and v101 != v010 and v101 != v110 and v101 != v001:
            best, best_score = better_label(best, best_score, v101, label_score(
                v101, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        if v011 != v000 and v011 != v100 and v011 != v010 and v011 != v110 and v011 != v001 and v011 != v101:
            best, best_score = better_label(best, best_score, v011, label_score(
                v011, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        if (v111 != v000 and v111 != v100 and v111 != v010 and v111 != v110 and v111 != v001 and v111 != v101
                and v111 != v011):
            best, best_score = better_label(best, best_score, v111, label_score(
                v111, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one))
        return best

    @call
    def store8(dst, index, method, v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one, outside):
        """``dst[index]`` = the 8 corner values combined: :func:`label_vote` (``outside`` for a NaN weight)
        or :func:`trilinear`.  Each branch stores its own result, so an integer vote is never a float."""
        if method == LABEL:
            if wi != wi or wj != wj or wk != wk:
                dst[index] = outside
            else:
                dst[index] = label_vote(v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one)
        else:
            dst[index] = trilinear(v000, v100, v010, v110, v001, v101, v011, v111, wi, wj, wk, one)

    @call
    def add_to_slot(weight, slot, w0, w1, w2, w3):
        """``(w0, w1, w2, w3)`` with ``weight`` added to entry ``slot``."""
        if slot == 0:
            return w0 + weight, w1, w2, w3
        if slot == 1:
            return w0, w1 + weight, w2, w3
        if slot == 2:
            return w0, w1, w2 + weight, w3
        return w0, w1, w2, w3 + weight

    @call
    def fold_tap(index, weight, start, n, spline, one, constant, w0, w1, w2, w3):
        """Add the weight of tap ``index`` (any integer) to the 4 window weights of voxels ``start..start + 3``.

        A tap inside ``[0, n)`` keeps its weight.  A tap ``m`` voxels beyond an
        edge has the coefficient ``e + z**m (c[edge] - e)``: for ``constant``
        (``e`` the fill value, added by the caller) ``weight * z**m`` goes to the
        edge voxel; for ``clamp`` the weight splits between the edge voxel and its
        neighbour as ``e`` does (``fold_a``, ``fold_b``).
        """
        z, fold_a, fold_b, _ = spline
        if index >= 0 and index < n:
            return add_to_slot(weight, index - start, w0, w1, w2, w3)
        if index < 0:
            m, edge, neighbour = -index, 0, 1
        else:
            m, edge, neighbour = index - (n - 1), n - 1, n - 2
        z_m = one
        for _ in range(m):
            z_m = z_m * z
        if constant:
            return add_to_slot(weight * z_m, edge - start, w0, w1, w2, w3)
        if n == 1:
            return add_to_slot(weight, edge - start, w0, w1, w2, w3)
        w0, w1, w2, w3 = add_to_slot(weight * (fold_a + z_m * (one - fold_a)), edge - start, w0, w1, w2, w3)
        return add_to_slot(weight * (fold_b - z_m * fold_b), neighbour - start, w0, w1, w2, w3)

    @jit
    def cubic_taps(c, top, spline, one):
        """``(f, tap0, tap1, tap2, tap3)``: the cubic B-spline weights of the voxels ``f - 1 .. f + 2`` for
        coordinate ``c`` (not NaN).

        ``c`` is first clipped to ``[-margin, top + margin]``; with ``f = floor(c)`` and ``t = c - f`` the
        taps weigh ``(1 - t)**3 / 6``, ``2/3 - t**2 (1 - t/2)``, the remainder, and ``t**3 / 6``.
        """
        margin = spline[3]
        if c < -margin:
            c = -margin
        elif c > top + margin:
            c = top + margin
        f_floor = -ceil(-c)
        t = c - f_floor
        u = one - t
        half = one / (one + one)
        sixth = one / (one + one + one + one + one + one)
        tap0 = u * u * u * sixth
        tap3 = t * t * t * sixth
        tap1 = (one + one) / (one + one + one) - t * t * (one - half * t)
        tap2 = one - tap0 - tap1 - tap3
        return np.int64(f_floor), tap0, tap1, tap2, tap3

    @call
    def fold_taps(f, tap0, tap1, tap2, tap3, n, spline, one, constant):
        """``(start, w0, w1, w2, w3)``: the taps of voxels ``f - 1 .. f + 2`` folded (:func:`fold_tap`) into
        the 4 voxels ``start .. start + 3`` of an axis of ``n`` voxels (entries at or past ``n`` weigh 0)."""
        start = 0 if n < 4 else min(max(f - 1, 0), n - 4)
        zero = one - one
        w0, w1, w2, w3 = fold_tap(f - 1, tap0, start, n, spline, one, constant, zero, zero, zero, zero)
        w0, w1, w2, w3 = fold_tap(f, tap1, start, n, spline, one, constant, w0, w1, w2, w3)
        w0, w1, w2, w3 = fold_tap(f + 1, tap2, start, n, spline, one, constant, w0, w1, w2, w3)
        w0, w1, w2, w3 = fold_tap(f + 2, tap3, start, n, spline, one, constant, w0, w1, w2, w3)
        return start, w0, w1, w2, w3

    @jit
    def cubic_axis(c, n, top, spline, one, constant):
        """``(start, w0, w1, w2, w3)``: the cubic B-spline taps of coordinate ``c`` (not NaN) on an axis of
        ``n`` voxels (``top = n - 1``), folded into the voxels ``start .. start + 3``: :func:`cubic_taps`,
        then :func:`fold_taps` unless all 4 taps lie inside (folding would add each weight to a zero)."""
        f, tap0, tap1, tap2, tap3 = cubic_taps(c, top, spline, one)
        if n >= 4 and f >= 1 and f <= n - 3:
            return f - 1, tap0, tap1, tap2, tap3
        return fold_taps(f, tap0, tap1, tap2, tap3, n, spline, one, constant)

    @jit
    def taps4(src, offset, stride, n_taps, w0, w1, w2, w3):
        """``sum(w_a * src[offset + a * stride])`` over the first ``n_taps`` (1 to 4) entries; 4 taps are
        summed as a tree, ``(t0 + t1) + (t2 + t3)``, so that the products do not wait on each other."""
        if n_taps == 4:
            return (w0 * src[offset] + w1 * src[offset + stride]) + (w2 * src[offset + 2 * stride]
                                                                      + w3 * src[offset + 3 * stride])
        value = w0 * src[offset]
        if n_taps > 1:
            value += w1 * src[offset + stride]
        if n_taps > 2:
            value += w2 * src[offset + 2 * stride]
        return value

    @jit
    def taps16(src, offset, s2, s3, n2, n3, wj, wk):
        """The 4x4 taps of one plane: ``sum_b wj[b] * taps4(row b)`` (a tree over 4 rows)."""
        r0 = taps4(src, offset, s3, n3, wk[0], wk[1], wk[2], wk[3])
        if n2 == 4:
            r1 = taps4(src, offset + s2, s3, n3, wk[0], wk[1], wk[2], wk[3])
            r2 = taps4(src, offset + 2 * s2, s3, n3, wk[0], wk[1], wk[2], wk[3])
            r3 = taps4(src, offset + 3 * s2, s3, n3, wk[0], wk[1], wk[2], wk[3])
            return (wj[0] * r0 + wj[1] * r1) + (wj[2] * r2 + wj[3] * r3)
        value = wj[0] * r0
        if n2 > 1:
            value += wj[1] * taps4(src, offset + s2, s3, n3, wk[0], wk[1], wk[2], wk[3])
        if n2 > 2:
            value += wj[2] * taps4(src, offset + 2 * s2, s3, n3, wk[0], wk[1], wk[2], wk[3])
        return value

    @jit
    def taps64(src, offset, s1, s2, s3, n1, n2, n3, wi, wj, wk):
        """The ``n1 x n2 x n3`` taps (each 1 to 4) from ``src[offset]``: ``sum_a wi[a] * taps16(plane a)``,
        4 planes summed as a tree."""
        p0 = taps16(src, offset, s2, s3, n2, n3, wj, wk)
        if n1 == 4:
            p1 = taps16(src, offset + s1, s2, s3, n2, n3, wj, wk)
            p2 = taps16(src, offset + 2 * s1, s2, s3, n2, n3, wj, wk)
            p3 = taps16(src, offset + 3 * s1, s2, s3, n2, n3, wj, wk)
            return (wi[0] * p0 + wi[1] * p1) + (wi[2] * p2 + wi[3] * p3)
        value = wi[0] * p0
        if n1 > 1:
            value += wi[1] * taps16(src, offset + s1, s2, s3, n2, n3, wj, wk)
        if n1 > 2:
            value += wi[2] * taps16(src, offset + 2 * s1, s2, s3, n2, n3, wj, wk)
        return value

    @jit
    def spline_rest(wi, wj, wk, one):
        """``1 - Wi Wj Wk`` (``W`` the sum of an axis's 4 weights): the weight of the fill value (``constant``)."""
        return one - (wi[0] + wi[1] + wi[2] + wi[3]) * (wj[0] + wj[1] + wj[2] + wj[3]) * (wk[0] + wk[1] + wk[2]
                                                                                          + wk[3])

    @call
    def cubic_point3(src, dims, base, x, y, z, top, constant, one, outside, spline, dst, dst_base):
        """Cubic B-spline value at ``(x, y, z)`` of the coefficients ``src`` (flat, laid out as
        :func:`sample_point3`'s), every channel: ``sum_abc wi[a] wj[b] wk[c] src[...]``, plus
        ``outside * (1 - Wi Wj Wk)`` for ``constant`` (``W`` the sum of an axis's weights).
        A NaN coordinate gives ``outside``."""
        d1, d2, d3, n_ch = dims
        s3 = n_ch
        s2 = d3 * s3
        s1 = d2 * s2
        if x != x or y != y or z != z:
            for ch in range(n_ch):
                dst[dst_base + ch] = outside
            return
        si, wi0, wi1, wi2, wi3 = cubic_axis(x, d1, top[0], spline, one, constant)
        sj, wj0, wj1, wj2, wj3 = cubic_axis(y, d2, top[1], spline, one, constant)
        sk, wk0, wk1, wk2, wk3 = cubic_axis(z, d3, top[2], spline, one, constant)
        wj, wk = (wj0, wj1, wj2, wj3), (wk0, wk1, wk2, wk3)
        n1, n2, n3 = min(d1, 4), min(d2, 4), min(d3, 4)
        wi = (wi0, wi1, wi2, wi3)
        rest = spline_rest(wi, wj, wk, one)
        for ch in range(n_ch):
            value = taps64(src, base + si * s1 + sj * s2 + sk * s3 + ch, s1, s2, s3, n1, n2, n3, wi, wj, wk)
            if constant:
                value += outside * rest
            dst[dst_base + ch] = value

    @jit
    def linear_point3(src, dims, base, x, y, z, top, method, constant, one, outside, dst, dst_base):
        """:func:`sample_point3` for ``LINEAR`` and ``LABEL``: the 8 corners (:func:`linear_axis`) and
        :func:`store8` of every channel; with ``constant`` a corner outside the volume reads ``outside``."""
        d1, d2, d3, n_ch = dims
        s3 = n_ch
        s2 = d3 * s3
        s1 = d2 * s2
        i0, i1, wi = linear_axis(x, top[0], one, constant)
        j0, j1, wj = linear_axis(y, top[1], one, constant)
        k0, k1, wk = linear_axis(z, top[2], one, constant)
        a0, a1 = base + i0 * s1, base + i1 * s1
        b0, b1 = j0 * s2, j1 * s2
        c0, c1 = k0 * s3, k1 * s3
        if not constant:
            for ch in range(n_ch):
                store8(
                    dst, dst_base + ch, method,
                    src[a0 + b0 + c0 + ch], src[a1 + b0 + c0 + ch], src[a0 + b1 + c0 + ch], src[a1 + b1 + c0 + ch],
                    src[a0 + b0 + c1 + ch], src[a1 + b0 + c1 + ch], src[a0 + b1 + c1 + ch], src[a1 + b1 + c1 + ch],
                    wi, wj, wk, one, outside)
            return
        in_i0, in_i1, in_j0, in_j1, in_k0, in_k1 = i0 >= 0, i1 >= 0, j0 >= 0, j1 >= 0, k0 >= 0, k1 >= 0
        for ch in range(n_ch):
            store8(
                dst, dst_base + ch, method,
                corner(src, a0 + b0 + c0 + ch, in_i0 and in_j0 and in_k0, outside),
                corner(src, a1 + b0 + c0 + ch, in_i1 and in_j0 and in_k0, outside),
                corner(src, a0 + b1 + c0 + ch, in_i0 and in_j1 and in_k0, outside),
                corner(src, a1 + b1 + c0 + ch, in_i1 and in_j1 and in_k0, outside),
                corner(src, a0 + b0 + c1 + ch, in_i0 and in_j0 and in_k1, outside),
                corner(src, a1 + b0 + c1 + ch, in_i1 and in_j0 and in_k1, outside),
                corner(src, a0 + b1 + c1 + ch, in_i0 and in_j1 and in_k1, outside),
                corner(src, a1 + b1 + c1 + ch, in_i1 and in_j1 and in_k1, outside),
                wi, wj, wk, one, outside)


    @jit
    def sample_point3(src, dims, base, x, y, z, top, method, constant, one, outside, spline, dst, dst_base):
        """Sample a 3-D volume at ``(x, y, z)`` and write its channels to ``dst[dst_base:dst_base + ch]``.

        ``src`` is the flat C-order volume ``(batch, d1, d2, d3, ch)`` and
        ``dims == (d1, d2, d3, ch)``; ``base`` is the flat offset of the batch
        element.  Corners become flat offsets once per point, then every channel
        is combined in DeepReg's order (axis 0, 1, then 2), or voted on
        (``LABEL``).  ``CUBIC`` reads B-spline coefficients (:func:`cubic_point3`).
        """
        d1, d2, d3, n_ch = dims
        s3 = n_ch
        s2 = d3 * s3
        s1 = d2 * s2
        if method == CUBIC:
            cubic_point3(src, dims, base, x, y, z, top, constant, one, outside, spline, dst, dst_base)
            return
        if method == NEAREST:
            i = nearest_axis(x, top[0], constant)
            j = nearest_axis(y, top[1], constant)
            k = nearest_axis(z, top[2], constant)
            inside = i >= 0 and j >= 0 and k >= 0
            offset = base + i * s1 + j * s2 + k * s3
            for ch in range(n_ch):
                dst[dst_base + ch] = corner(src, offset + ch, inside, outside)
            return
        linear_point3(src, dims, base, x, y, z, top, method, constant, one, outside, dst, dst_base)


    @call
    def spline_line(data, first, n, stride, width, constant, fill, prefilter):
        """Replace the samples ``s[k] = data[first + m + k * stride]``, ``k < n``, of each of the ``width``
        adjacent lines ``m`` by their cubic B-spline coefficients, for the line extended to infinity by
        ``fill`` (``constant``) or by its end samples.

        ``prefilter = (z, g, h, six)`` with ``z = sqrt(3) - 2``, ``g = z / (1 - z)``,
        ``h = -6 z / (1 - z**2)``.  Causal pass ``p[0] = s[0] + e_left g``,
        ``p[k] = s[k] + z p[k-1]``; anticausal pass ``c[n-1] = h (p[n-1] + e_right g)``,
        ``c[k] = z (c[k+1] - 6 p[k])``.  The two initial values are the exact sums of
        the infinite tails (a constant ``e`` beyond each end), so the coefficients
        are those of the infinitely extended line, with no truncated series.  Each
        step runs over the ``width`` lines (contiguous: one vector operation on the
        CPU); a CUDA thread takes one line (``width == 1``).
        """
        z, g, h, six = prefilter
        last = first + (n - 1) * stride
        if n == 1:
            for m in range(width):
                sample = data[first + m]
                edge = fill if constant else sample
                data[first + m] = h * ((sample + edge * g) + edge * g)
            return
        for m in range(width):
            sample = data[first + m]
            data[first + m] = sample + (fill if constant else sample) * g
        for k in range(1, n - 1):
            here = first + k * stride
            for m in range(width):
                data[here + m] = data[here + m] + z * data[here - stride + m]
        for m in range(width):
            sample = data[last + m]
            data[last + m] = h * ((sample + z * data[last - stride + m]) + (fill if constant else sample) * g)
        for k in range(n - 2, -1, -1):
            here = first + k * stride
            for m in range(width):
                data[here + m] = z * (data[here + stride + m] - six * data[here + m])

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
    def stencil(index, size, stride, inv_step, half):
        """``(plus, minus, scale)``: the difference ``(f[+plus] - f[-minus]) * scale`` along one axis at ``index``.

        Central ``(stride, stride, inv_step * half)`` inside; one-sided
        ``(stride, 0, inv_step)`` and ``(0, stride, inv_step)`` at the two borders;
        ``(0, 0, inv_step)`` (a derivative of 0) on an axis of one voxel.
        ``stride`` is the axis's flat step.
        """
        if size == 1:
            return 0, 0, inv_step
        if index == 0:
            return stride, 0, inv_step
        if index == size - 1:
            return 0, stride, inv_step
        return stride, stride, inv_step * half

    @jit
    def difference(field, offset, plus, minus, scale):
        """``(field[offset + plus] - field[offset - minus]) * scale``: one entry of the Jacobian."""
        return (field[offset + plus] - field[offset - minus]) * scale

    @jit
    def jacobian_point(field, offset, pi, mi, hi, pj, mj, hj, pk, mk, hk, one):
        """``det(I + du/dx)`` at the voxel whose first component is ``field[offset]`` (a flat
        ``(..., 3)`` field), from the :func:`stencil` of each axis.

        Entry ``(c, a)`` of the Jacobian is :func:`difference` of component ``c``
        with axis ``a``'s stencil; the determinant is expanded along the first row.
        """
        a00 = one + difference(field, offset, pi, mi, hi)
        a01 = difference(field, offset, pj, mj, hj)
        a02 = difference(field, offset, pk, mk, hk)
        a10 = difference(field, offset + 1, pi, mi, hi)
        a11 = one + difference(field, offset + 1, pj, mj, hj)
        a12 = difference(field, offset + 1, pk, mk, hk)
        a20 = difference(field, offset + 2, pi, mi, hi)
        a21 = difference(field, offset + 2, pj, mj, hj)
        a22 = one + difference(field, offset + 2, pk, mk, hk)
        return a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20)

    @jit
    def resize_point_linear(image, b, lo1, hi1, t1, lo2, hi2, t2, lo3, hi3, t3, ch):
        """One voxel of the separable half-pixel linear resize, in TensorFlow's order: axis 3, 2, then 1."""
        r00 = tf_lerp(image[b, lo1, lo2, lo3, ch], image[b, lo1, lo2, hi3, ch], t3)
        r01 = tf_lerp(image[b, lo1, hi2, lo3, ch], image[b, lo1, hi2, hi3, ch], t3)
        r10 = tf_lerp(image[b, hi1, lo2, lo3, ch], image[b, hi1, lo2, hi3, ch], t3)
        r11 = tf_lerp(image[b, hi1, hi2, lo3, ch], image[b, hi1, hi2, hi3, ch], t3)
        return tf_lerp(tf_lerp(r00, r01, t2), tf_lerp(r10, r11, t2), t1)

    @jit
    def affine_point(m, x0, x1, x2):
        """``m @ [x0, x1, x2, 1]`` for a ``(3, 4)`` float64 matrix ``m``: three float64 values."""
        return (m[0, 0] * x0 + m[0, 1] * x1 + m[0, 2] * x2 + m[0, 3],
                m[1, 0] * x0 + m[1, 1] * x1 + m[1, 2] * x2 + m[1, 3],
                m[2, 0] * x0 + m[2, 1] * x1 + m[2, 2] * x2 + m[2, 3])

    @jit
    def field_component(fields, c, a0, a1, b0, b1, c0, c1, wi, wj, wk, one):
        """:func:`trilinear` of component ``c`` of a flat ``(n1, n2, n3, 3)`` field at the corners whose flat
        offsets along the three axes are ``a0, a1``, ``b0, b1`` and ``c0, c1``."""
        return trilinear(fields[a0 + b0 + c0 + c], fields[a1 + b0 + c0 + c], fields[a0 + b1 + c0 + c],
                         fields[a1 + b1 + c0 + c], fields[a0 + b0 + c1 + c], fields[a1 + b0 + c1 + c],
                         fields[a0 + b1 + c1 + c], fields[a1 + b1 + c1 + c], wi, wj, wk, one)

    @jit
    def field_step(fields, table, m, x0, x1, x2):
        """``x + u(q)``, ``q = m @ [x, 1]`` the point in a field's voxels, ``u`` the field's vectors sampled as
        ITK's ``DisplacementFieldTransform`` samples them: linearly with the edges clamped (:func:`linear_axis`,
        :func:`trilinear`) where ``-1/2 <= q < n - 1/2`` on every axis, else 0 (NaN too).

        ``table = (offset in fields, n1, n2, n3)``.
        """
        q0, q1, q2 = affine_point(m, x0, x1, x2)
        n1, n2, n3 = table[1], table[2], table[3]
        one = np.float64(1)
        half = one / (one + one)
        if not (q0 >= -half and q0 < n1 - half and q1 >= -half and q1 < n2 - half and q2 >= -half
                and q2 < n3 - half):
            return x0, x1, x2
        i0, i1, wi = linear_axis(q0, np.float64(n1 - 1), one, False)
        j0, j1, wj = linear_axis(q1, np.float64(n2 - 1), one, False)
        k0, k1, wk = linear_axis(q2, np.float64(n3 - 1), one, False)
        s2 = 3 * n3
        s1 = n2 * s2
        a0, a1 = table[0] + i0 * s1, table[0] + i1 * s1
        b0, b1, c0, c1 = j0 * s2, j1 * s2, 3 * k0, 3 * k1
        return (x0 + field_component(fields, 0, a0, a1, b0, b1, c0, c1, wi, wj, wk, one),
                x1 + field_component(fields, 1, a0, a1, b0, b1, c0, c1, wi, wj, wk, one),
                x2 + field_component(fields, 2, a0, a1, b0, b1, c0, c1, wi, wj, wk, one))

    @jit
    def field_at_voxel(fields, table, m, i, j, k, x0, x1, x2):
        """:func:`field_step` for a field whose voxel is the reference voxel ``(i, j, k)`` moved by whole
        voxels, ``q = (i, j, k) + m[:, 3]`` (``m``'s 3x3 part the identity, its offsets integers): ITK's rule
        at an integral point reads that voxel's own vector where ``0 <= q < n`` on every axis, else 0.

        ``table = (offset in fields, n1, n2, n3)``.
        """
        q0, q1, q2 = i + np.int64(m[0, 3]), j + np.int64(m[1, 3]), k + np.int64(m[2, 3])
        n1, n2, n3 = table[1], table[2], table[3]
        if not (q0 >= 0 and q0 < n1 and q1 >= 0 and q1 < n2 and q2 >= 0 and q2 < n3):
            return x0, x1, x2
        offset = table[0] + 3 * ((q0 * n2 + q1) * n3 + q2)
        return x0 + fields[offset], x1 + fields[offset + 1], x2 + fields[offset + 2]

    @jit
    def chain_point(i, j, k, start, kinds, matrices, fields, tables, finish, subtract):
        """The displacement of reference voxel ``(i, j, k)`` through a chain of world transforms, in float64.

        ``x = start @ [i, j, k, 1]`` (the voxel in world coordinates), then for each step ``s`` in order an
        affine (``kinds[s] == 0``) ``x = matrices[s] @ [x, 1]``, a field (``kinds[s] == 1``,
        :func:`field_step` with ``matrices[s]`` and ``tables[s]``) or, first in the chain only, a field
        read at the reference voxels (``kinds[s] == 2``, :func:`field_at_voxel`).  Returns
        ``finish @ [x, 1] - subtract @ [i, j, k, 1]``.  The CPU kernel makes the same calls step by step
        over a row of voxels, so both targets round alike.
        """
        x0, x1, x2 = affine_point(start, np.float64(i), np.float64(j), np.float64(k))
        for s in range(kinds.shape[0]):
            if kinds[s] == 0:
                x0, x1, x2 = affine_point(matrices[s], x0, x1, x2)
            elif kinds[s] == 1:
                x0, x1, x2 = field_step(fields, tables[s], matrices[s], x0, x1, x2)
            else:
                x0, x1, x2 = field_at_voxel(fields, tables[s], matrices[s], i, j, k, x0, x1, x2)
        return chain_end(i, j, k, finish, subtract, x0, x1, x2)

    @jit
    def chain_end(i, j, k, finish, subtract, x0, x1, x2):
        """``finish @ [x, 1] - subtract @ [i, j, k, 1]``: the last step of :func:`chain_point`."""
        y0, y1, y2 = affine_point(finish, x0, x1, x2)
        p0, p1, p2 = affine_point(subtract, np.float64(i), np.float64(j), np.float64(k))
        return y0 - p0, y1 - p1, y2 - p2

    return SimpleNamespace(
        linear_axis=linear_axis,
        nearest_axis=nearest_axis,
        mix=mix,
        trilinear=trilinear,
        tf_lerp=tf_lerp,
        corner=corner,
        sample_point3=sample_point3,
        linear_point3=linear_point3,
        label_vote=label_vote,
        spline_line=spline_line,
        cubic_axis=cubic_axis,
        taps64=taps64,
        spline_rest=spline_rest,
        sample_point2=sample_point2,
        warp_grid_point=warp_grid_point,
        resize_point_linear=resize_point_linear,
        stencil=stencil,
        jacobian_point=jacobian_point,
        chain_point=chain_point,
        affine_point=affine_point,
        field_step=field_step,
        field_at_voxel=field_at_voxel,
        chain_end=chain_end,
    )
