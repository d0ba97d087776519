/* SyncLoader's output (included by _smtfast_sync.h, which documents it): settle(), and
 * records(), window(), count() and get() over the finished arenas (which 0 and 1), the
 * last settle()'s records (which 2) or the last spill()'s entries (which 3); the Python
 * type objects. */

/* A read-only buffer onto one record of a loader's arena (window(): it moves on with the
 * iteration; its loader, held by the iterator, outlives it). */
typedef struct {
    PyObject_HEAD
    const uint8_t *buf;
    Py_ssize_t len;
} SyncView;

static int syncview_getbuffer(SyncView *v, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)v, (void *)v->buf, v->len, 1, flags);
}

static PyBufferProcs syncview_buffer = {(getbufferproc)syncview_getbuffer, NULL};

static PyTypeObject SyncView_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zapstack.zapdb._smtfast.SyncView",
    .tp_basicsize = sizeof(SyncView),
    .tp_dealloc = (destructor)PyObject_Free,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_as_buffer = &syncview_buffer,
};

/* Record i of `which` (0 entries, 1 node records, 2 the last settle()'s, 3 the last
 * spill()'s entries) in key order. */
static void sync_rec(const SyncLoader *s, int which, Py_ssize_t i, const uint8_t **k,
                     size_t *kl, const uint8_t **v, size_t *vl) {
    if (which == 0) {
        sync_entry(s, s->data[i].off, k, kl, v, vl);
        return;
    }
    if (which == 3) {
        sync_entry_in(&s->spd, s->spkeys[i].off, k, kl, v, vl);
        return;
    }
    int64_t at = which == 1 ? s->order[i] : s->pend[i];
    *k = s->nod.buf + at + 4;
    *kl = 33;
    *v = *k + 33;
    *vl = sync_len(s, at);
}

static Py_ssize_t sync_nrec(const SyncLoader *s, int which) {
    return which == 0 ? s->ndata : which == 1 ? s->norder : which == 2 ? s->npend : s->nspill;
}

/* Hand out the record at arena offset `at` (settle()): ValueError unless its key is above
 * the last one handed out (an LMDB append would silently skip it). */
static int sync_pend_push(SyncLoader *s, int64_t at) {
    const uint8_t *key = s->nod.buf + at + 4;
    if (s->handed && memcmp(s->last_key, key, 33) >= 0) {
        PyErr_SetString(PyExc_ValueError, "settled records out of order (a bug)");
        return -1;
    }
    if (sync_off_append(&s->pend, &s->npend, &s->cappend, at) < 0) return -1;
    memcpy(s->last_key, key, 33);
    s->handed = 1;
    return 0;
}

static const SyncLoader *sync_compact_of; /* qsort's comparator takes no context (GIL held) */

static int sync_cmp_top(const void *x, const void *y) {
    int64_t a = sync_compact_of->tops[*(const Py_ssize_t *)x].top;
    int64_t b = sync_compact_of->tops[*(const Py_ssize_t *)y].top;
    return (a > b) - (a < b);
}

/* Move the node records not handed out to the front of the arena, in arena order (each
 * chunk's records are one block: its top entry, then the entries below it), and point the
 * chunk table at their new places.  Called by settle() before it hands anything out: the
 * last settle()'s records are no longer read (its windows refuse to go on). */
static int sync_compact(SyncLoader *s) {
    Py_ssize_t chunks = (Py_ssize_t)1 << s->depth, live = 0;
    Py_ssize_t *idx = PyMem_Malloc((size_t)chunks * sizeof(Py_ssize_t));
    if (!idx) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t c = 0; c < chunks; c++)
        if (s->tops[c].kind >= 0 && !s->tops[c].settled && s->tops[c].top >= 0) idx[live++] = c;
    sync_compact_of = s;
    qsort(idx, (size_t)live, sizeof(Py_ssize_t), sync_cmp_top);
    int64_t w = 0;
    for (Py_ssize_t i = 0; i < live; i++) {
        SyncTop *t = &s->tops[idx[i]];
        int64_t len = t->seg_hi - t->top, delta = w - t->top;
        if (delta) memmove(s->nod.buf + w, s->nod.buf + t->top, (size_t)len);
        t->top += delta;
        t->seg_lo += delta;
        t->seg_hi += delta;
        w += len;
    }
    PyMem_Free(idx);
    s->nod.len = (size_t)w;
    s->dead = 0;
    return 0;
}

