/* zapstack.crypto.ringtail._ringfast: R_q arithmetic in C (NTT, inverse NTT, NTT-domain matmul).
 *
 * The same functions as zapstack/crypto/ringtail/ring.py (ntt_np, intt_np, matmul_ntt_np are the
 * readable references; tests/crypto/test_ringtail_ringfast.py holds this module equal to them).
 * q = 2^48 + 18945, ring Z_q[X]/(X^256 + 1).  Every array is a C-contiguous buffer of native int64
 * (numpy int64 arrays qualify) whose entries must lie in [0, q); the twiddle tables are passed in
 * from ring.py so both paths use the same constants.
 *
 *   ntt(buf, npolys, zetas) -> bool         in place on npolys * 256 entries
 *   intt(buf, npolys, zetas_inv, n_inv) -> bool
 *   matmul_ntt(left, right, out, r, c, k) -> bool   (r,c,256) x (c,k,256) -> out (r,k,256)
 *   polar_block(words, npairs, tail, x_out, keep_out)  sampling.py's _polar_block_np
 *
 * polar_block reproduces sampling.py's Gaussian block bit for bit: the same IEEE-754 double
 * operations (+ - * / sqrt, frexp) in the same order, no fused multiply-add (setup.py compiles
 * this file with -ffp-contract=off; -std=c11 also implies it).
 *
 * Each returns False, touching nothing, when an input entry is outside [0, q) (the caller then
 * uses the numpy path, so out-of-contract input behaves exactly as before); True on success.
 * Errors: ValueError for a buffer of the wrong size or item size, TypeError for a non-buffer,
 * BufferError for a read-only output.  The GIL is released while computing.
 *
 * mulmod: the 97-bit product a*b = hi*2^48 + lo is folded with 2^48 = -18945 (mod q) twice,
 * using only exact unsigned integer arithmetic (argued at fold()). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define DEG 256
#define Q ((uint64_t)281474976729601ULL) /* 2^48 + 18945 */
#define FOLD ((uint64_t)18945)
#define MASK48 ((((uint64_t)1) << 48) - 1)

/* x mod q for x < 2^112 (a product of two entries is below q^2 < 2^97).  With x = hi*2^48 + lo
 * (hi < 2^64, lo < 2^48): x = lo - FOLD*hi (mod q).  y = FOLD*hi < 2^79 (128-bit) splits as
 * y = yh*2^48 + yl (yh < 2^31), so y = yl - FOLD*yh and x = lo - yl + FOLD*yh (mod q).
 * lo + FOLD*yh + (q - yl) < 2^48 + 2^46 + q + 1 < 2^50 is exact in uint64, and % by the
 * constant Q compiles to a multiply-high, not a division. */
static inline uint64_t fold(unsigned __int128 x) {
    uint64_t lo = (uint64_t)x & MASK48;
    uint64_t hi = (uint64_t)(x >> 48);
    unsigned __int128 y = (unsigned __int128)hi * FOLD;
    uint64_t yl = (uint64_t)y & MASK48;
    uint64_t yh = (uint64_t)(y >> 48);
    return (lo + FOLD * yh + (Q - yl)) % Q;
}

static inline uint64_t mulmod(uint64_t a, uint64_t b) {
    return fold((unsigned __int128)a * b);
}

static inline uint64_t addmod(uint64_t a, uint64_t b) {
    uint64_t s = a + b;
    return s >= Q ? s - Q : s;
}

static inline uint64_t submod(uint64_t a, uint64_t b) {
    return a >= b ? a - b : a + Q - b;
}

static int in_range(const uint64_t *a, Py_ssize_t n) {
    uint64_t bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= (uint64_t)(a[i] >= Q);
    return bad == 0;
}

static void ntt_one(uint64_t *a, const uint64_t *zetas) {
    for (int half = DEG / 2; half >= 1; half /= 2) {
        int groups = DEG / (2 * half);
        for (int g = 0; g < groups; g++) {
            uint64_t z = zetas[groups + g];
            uint64_t *lo = a + 2 * half * g, *hi = lo + half;
            for (int j = 0; j < half; j++) {
                uint64_t t = mulmod(hi[j], z);
                hi[j] = submod(lo[j], t);
                lo[j] = addmod(lo[j], t);
            }
        }
    }
}

static void intt_one(uint64_t *a, const uint64_t *zetas_inv, uint64_t n_inv) {
    for (int half = 1; half < DEG; half *= 2) {
        int groups = DEG / (2 * half);
        for (int g = 0; g < groups; g++) {
            uint64_t z = zetas_inv[groups + g];
            uint64_t *lo = a + 2 * half * g, *hi = lo + half;
            for (int j = 0; j < half; j++) {
                uint64_t l = lo[j], h = hi[j];
                lo[j] = addmod(l, h);
                hi[j] = mulmod(submod(l, h), z);
            }
        }
    }
    for (int i = 0; i < DEG; i++) a[i] = mulmod(a[i], n_inv);
}

