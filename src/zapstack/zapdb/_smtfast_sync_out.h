/* SyncLoader's second half (included by _smtfast_sync.h, which documents it): finish()
 * joins the chunks under the root and orders the records; records()/get()/count() hand
 * them to LMDB; the Python type objects. */

typedef struct {
    int kind;
    uint8_t hash[32];
    int64_t src; /* K_LEAF: arena offset of the leaf's entry (its record is copied) */
} SyncUp;

static int sync_push(SyncLoader *s, int64_t at, Py_ssize_t *cap) {
    if (s->norder == *cap) {
        Py_ssize_t c = *cap ? *cap * 2 : 1024;
        int64_t *o = PyMem_Realloc(s->order, (size_t)c * sizeof(int64_t));
        if (!o) {
            PyErr_NoMemory();
            return -1;
        }
        s->order = o;
        *cap = c;
    }
    s->order[s->norder++] = at;
    return 0;
}

static inline uint32_t sync_len(const SyncLoader *s, int64_t at) {
    uint32_t n;
    memcpy(&n, s->arena + at, 4);
    return n;
}

/* Pre-order walk of the joined levels from (d, i): each record's arena offset in order. */
static int sync_emit(SyncLoader *s, SyncUp **lv, int d, size_t i, Py_ssize_t *cap) {
    SyncUp *u = &lv[d][i];
    if (u->kind == K_EMPTY) return 0;
    if (d == s->depth) {
        SyncTop *t = &s->tops[i];
        if (sync_push(s, t->top, cap) < 0) return -1;
        for (int64_t at = t->seg_lo; at < t->seg_hi; at += 37 + sync_len(s, at))
            if (sync_push(s, at, cap) < 0) return -1;
        return 0;
    }
    uint8_t path[32] = {0};
    for (int b = 0; b < d; b++)
        if ((i >> (d - 1 - b)) & 1) path[b >> 3] |= (uint8_t)(0x80 >> (b & 7));
    size_t len = u->kind == K_LEAF ? sync_len(s, u->src) : 65;
    int64_t at = sync_slot(s, d, path, len);
    if (at < 0 || sync_push(s, at, cap) < 0) return -1;
    uint8_t *rec = s->arena + at + 37;
    if (u->kind == K_LEAF) {
        memcpy(rec, s->arena + u->src + 37, len);
        return 0;
    }
    rec[0] = 1;
    memcpy(rec + 1, lv[d + 1][2 * i].hash, 32);
    memcpy(rec + 33, lv[d + 1][2 * i + 1].hash, 32);
    if (sync_emit(s, lv, d + 1, 2 * i, cap) < 0) return -1;
    return sync_emit(s, lv, d + 1, 2 * i + 1, cap);
}

/* Sort keys[0..n) (bytes in .o, sharing their first `common` bytes) by key: an LSD radix
 * sort on the 8 bytes after the common prefix (16-bit digits, a pass skipped when every
 * key has the same digit), then each run of equal 8-byte keys by the whole key. */
static int sync_radix(SortKey *keys, Py_ssize_t n, Py_ssize_t common) {
    SortKey *tmp = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(SortKey));
    size_t *count = PyMem_Malloc(65536 * sizeof(size_t));
    if (!tmp || !count) {
        PyMem_Free(tmp);
        PyMem_Free(count);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) keys[i].k = prefix_u64(keys[i].o, common);
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof(size_t));
        for (Py_ssize_t i = 0; i < n; i++) count[(keys[i].k >> shift) & 0xFFFF]++;
        if (n == 0 || count[(keys[0].k >> shift) & 0xFFFF] == (size_t)n) continue;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (Py_ssize_t i = 0; i < n; i++) tmp[count[(keys[i].k >> shift) & 0xFFFF]++] = keys[i];
        memcpy(keys, tmp, (size_t)n * sizeof(SortKey));
    }
    sort_off = 0;
    for (Py_ssize_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && keys[j].k == keys[i].k;) j++;
        if (j - i > 1) qsort(keys + i, (size_t)(j - i), sizeof(SortKey), cmp_sortkey);
    }
    PyMem_Free(tmp);
    PyMem_Free(count);
    return 0;
}