/* settle() -> n: hand out the records that are final now (see _smtfast_sync.h); n of
 * them, readable as which = 2 until the next call. */
static PyObject *sync_settle(SyncLoader *s, PyObject *unused) {
    if (s->finished) return PyErr_Format(PyExc_ValueError, "SyncLoader already finished");
    Py_ssize_t chunks = (Py_ssize_t)1 << s->depth;
    s->npend = 0;
    s->gen++;
    if (s->dead >= ((int64_t)64 << s->depth) && 2 * s->dead >= (int64_t)s->nod.len &&
        sync_compact(s) < 0)
        return NULL;
    for (; s->next_settle < chunks && s->tops[s->next_settle].kind >= 0; s->next_settle++) {
        SyncTop *t = &s->tops[s->next_settle];
        if (t->kind != K_NODE) continue; /* a lone leaf or nothing: placed by finish() */
        if (sync_pend_push(s, t->top) < 0) return NULL;
        for (int64_t at = t->seg_lo; at < t->seg_hi; at += 37 + sync_len(s, at))
            if (sync_pend_push(s, at) < 0) return NULL;
        t->settled = 1;
        s->dead += t->seg_hi - t->top;
    }
    return PyLong_FromSsize_t(s->npend);
}

/* arena() -> (node bytes, entry bytes): the arenas' bytes in use. */
static PyObject *sync_arena(SyncLoader *s, PyObject *unused) {
    return Py_BuildValue("(nn)", (Py_ssize_t)s->nod.len, (Py_ssize_t)s->dat.len);
}

typedef struct {
    PyObject_HEAD
    SyncLoader *s;
    int which, window;
    uint64_t gen; /* which 2: the settle() it reads */
    Py_ssize_t pos;
    PyObject *last; /* the tuple handed out last (window: the one reused tuple of views) */
} SyncIter;

static void syncit_dealloc(SyncIter *it) {
    Py_XDECREF(it->s);
    Py_XDECREF(it->last);
    PyObject_Free(it);
}

/* The settle() (which 2) or spill() (which 3) whose records an iterator reads. */
static uint64_t sync_gen_of(const SyncLoader *s, int which) {
    return which == 3 ? s->spgen : s->gen;
}

/* -1 with RuntimeError if `it` reads the records of a settle() or spill() that another has
 * replaced. */
static int syncit_stale(const SyncIter *it) {
    if (it->which < 2 || it->gen == sync_gen_of(it->s, it->which)) return 0;
    PyErr_SetString(PyExc_RuntimeError, it->which == 2
                                            ? "settled records read after the next settle()"
                                            : "spilled entries read after they were dropped");
    return -1;
}

/* Start loading the entry 8 places ahead of `pos` (which 0 and 3: key order is random in
 * the arena), so that a reader going in order meets it in cache. */
static void syncit_prefetch(const SyncLoader *s, int which, Py_ssize_t pos) {
#if defined(__GNUC__)
    const uint8_t *ahead = NULL;
    if (which == 0 && pos + 8 < s->ndata) ahead = s->dat.buf + s->data[pos + 8].off;
    if (which == 3 && pos + 8 < s->nspill) ahead = s->spd.buf + s->spkeys[pos + 8].off;
    if (ahead) {
        __builtin_prefetch(ahead);
        __builtin_prefetch(ahead + 64);
    }
#endif
}

static PyObject *syncit_next(SyncIter *it) {
    SyncLoader *s = it->s;
    if (syncit_stale(it) < 0) return NULL;
    if (it->pos >= sync_nrec(s, it->which)) return NULL;
    const uint8_t *k, *v;
    size_t kl, vl;
    syncit_prefetch(s, it->which, it->pos);
    sync_rec(s, it->which, it->pos, &k, &kl, &v, &vl);
    if (!it->window) {
        it->pos++;
        return steal_pair(PyBytes_FromStringAndSize((const char *)k, (Py_ssize_t)kl),
                         PyBytes_FromStringAndSize((const char *)v, (Py_ssize_t)vl));
    }
    if (!it->last) {
        it->last = steal_pair((PyObject *)PyObject_New(SyncView, &SyncView_Type),
                             (PyObject *)PyObject_New(SyncView, &SyncView_Type));
        if (!it->last) return NULL;
    }
    SyncView *kv = (SyncView *)PyTuple_GET_ITEM(it->last, 0);
    SyncView *vv = (SyncView *)PyTuple_GET_ITEM(it->last, 1);
    if (Py_REFCNT(it->last) != 1 || Py_REFCNT(kv) != 1 || Py_REFCNT(vv) != 1)
        return PyErr_Format(PyExc_RuntimeError, "a records window was kept past its turn");
    kv->buf = k;
    kv->len = (Py_ssize_t)kl;
    vv->buf = v;
    vv->len = (Py_ssize_t)vl;
    it->pos++;
    return Py_NewRef(it->last);
}

