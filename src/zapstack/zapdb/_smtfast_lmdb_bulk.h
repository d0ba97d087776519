/* LMDB bulk calls through the py-lmdb bridge (_smtfast_lmdb.h), included by
 * _smtfast_api.h after the state-sync loader whose arena putmulti can read. */

/* lmdb_putmulti(cursor, items, append) -> (consumed, added, rc, message) or None.
 * As Cursor.putmulti(items, append=append) (dupdata and overwrite on): items are
 * (key, value) pairs; a SyncLoader window() or records() iterator is read from its
 * arena.  rc is LMDB's error that stopped it (0: none), message its text. */
static PyObject *py_lmdb_putmulti(PyObject *self, PyObject *args) {
    PyObject *cobj, *items;
    int append;
    if (!PyArg_ParseTuple(args, "OOp", &cobj, &items, &append)) return NULL;
    ZlCursor *c = zl_cursor(cobj);
    if (!c) Py_RETURN_NONE;
    unsigned int flags = append ? ZL_APPEND : 0;
    Py_ssize_t consumed = 0, added = 0;
    int rc = 0;
    if (Py_TYPE(items) == &SyncIter_Type) {
        SyncIter *it = (SyncIter *)items;
        SyncLoader *s = it->s;
        if (it->which == 2 && it->gen != s->gen)
            return PyErr_Format(PyExc_RuntimeError, "settled records read after the next settle()");
        for (; it->pos < sync_nrec(s, it->which); it->pos++) {
            const uint8_t *k, *v;
            size_t kl, vl;
#if defined(__GNUC__)
            if (it->which == 0 && it->pos + 8 < s->ndata) { /* as syncit_next: random order */
                const uint8_t *ahead = s->dat.buf + s->data[it->pos + 8].off;
                __builtin_prefetch(ahead);
                __builtin_prefetch(ahead + 64);
            }
#endif
            sync_rec(s, it->which, it->pos, &k, &kl, &v, &vl);
            ZlVal mk = {kl, (void *)k}, mv = {vl, (void *)v};
            rc = c->libv->cursor_put(c->curs, &mk, &mv, flags);
            if (rc != 0 && rc != ZL_KEYEXIST) break;
            added += rc == 0;
            rc = 0;
            if (++consumed % BRIDGE_YIELD == 0) {
                if (!(c = zl_yield(cobj)))
                    return PyErr_Format(PyExc_RuntimeError, "the cursor closed mid-putmulti");
                if (it->which == 2 && it->gen != s->gen) { /* a settle() ran meanwhile */
                    zl_done(c, consumed);
                    return PyErr_Format(PyExc_RuntimeError,
                                        "settled records read after the next settle()");
                }
            }
        }
    } else {
        PyObject *iter = PyObject_GetIter(items), *item;
        if (!iter) return NULL;
        while ((item = PyIter_Next(iter))) {
            ZlVal mk, mv;
            Py_buffer kb = {0}, vb = {0};
            int bad = !PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2;
            if (bad)
                PyErr_SetString(PyExc_TypeError, "putmulti() elements must be 2-tuples");
            else
                bad = zl_buf(PyTuple_GET_ITEM(item, 0), &mk, &kb) < 0 ||
                      zl_buf(PyTuple_GET_ITEM(item, 1), &mv, &vb) < 0;
            if (!bad) rc = c->libv->cursor_put(c->curs, &mk, &mv, flags);
            if (kb.obj) PyBuffer_Release(&kb);
            if (vb.obj) PyBuffer_Release(&vb);
            Py_DECREF(item);
            if (bad || (rc != 0 && rc != ZL_KEYEXIST)) break;
            added += rc == 0;
            rc = 0;
            if (++consumed % BRIDGE_YIELD == 0 && !(c = zl_yield(cobj))) {
                Py_DECREF(iter);
                return PyErr_Format(PyExc_RuntimeError, "the cursor closed mid-putmulti");
            }
        }
        Py_DECREF(iter);
        if (PyErr_Occurred()) { /* a bad item (the records before it are written) */
            zl_done(c, consumed);
            return NULL;
        }
    }
    zl_done(c, consumed + (rc != 0));
    const char *msg = rc ? c->libv->strerror_fn(rc) : "";
    return Py_BuildValue("(nnis)", consumed, added, rc, msg);
}

/* lmdb_getmulti(cursor, keys) -> ([(key, value)], rc, message, value bytes) or None.
 * As Cursor.getmulti(keys): the pairs of the keys found, in the order given; each key
 * is the object given when it is exact bytes (equal to the stored one).  rc is an LMDB
 * error other than "not found" that stopped it (0: none); value bytes, the sum of the
 * values' lengths. */
static PyObject *py_lmdb_getmulti(PyObject *self, PyObject *args) {
    PyObject *cobj, *keys;
    if (!PyArg_ParseTuple(args, "OO", &cobj, &keys)) return NULL;
    ZlCursor *c = zl_cursor(cobj);
    if (!c) Py_RETURN_NONE;
    PyObject *seq = PySequence_Fast(keys, "getmulti() keys must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(0);
    Py_ssize_t total = 0;
    int rc = 0;
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(seq, i);
        ZlVal mk, mv = {0, NULL};
        Py_buffer kb;
        if (zl_buf(key, &mk, &kb) < 0) {
            Py_CLEAR(out);
            break;
        }
        rc = c->libv->cursor_get(c->curs, &mk, &mv, ZL_SET);
        PyObject *k = NULL;
        if (rc == 0)
            k = kb.obj ? PyBytes_FromStringAndSize(mk.mv_data, (Py_ssize_t)mk.mv_size)
                       : Py_NewRef(key);
        if (kb.obj) PyBuffer_Release(&kb);
        if (rc == ZL_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0) break;
        total += (Py_ssize_t)mv.mv_size;
        PyObject *pair = k ? steal_pair(k, PyBytes_FromStringAndSize(mv.mv_data,
                                                                     (Py_ssize_t)mv.mv_size))
                           : NULL;
        if (!pair || PyList_Append(out, pair) < 0) Py_CLEAR(out);
        Py_XDECREF(pair);
        if (out && (i + 1) % BRIDGE_YIELD == 0 && !(c = zl_yield(cobj))) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_RuntimeError, "the cursor closed mid-getmulti");
        }
    }
    Py_DECREF(seq);
    if (!out) return NULL;
    zl_done(c, 0);
    PyObject *ret =
        Py_BuildValue("(Oisn)", out, rc, rc ? c->libv->strerror_fn(rc) : "", total);
    Py_DECREF(out);
    return ret;
}
