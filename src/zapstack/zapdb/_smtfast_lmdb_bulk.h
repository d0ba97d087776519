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
        if (syncit_stale(it) < 0) return NULL;
        for (; it->pos < sync_nrec(s, it->which); it->pos++) {
            const uint8_t *k, *v;
            size_t kl, vl;
            syncit_prefetch(s, it->which, it->pos);
            sync_rec(s, it->which, it->pos, &k, &kl, &v, &vl);
            ZlVal mk = {kl, (void *)k}, mv = {vl, (void *)v};
            rc = c->libv->cursor_put(c->curs, &mk, &mv, flags);
            if (rc != 0 && rc != ZL_KEYEXIST) break;
            added += rc == 0;
            rc = 0;
            if (++consumed % BRIDGE_YIELD == 0) {
                if (!(c = zl_yield(cobj)))
                    return PyErr_Format(PyExc_RuntimeError, "the cursor closed mid-putmulti");
                if (syncit_stale(it) < 0) { /* a settle() ran meanwhile */
                    zl_done(c, consumed);
                    return NULL;
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

/* lmdb_getmulti(cursor, keys, nogil=False) -> ([(key, value)], rc, message, value bytes)
 * or None.  As Cursor.getmulti(keys): the pairs of the keys found, in the order given;
 * each key is the object given when it is exact bytes (equal to the stored one).  rc is
 * an LMDB error other than "not found" that stopped it (0: none); value bytes, the sum of
 * the values' lengths.  The keys are looked up ZL_BATCH at a time; with nogil, each
 * batch's lookups run with the GIL released, so other threads run meanwhile as they did
 * between py-lmdb's own per-key calls -- only for a caller that keeps the cursor's txn
 * and environment open and uses the cursor on no other thread meanwhile (ZapDB: under a
 * snapshot's lock). */
/* Look up keys mk[0..m) into mv[], each one's LMDB code in got[]: how many were looked up
 * before the first error other than "not found" (m: none).  Calls nothing of Python. */
static int zl_set_batch(const ZlApi *api, void *curs, ZlVal *mk, ZlVal *mv, int *got, int m) {
    int done = 0;
    while (done < m && ((got[done] = api->cursor_get(curs, &mk[done], &mv[done], ZL_SET)) == 0 ||
                        got[done] == ZL_NOTFOUND))
        done++;
    return done;
}

static PyObject *py_lmdb_getmulti(PyObject *self, PyObject *args) {
    PyObject *cobj, *keys;
    int nogil = 0;
    if (!PyArg_ParseTuple(args, "OO|p", &cobj, &keys, &nogil)) return NULL;
    ZlCursor *c = zl_cursor(cobj);
    if (!c) Py_RETURN_NONE;
    PyObject *seq = PySequence_Tuple(keys); /* held: no other thread changes what we read */
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq), total = 0;
    PyObject *out = PyList_New(0);
    const ZlApi *api = c->libv;
    void *curs = c->curs;
    int rc = 0;
    ZlVal mk[ZL_BATCH], mv[ZL_BATCH];
    Py_buffer kb[ZL_BATCH];
    int got[ZL_BATCH];
    for (Py_ssize_t i = 0; out && rc == 0 && i < n; i += ZL_BATCH) {
        int m = (int)(n - i < ZL_BATCH ? n - i : ZL_BATCH), ready = 0, done = 0;
        while (ready < m && zl_buf(PyTuple_GET_ITEM(seq, i + ready), &mk[ready], &kb[ready]) == 0)
            ready++;
        if (ready < m)
            Py_CLEAR(out);
        else
            ZL_GIL_IF(nogil, done = zl_set_batch(api, curs, mk, mv, got, m));
        if (out && done < m) rc = got[done]; /* an LMDB error: the pairs before it stand */
        for (int j = 0; out && j < done; j++) {
            if (got[j] != 0) continue;
            PyObject *key = PyTuple_GET_ITEM(seq, i + j);
            PyObject *k = kb[j].obj ? PyBytes_FromStringAndSize(mk[j].mv_data, (Py_ssize_t)mk[j].mv_size)
                                    : Py_NewRef(key);
            PyObject *pair = steal_pair(k, PyBytes_FromStringAndSize(mv[j].mv_data,
                                                                     (Py_ssize_t)mv[j].mv_size));
            total += (Py_ssize_t)mv[j].mv_size;
            if (!pair || PyList_Append(out, pair) < 0) Py_CLEAR(out);
            Py_XDECREF(pair);
        }
        for (int j = 0; j < ready; j++)
            if (kb[j].obj) PyBuffer_Release(&kb[j]);
    }
    Py_DECREF(seq);
    if (!out) return NULL;
    zl_done(c, 0);
    PyObject *ret = Py_BuildValue("(Oisn)", out, rc, rc ? api->strerror_fn(rc) : "", total);
    Py_DECREF(out);
    return ret;
}