static PyTypeObject SyncIter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zapstack.zapdb._smtfast.SyncRecords",
    .tp_basicsize = sizeof(SyncIter),
    .tp_dealloc = (destructor)syncit_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)syncit_next,
};

static int sync_which(SyncLoader *s, PyObject *arg, int *which) {
    long w = PyLong_AsLong(arg);
    if (w == -1 && PyErr_Occurred()) return -1;
    if (w != 2 && w != 3 && (!s->finished || (w != 0 && w != 1))) {
        PyErr_SetString(PyExc_ValueError, "records of 0 (entries) or 1 (nodes) after finish(), "
                                          "2 (settled) or 3 (spilled)");
        return -1;
    }
    *which = (int)w;
    return 0;
}

static PyObject *sync_iter(SyncLoader *s, PyObject *arg, int window) {
    int which;
    if (sync_which(s, arg, &which) < 0) return NULL;
    SyncIter *it = PyObject_New(SyncIter, &SyncIter_Type);
    if (!it) return NULL;
    it->s = (SyncLoader *)Py_NewRef(s);
    it->which = which;
    it->gen = sync_gen_of(s, which);
    it->window = window;
    it->pos = 0;
    it->last = NULL;
    return (PyObject *)it;
}

static PyObject *sync_records(SyncLoader *s, PyObject *arg) { return sync_iter(s, arg, 0); }

static PyObject *sync_window(SyncLoader *s, PyObject *arg) { return sync_iter(s, arg, 1); }

static PyObject *sync_count(SyncLoader *s, PyObject *arg) {
    int which;
    if (sync_which(s, arg, &which) < 0) return NULL;
    return PyLong_FromSsize_t(sync_nrec(s, which));
}

/* get(which, key) -> the value stored under `key` (bytes), or None: a bisection. */
static PyObject *sync_get(SyncLoader *s, PyObject *args) {
    PyObject *w;
    Py_buffer key;
    int which;
    if (!PyArg_ParseTuple(args, "Oy*", &w, &key)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t lo = 0, hi = 0;
    if (sync_which(s, w, &which) < 0) goto done;
    hi = sync_nrec(s, which);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        const uint8_t *k, *v;
        size_t kl, vl;
        sync_rec(s, which, mid, &k, &kl, &v, &vl);
        int c = sync_cmp_keys(k, kl, key.buf, (size_t)key.len);
        if (c == 0) {
            out = PyBytes_FromStringAndSize((const char *)v, (Py_ssize_t)vl);
            goto done;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    out = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&key);
    return out;
}

static PyMethodDef sync_methods[] = {
    {"add", (PyCFunction)sync_add, METH_VARARGS,
     "add(index, entries, siblings) -> bool: check a chunk with every sibling and keep it"},
    {"add_many", (PyCFunction)sync_add_many, METH_O,
     "add_many([(index, entries, siblings)]) -> [bool]: add() for each, checked on two threads"},
    {"add_top", (PyCFunction)sync_add_top, METH_VARARGS,
     "add_top(index, entries, hash, record | None): a chunk verified by the caller"},
    {"finish", (PyCFunction)sync_finish, METH_NOARGS,
     "finish() -> root: join the chunks, check the root (ValueError), order the records"},
    {"settle", (PyCFunction)sync_settle, METH_NOARGS,
     "settle() -> n: hand out the node records final before finish() (which 2)"},
    {"spill", (PyCFunction)sync_spill, METH_NOARGS,
     "spill() -> n: hand out the entries kept so far, in key order (which 3); start afresh"},
    {"drop_spill", (PyCFunction)sync_drop_spill, METH_NOARGS,
     "drop_spill(): free the entries the last spill() handed out"},
    {"arena", (PyCFunction)sync_arena, METH_NOARGS,
     "arena() -> (node bytes, entry bytes) in use"},
    {"records", (PyCFunction)sync_records, METH_O,
     "records(which) -> (key, value) in key order: 0 entries, 1 node records, 2 settled, "
     "3 spilled"},
    {"count", (PyCFunction)sync_count, METH_O, "count(which) -> number of records"},
    {"window", (PyCFunction)sync_window, METH_O,
     "window(which) -> records() as one reused 2-tuple of read-only buffers (for putmulti)"},
    {"get", (PyCFunction)sync_get, METH_VARARGS, "get(which, key) -> value or None"},
    {NULL, NULL, 0, NULL}};

static PyTypeObject SyncLoader_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zapstack.zapdb._smtfast.SyncLoader",
    .tp_basicsize = sizeof(SyncLoader),
    .tp_dealloc = (destructor)sync_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SyncLoader(root, depth): state-sync chunks into sorted records (see the C)",
    .tp_methods = sync_methods,
    .tp_new = sync_new,
};