/* The chunks' entries in one array sorted by key; ValueError if a key repeats. */
static int sync_sort_data(SyncLoader *s) {
    size_t chunks = (size_t)1 << s->depth;
    Py_ssize_t total = 0, n = 0;
    for (size_t c = 0; c < chunks; c++) total += PyTuple_GET_SIZE(s->tops[c].entries);
    if (!(s->data = PyMem_Malloc((size_t)(total ? total : 1) * sizeof(SortKey)))) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t c = 0; c < chunks; c++) {
        PyObject *g = s->tops[c].entries;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(g); j++, n++) {
            PyObject *e = PyTuple_GET_ITEM(g, j);
            if (!PyTuple_CheckExact(e) || PyTuple_GET_SIZE(e) != 2 ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(e, 0))) {
                PyErr_SetString(PyExc_TypeError, "chunk entries must be (bytes, bytes) tuples");
                return -1;
            }
            s->data[n].o = PyTuple_GET_ITEM(e, 0);
            s->data[n].v = e;
        }
    }
    s->ndata = n;
    if (sync_radix(s->data, n, common_prefix(s->data, n)) < 0) return -1;
    for (Py_ssize_t i = 1; i < n; i++) {
        if (cmp_sortkey(&s->data[i - 1], &s->data[i]) == 0) {
            PyErr_SetString(PyExc_ValueError, "a key is in two chunks");
            return -1;
        }
    }
    return 0;
}

/* finish() -> root: join, check, order the records (see the top of this file). */
static PyObject *sync_finish(SyncLoader *s, PyObject *unused) {
    size_t chunks = (size_t)1 << s->depth;
    if (s->finished) return PyErr_Format(PyExc_ValueError, "SyncLoader already finished");
    for (size_t c = 0; c < chunks; c++)
        if (s->tops[c].kind < 0) return PyErr_Format(PyExc_ValueError, "chunk %zu missing", c);
    SyncUp *all = PyMem_Malloc((2 * chunks - 1) * sizeof(SyncUp));
    SyncUp *lv[25];
    if (!all) return PyErr_NoMemory();
    for (int d = 0; d <= s->depth; d++) lv[d] = all + ((size_t)1 << d) - 1;
    for (size_t c = 0; c < chunks; c++) {
        lv[s->depth][c].kind = s->tops[c].kind;
        memcpy(lv[s->depth][c].hash, s->tops[c].hash, 32);
        lv[s->depth][c].src = s->tops[c].top;
    }
    for (int d = s->depth - 1; d >= 0; d--) {
        for (size_t i = 0; i < ((size_t)1 << d); i++) {
            SyncUp *l = &lv[d + 1][2 * i], *r = &lv[d + 1][2 * i + 1], *u = &lv[d][i];
            if (l->kind == K_EMPTY && r->kind != K_NODE) {
                *u = *r; /* empty, or a lone leaf moving up */
            } else if (r->kind == K_EMPTY && l->kind == K_LEAF) {
                *u = *l;
            } else {
                u->kind = K_NODE;
                u->src = -1;
                zsha256_tagged(1, l->hash, r->hash, u->hash);
            }
        }
    }
    PyObject *out = NULL;
    Py_ssize_t cap = 0;
    if (memcmp(lv[0][0].hash, s->root, 32) != 0) {
        PyErr_SetString(PyExc_ValueError, "the chunks do not join to the target root");
    } else if (sync_emit(s, lv, 0, 0, &cap) == 0 && sync_sort_data(s) == 0) {
        Py_ssize_t i = 1; /* LMDB's append needs them strictly ascending */
        while (i < s->norder &&
               memcmp(s->arena + s->order[i - 1] + 4, s->arena + s->order[i] + 4, 33) < 0)
            i++;
        if (i < s->norder)
            PyErr_SetString(PyExc_ValueError, "node records out of order (a bug)");
        else
            out = PyBytes_FromStringAndSize((const char *)s->root, 32);
    }
    PyMem_Free(all);
    if (out) s->finished = 1;
    return out;
}

/* records(which) iterates (key, value) 2-tuples in key order: which 0 = the entries (the
 * chunks' own tuples), 1 = the node records (new bytes, made as they are taken). */
typedef struct {
    PyObject_HEAD
    SyncLoader *s;
    int which;
    Py_ssize_t pos;
    PyObject *last; /* the tuple handed out last: reused when its taker has let it go */
} SyncIter;

static void syncit_dealloc(SyncIter *it) {
    Py_XDECREF(it->s);
    Py_XDECREF(it->last);
    PyObject_Free(it);
}