/* Get a C-contiguous buffer of exactly `count` 8-byte items. */
static int get_i64(PyObject *obj, Py_buffer *view, Py_ssize_t count, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != 8 || count < 0 || view->len != count * 8) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd int64 items, got %zd bytes (itemsize %zd)",
                     name, count, view->len, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *py_ntt(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *bo, *zo;
    Py_ssize_t npolys;
    if (!PyArg_ParseTuple(args, "OnO:ntt", &bo, &npolys, &zo)) return NULL;
    Py_buffer b, z;
    if (npolys < 0 || npolys > PY_SSIZE_T_MAX / (DEG * 8)) {
        PyErr_SetString(PyExc_ValueError, "ntt: bad polynomial count");
        return NULL;
    }
    if (get_i64(bo, &b, npolys * DEG, 1, "ntt buf") < 0) return NULL;
    if (get_i64(zo, &z, DEG, 0, "ntt zetas") < 0) { PyBuffer_Release(&b); return NULL; }
    uint64_t *a = (uint64_t *)b.buf;
    const uint64_t *zt = (const uint64_t *)z.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = in_range(a, npolys * DEG) && in_range(zt, DEG);
    if (ok)
        for (Py_ssize_t p = 0; p < npolys; p++) ntt_one(a + p * DEG, zt);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&z);
    PyBuffer_Release(&b);
    return PyBool_FromLong(ok);
}

static PyObject *py_intt(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *bo, *zo;
    Py_ssize_t npolys;
    unsigned long long n_inv;
    if (!PyArg_ParseTuple(args, "OnOK:intt", &bo, &npolys, &zo, &n_inv)) return NULL;
    Py_buffer b, z;
    if (npolys < 0 || npolys > PY_SSIZE_T_MAX / (DEG * 8)) {
        PyErr_SetString(PyExc_ValueError, "intt: bad polynomial count");
        return NULL;
    }
    if (get_i64(bo, &b, npolys * DEG, 1, "intt buf") < 0) return NULL;
    if (get_i64(zo, &z, DEG, 0, "intt zetas") < 0) { PyBuffer_Release(&b); return NULL; }
    uint64_t *a = (uint64_t *)b.buf;
    const uint64_t *zt = (const uint64_t *)z.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = n_inv < Q && in_range(a, npolys * DEG) && in_range(zt, DEG);
    if (ok)
        for (Py_ssize_t p = 0; p < npolys; p++) intt_one(a + p * DEG, zt, (uint64_t)n_inv);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&z);
    PyBuffer_Release(&b);
    return PyBool_FromLong(ok);
}

/* out[i,j,:] = sum_m left[i,m,:] * right[m,j,:] mod q.  Each reduced product is < 2^49, so up to
 * 2^14 of them sum exactly in uint64 before the final reduction (c is bounded below). */
static void matmul(const uint64_t *left, const uint64_t *right, uint64_t *out, Py_ssize_t r,
                   Py_ssize_t c, Py_ssize_t k) {
    for (Py_ssize_t i = 0; i < r; i++) {
        for (Py_ssize_t j = 0; j < k; j++) {
            uint64_t *o = out + (i * k + j) * DEG;
            for (int s = 0; s < DEG; s++) o[s] = 0;
            for (Py_ssize_t m = 0; m < c; m++) {
                const uint64_t *x = left + (i * c + m) * DEG;
                const uint64_t *y = right + (m * k + j) * DEG;
                for (int s = 0; s < DEG; s++) o[s] += mulmod(x[s], y[s]);
            }
            for (int s = 0; s < DEG; s++) o[s] %= Q;
        }
    }
}

static PyObject *py_matmul_ntt(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *lo, *ro, *oo;
    Py_ssize_t r, c, k;
    if (!PyArg_ParseTuple(args, "OOOnnn:matmul_ntt", &lo, &ro, &oo, &r, &c, &k)) return NULL;
    const Py_ssize_t lim = 1 << 14;
    if (r < 0 || c < 0 || k < 0 || r > lim || c > lim || k > lim) {
        PyErr_SetString(PyExc_ValueError, "matmul_ntt: dimensions must be in [0, 2^14]");
        return NULL;
    }
    Py_buffer lb, rb, ob;
    if (get_i64(lo, &lb, r * c * DEG, 0, "matmul_ntt left") < 0) return NULL;
    if (get_i64(ro, &rb, c * k * DEG, 0, "matmul_ntt right") < 0) {
        PyBuffer_Release(&lb);
        return NULL;
    }
    if (get_i64(oo, &ob, r * k * DEG, 1, "matmul_ntt out") < 0) {
        PyBuffer_Release(&rb);
        PyBuffer_Release(&lb);
        return NULL;
    }
    const uint64_t *l = (const uint64_t *)lb.buf, *rr = (const uint64_t *)rb.buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = in_range(l, r * c * DEG) && in_range(rr, c * k * DEG);
    if (ok) matmul(l, rr, (uint64_t *)ob.buf, r, c, k);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&ob);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&lb);
    return PyBool_FromLong(ok);
}

