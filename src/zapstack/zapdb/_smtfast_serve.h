/* Chunk serving in C (included by _smtfast_api.h): a server's walk through one chunk's
 * records for view.Snapshot.entries_under (entries_under_py is the readable reference;
 * tests hold the two equal on every chunk of a store).  On a corrupt store the walk may
 * differ from a key-range scan (a missing interior record shortens the run it counts),
 * and such a chunk fails the client's verification: its server is the one blamed.
 *
 * subtree_keys(records, depth, path, out, budget=-1) -> bool.  `records` yields the node records'
 * VALUES from the subtree root (depth, path) on, in key order (an LMDB cursor's
 * iternext(keys=False) after set_key(root)), or is that cursor itself, read in place
 * through the py-lmdb bridge (_smtfast_lmdb.h; its position is unspecified after), never
 * past the subtree; with nogil=True a batch at a time with the GIL released (other threads
 * run meanwhile): only for a caller that keeps the cursor's txn and environment open and
 * uses the cursor on no other thread meanwhile (ZapDB: under a snapshot's lock).  The subtree's records are the first ones of
 * that run (layout v2: pre-order), and a pre-order walk that counts the children still due
 * (each interior record adds its non-EMPTY children) ends exactly with the subtree: no key
 * is read or compared.  Each leaf record's user key (bytes 65..) is appended to `out`, in
 * key-hash order (the leaves' pre-order).  With `budget` >= 0 each leaf costs
 * `per_leaf` + its key's length, and the walk stops at the first leaf that takes the
 * total past `budget` (that key is not appended): False, the subtree is larger than the
 * caller will serve, and no more of it was read.  True when the walk ended with the
 * subtree.  ValueError for a corrupt store: a record that is
 * neither 0x01 || 64 bytes nor 0x00 || 64 bytes || key, a leaf whose key hash is outside
 * the subtree's prefix, or a run that ends before the subtree does. */

static PyObject *py_subtree_keys(PyObject *self, PyObject *args) {
    PyObject *it, *out, *rec;
    Py_buffer path;
    int depth;
    Py_ssize_t budget = -1, per_leaf = 0;
    int nogil = 0;
    if (!PyArg_ParseTuple(args, "Oiy*O!|nnp", &it, &depth, &path, &PyList_Type, &out, &budget,
                          &per_leaf, &nogil))
        return NULL;
    uint8_t prefix[32];
    int ok = path.len == 32 && depth >= 0 && depth <= 255;
    if (ok) mask_path(path.buf, depth, prefix);
    PyBuffer_Release(&path);
    if (!ok) return PyErr_Format(PyExc_ValueError, "subtree_keys needs a 32-byte path, depth 0..255");
    if (per_leaf < 0) return PyErr_Format(PyExc_ValueError, "subtree_keys needs per_leaf >= 0");
    ZlCursor *cur = zl_cursor(it); /* a bridged cursor: the records read in place */
    if (!cur && !PyIter_Check(it))
        return PyErr_Format(PyExc_TypeError, "subtree_keys reads an iterator or a bridged cursor");
    int op = ZL_GET_CURRENT;
    ZlVal run[ZL_BATCH]; /* a bridged cursor's records read ahead, at most `due` of them */
    int got = 0, at = 0, rc_run = 0;
    Py_ssize_t due = 1; /* records of the subtree not met yet */
    while (due > 0) {
        const char *p = NULL;
        Py_ssize_t n = 0;
        rec = NULL;
        if (cur) {
            if (at == got) { /* the next records, the GIL released if the caller allows */
                int want = due < ZL_BATCH ? (int)due : ZL_BATCH;
                ZL_GIL_IF(nogil, got = zl_read_run(cur, &op, run, want, &rc_run));
                at = 0;
                if (got == 0) {
                    zl_done(cur, 0);
                    if (rc_run == ZL_NOTFOUND) return PyErr_Format(PyExc_ValueError, "the subtree's records end early");
                    return PyErr_Format(PyExc_ValueError, "LMDB: %s", cur->libv->strerror_fn(rc_run));
                }
            }
            p = run[at].mv_data;
            n = (Py_ssize_t)run[at++].mv_size;
        } else if (!(rec = PyIter_Next(it))) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the subtree's records end early");
            return NULL;
        } else if (PyBytes_Check(rec)) {
            p = PyBytes_AS_STRING(rec);
            n = PyBytes_GET_SIZE(rec);
        }
        int rc = 0;
        if (n == 65 && p[0] == 1) {
            static const uint8_t empty[32] = {0}; /* an absent child's hash */
            due += !!memcmp(p + 1, empty, 32) + !!memcmp(p + 33, empty, 32) - 1;
        } else if (n >= 66 && p[0] == 0) {
            uint8_t kh[32];
            mask_path((const uint8_t *)p + 1, depth, kh);
            PyObject *key = NULL;
            if (memcmp(kh, prefix, 32) != 0) {
                PyErr_SetString(PyExc_ValueError, "a leaf outside the subtree's prefix");
                rc = -1;
            } else if (budget >= 0 && (budget -= per_leaf + (n - 65)) < 0) {
                Py_XDECREF(rec);
                if (cur) zl_done(cur, 0);
                Py_RETURN_FALSE; /* over the caller's budget: read no further */
            } else if (!(key = PyBytes_FromStringAndSize(p + 65, n - 65)) || PyList_Append(out, key) < 0) {
                rc = -1;
            }
            Py_XDECREF(key);
            due--;
        } else {
            PyErr_SetString(PyExc_ValueError, "corrupt state-tree record in a subtree");
            rc = -1;
        }
        Py_XDECREF(rec);
        if (rc < 0) {
            if (cur) zl_done(cur, 0);
            return NULL;
        }
    }
    if (cur) zl_done(cur, 0);
    Py_RETURN_TRUE;
}