/* Called from PyInit__smtfast: 0 or -1. */
static int sync_register(PyObject *m) {
    if (PyType_Ready(&SyncView_Type) < 0 || PyType_Ready(&SyncIter_Type) < 0 ||
        PyType_Ready(&SyncLoader_Type) < 0)
        return -1;
    return PyModule_AddObjectRef(m, "SyncLoader", (PyObject *)&SyncLoader_Type);
}

/* walk(get, depth, path) -> (siblings, stop): proofs._walk in C (a chunk server's walk
 * from the root toward (depth, path), one `get` per level): the sibling hashes met, and
 * (record,) of the empty subtree (None) or lone leaf it stopped at above `depth`, or None
 * if it got there.  TypeError if `get` returns neither bytes nor None, ValueError for an
 * interior record that is not 0x01 || 64 bytes (proofs._walk is the reference). */
static PyObject *py_walk(PyObject *self, PyObject *args) {
    PyObject *get, *sibs = NULL, *stop = NULL, *out = NULL;
    Py_buffer path;
    int depth;
    if (!PyArg_ParseTuple(args, "Oiy*", &get, &depth, &path)) return NULL;
    if (path.len != 32 || depth < 0 || depth > 255) {
        PyErr_SetString(PyExc_ValueError, "walk needs a 32-byte path and a depth 0..255");
        goto done;
    }
    if (!(sibs = PyList_New(0))) goto done;
    for (int d = 0; d < depth && !stop; d++) {
        uint8_t k[33];
        mask_path(path.buf, d, k);
        k[32] = (uint8_t)d;
        PyObject *key = PyBytes_FromStringAndSize((const char *)k, 33);
        PyObject *rec = key ? PyObject_CallOneArg(get, key) : NULL;
        Py_XDECREF(key);
        if (!rec) goto done;
        if (rec != Py_None && !PyBytes_Check(rec)) {
            Py_DECREF(rec);
            PyErr_SetString(PyExc_TypeError, "walk: get must return bytes or None");
            goto done;
        }
        const char *p = rec == Py_None ? NULL : PyBytes_AS_STRING(rec);
        if (!p || (PyBytes_GET_SIZE(rec) > 0 && p[0] == 0)) {
            stop = PyTuple_Pack(1, rec);
            Py_DECREF(rec);
            if (!stop) goto done;
            break;
        }
        if (PyBytes_GET_SIZE(rec) != 65 || p[0] != 1) {
            Py_DECREF(rec);
            PyErr_SetString(PyExc_ValueError, "corrupt state-tree node record");
            goto done;
        }
        PyObject *sib = PyBytes_FromStringAndSize(p + (bit_at(path.buf, d) ? 1 : 33), 32);
        Py_DECREF(rec);
        if (!sib || PyList_Append(sibs, sib) < 0) {
            Py_XDECREF(sib);
            goto done;
        }
        Py_DECREF(sib);
    }
    PyObject *tup = PyList_AsTuple(sibs);
    if (tup) out = Py_BuildValue("(NO)", tup, stop ? stop : Py_None);
done:
    PyBuffer_Release(&path);
    Py_XDECREF(sibs);
    Py_XDECREF(stop);
    return out;
}