/* sampling.det_log for one double: s = m*2^e, m in [sqrt(1/2), sqrt(2)),
 * ln s = e*LN2 + 2y*sum_k y^(2k)/(2k+1), y = (m-1)/(m+1), Horner from k = 10 down. */
static double det_log(double s) {
    int e;
    double m = frexp(s, &e);
    if (m < 0.7071067811865476) {
        m = m * 2.0;
        e = e - 1;
    }
    double y = (m - 1.0) / (m + 1.0);
    double y2 = y * y;
    double acc = 1.0 / 21.0;
    for (int k = 9; k >= 0; k--) acc = acc * y2 + 1.0 / (double)(2 * k + 1);
    return (double)e * 0.6931471805599453 + (2.0 * y) * acc;
}

/* sampling._polar_block_np: words (npairs, 2) uint64 -> x (npairs, 2) double, keep (npairs, 2). */
static void polar(const uint64_t *w, Py_ssize_t npairs, double tail, double *x, uint8_t *keep) {
    const double two53 = 9007199254740992.0;
    for (Py_ssize_t i = 0; i < npairs; i++) {
        int64_t k0 = (int64_t)(w[2 * i] >> 11), k1 = (int64_t)(w[2 * i + 1] >> 11);
        double v0 = (double)(2 * k0 + 1 - ((int64_t)1 << 53)) / two53;
        double v1 = (double)(2 * k1 + 1 - ((int64_t)1 << 53)) / two53;
        double s = v0 * v0 + v1 * v1;
        int inside = s < 1.0;
        double f = inside ? sqrt((det_log(s) * -2.0) / s) : 0.0;
        double x0 = v0 * f, x1 = v1 * f;
        x[2 * i] = x0;
        x[2 * i + 1] = x1;
        keep[2 * i] = (uint8_t)(inside && fabs(x0) <= tail);
        keep[2 * i + 1] = (uint8_t)(inside && fabs(x1) <= tail);
    }
}

static PyObject *py_polar_block(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *wo, *xo, *ko;
    Py_ssize_t npairs;
    double tail;
    if (!PyArg_ParseTuple(args, "OndOO:polar_block", &wo, &npairs, &tail, &xo, &ko)) return NULL;
    if (npairs < 0 || npairs > PY_SSIZE_T_MAX / 32) {
        PyErr_SetString(PyExc_ValueError, "polar_block: bad pair count");
        return NULL;
    }
    Py_buffer wb, xb, kb;
    if (get_i64(wo, &wb, 2 * npairs, 0, "polar_block words") < 0) return NULL;
    if (get_i64(xo, &xb, 2 * npairs, 1, "polar_block x") < 0) {
        PyBuffer_Release(&wb);
        return NULL;
    }
    if (PyObject_GetBuffer(ko, &kb, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&xb);
        PyBuffer_Release(&wb);
        return NULL;
    }
    if (kb.itemsize != 1 || kb.len != 2 * npairs) {
        PyErr_SetString(PyExc_ValueError, "polar_block keep: expected 2*npairs one-byte items");
        PyBuffer_Release(&kb);
        PyBuffer_Release(&xb);
        PyBuffer_Release(&wb);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    polar((const uint64_t *)wb.buf, npairs, tail, (double *)xb.buf, (uint8_t *)kb.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&kb);
    PyBuffer_Release(&xb);
    PyBuffer_Release(&wb);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"ntt", py_ntt, METH_VARARGS, "ntt(buf, npolys, zetas) -> bool: forward NTT in place."},
    {"intt", py_intt, METH_VARARGS, "intt(buf, npolys, zetas_inv, n_inv) -> bool: inverse NTT in place."},
    {"matmul_ntt", py_matmul_ntt, METH_VARARGS,
     "matmul_ntt(left, right, out, r, c, k) -> bool: (r,c,256) x (c,k,256) -> out (r,k,256)."},
    {"polar_block", py_polar_block, METH_VARARGS,
     "polar_block(words, npairs, tail, x_out, keep_out): sampling's polar Gaussian block."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ringfast", "R_q NTT, inverse NTT, NTT-domain matmul and the polar Gaussian block in C.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ringfast(void) { return PyModule_Create(&module); }