static PyObject *sync_item(SyncLoader *s, int which, Py_ssize_t i) {
    if (which == 0) return Py_NewRef(s->data[i].v);
    const uint8_t *p = s->arena + s->order[i];
    PyObject *k = PyBytes_FromStringAndSize((const char *)p + 4, 33);
    PyObject *r = PyBytes_FromStringAndSize((const char *)p + 37, sync_len(s, s->order[i]));
    PyObject *t = k && r ? PyTuple_New(2) : NULL;
    if (!t) {
        Py_XDECREF(k);
        Py_XDECREF(r);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, k);
    PyTuple_SET_ITEM(t, 1, r);
    return t;
}

static PyObject *syncit_next(SyncIter *it) {
    SyncLoader *s = it->s;
    if (it->pos >= (it->which ? s->norder : s->ndata)) return NULL;
    if (!it->which || !it->last || Py_REFCNT(it->last) != 1) {
        Py_CLEAR(it->last);
        PyObject *t = sync_item(s, it->which, it->pos++);
        if (t && it->which) it->last = Py_NewRef(t);
        return t;
    }
    const uint8_t *p = s->arena + s->order[it->pos]; /* no one else holds `last`: reuse it */
    PyObject *k = PyBytes_FromStringAndSize((const char *)p + 4, 33);
    PyObject *r = PyBytes_FromStringAndSize((const char *)p + 37, sync_len(s, s->order[it->pos]));
    if (!k || !r) {
        Py_XDECREF(k);
        Py_XDECREF(r);
        return NULL;
    }
    it->pos++;
    PyObject *t = it->last, *ok = PyTuple_GET_ITEM(t, 0), *orec = PyTuple_GET_ITEM(t, 1);
    PyTuple_SET_ITEM(t, 0, k);
    PyTuple_SET_ITEM(t, 1, r);
    Py_DECREF(ok);
    Py_DECREF(orec);
    return Py_NewRef(t);
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
    if (!s->finished || (w != 0 && w != 1)) {
        PyErr_SetString(PyExc_ValueError, "records of 0 (entries) or 1 (nodes), after finish()");
        return -1;
    }
    *which = (int)w;
    return 0;
}

static PyObject *sync_records(SyncLoader *s, PyObject *arg) {
    int which;
    if (sync_which(s, arg, &which) < 0) return NULL;
    SyncIter *it = PyObject_New(SyncIter, &SyncIter_Type);
    if (!it) return NULL;
    it->s = (SyncLoader *)Py_NewRef(s);
    it->which = which;
    it->pos = 0;
    it->last = NULL;
    return (PyObject *)it;
}

static PyObject *sync_count(SyncLoader *s, PyObject *arg) {
    int which;
    if (sync_which(s, arg, &which) < 0) return NULL;
    return PyLong_FromSsize_t(which ? s->norder : s->ndata);
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
    hi = which ? s->norder : s->ndata;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        const uint8_t *k;
        Py_ssize_t klen = 33;
        if (which) {
            k = s->arena + s->order[mid] + 4;
        } else {
            k = (const uint8_t *)PyBytes_AS_STRING(s->data[mid].o);
            klen = PyBytes_GET_SIZE(s->data[mid].o);
        }
        int c = memcmp(k, key.buf, (size_t)(klen < key.len ? klen : key.len));
        if (c == 0) c = (klen > key.len) - (klen < key.len);
        if (c == 0) {
            PyObject *item = sync_item(s, which, mid);
            if (item) out = Py_NewRef(PyTuple_GET_ITEM(item, 1));
            Py_XDECREF(item);
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
    {"add_top", (PyCFunction)sync_add_top, METH_VARARGS,
     "add_top(index, entries, hash, record | None): a chunk verified by the caller"},
    {"finish", (PyCFunction)sync_finish, METH_NOARGS,
     "finish() -> root: join the chunks, check the root (ValueError), order the records"},
    {"records", (PyCFunction)sync_records, METH_O,
     "records(which) -> iterator of (key, value) in key order: 0 entries, 1 node records"},
    {"count", (PyCFunction)sync_count, METH_O, "count(which) -> number of records"},
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
    if (PyType_Ready(&SyncIter_Type) < 0 || PyType_Ready(&SyncLoader_Type) < 0) return -1;
    return PyModule_AddObjectRef(m, "SyncLoader", (PyObject *)&SyncLoader_Type);
}
