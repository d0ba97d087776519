/* Sorts of zapstack.zapdb._smtfast (included by _smtfast_api.h after _smtfast_codec.h):
 * a batch's leaves by key hash, a dict's bytes keys and a txn's NodeTable (merged) for
 * the commit.  They give qsort's order (tests/zapdb/test_batch.py holds them equal to
 * sorted()); the first two are linear for big inputs and fall back to qsort where an
 * input crowds one bucket (hostile keys). */

static int cmp_leaf(const void *x, const void *y) {
    const Leaf *a = *(Leaf *const *)x, *b = *(Leaf *const *)y;
    int r = memcmp(a->kh, b->kh, 32);
    if (r) return r;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* qsort(order, n, cmp_leaf) for order[i] = &leaves[i] (idx ascending): key hashes are
 * uniform, so a stable counting sort on their first 16 bits, then each bucket sorted on
 * its own (insertion sort while small; qsort for a crowded one, e.g. ground prefixes). */
static int sort_leaves(Leaf **order, Py_ssize_t n) {
    if (n < 4096) {
        qsort(order, (size_t)n, sizeof(Leaf *), cmp_leaf);
        return 0;
    }
    Py_ssize_t *start = PyMem_Calloc(65537, sizeof(Py_ssize_t));
    Leaf **tmp = PyMem_Malloc((size_t)n * sizeof(Leaf *));
    if (!start || !tmp) {
        PyMem_Free(start);
        PyMem_Free(tmp);
        PyErr_NoMemory();
        return -1;
    }
#define BUCKET(lf) (((lf)->kh[0] << 8) | (lf)->kh[1])
    for (Py_ssize_t i = 0; i < n; i++) start[BUCKET(order[i]) + 1]++;
    for (int b = 0; b < 65536; b++) start[b + 1] += start[b];
    for (Py_ssize_t i = 0; i < n; i++) tmp[start[BUCKET(order[i])]++] = order[i];
#undef BUCKET
    memcpy(order, tmp, (size_t)n * sizeof(Leaf *)); /* start[b] is now bucket b's end */
    for (int b = 0; b < 65536; b++) {
        Py_ssize_t lo = b ? start[b - 1] : 0, hi = start[b];
        if (hi - lo > 32) {
            qsort(order + lo, (size_t)(hi - lo), sizeof(Leaf *), cmp_leaf);
            continue;
        }
        for (Py_ssize_t i = lo + 1; i < hi; i++) {
            Leaf *x = order[i];
            Py_ssize_t j = i;
            for (; j > lo && cmp_leaf(&order[j - 1], &x) > 0; j--) order[j] = order[j - 1];
            order[j] = x;
        }
    }
    PyMem_Free(start);
    PyMem_Free(tmp);
    return 0;
}

/* sort_keys(keys, n, 0, common) by an LSD radix sort on the 8-byte keys (a pass skipped
 * where every key has the same byte), then each run of equal 8-byte keys by qsort: linear
 * in n for the commit's many keys, whatever their distribution.  0 or -1 (MemoryError). */
static int radix_sort_keys(SortKey *keys, Py_ssize_t n, Py_ssize_t common) {
    for (Py_ssize_t i = 0; i < n; i++) keys[i].k = prefix_u64(keys[i].o, common);
    sort_off = 0;
    if (n < 2048) {
        qsort(keys, (size_t)n, sizeof(SortKey), cmp_sortkey);
        return 0;
    }
    SortKey *tmp = PyMem_Malloc((size_t)n * sizeof(SortKey)), *a = keys, *b = tmp;
    if (!tmp) {
        PyErr_NoMemory();
        return -1;
    }
    for (int shift = 0; shift < 64; shift += 8) {
        Py_ssize_t cnt[257] = {0};
        for (Py_ssize_t i = 0; i < n; i++) cnt[((a[i].k >> shift) & 0xFF) + 1]++;
        if (cnt[((a[0].k >> shift) & 0xFF) + 1] == n) continue; /* one byte value: no pass */
        for (int d = 0; d < 256; d++) cnt[d + 1] += cnt[d];
        for (Py_ssize_t i = 0; i < n; i++) b[cnt[(a[i].k >> shift) & 0xFF]++] = a[i];
        SortKey *t = a;
        a = b;
        b = t;
    }
    if (a != keys) memcpy(keys, a, (size_t)n * sizeof(SortKey));
    PyMem_Free(tmp);
    for (Py_ssize_t lo = 0, hi; lo < n; lo = hi) { /* ties on 8 bytes: by the rest */
        for (hi = lo + 1; hi < n && keys[hi].k == keys[lo].k; hi++) {
        }
        if (hi - lo > 1) qsort(keys + lo, (size_t)(hi - lo), sizeof(SortKey), cmp_sortkey);
    }
    return 0;
}

static PyObject *py_sorted_items(PyObject *self, PyObject *d); /* below, in _smtfast_api.h */

static int cmp_entry_key(const void *x, const void *y) {
    return memcmp((*(NTEntry *const *)x)->k, (*(NTEntry *const *)y)->k, 33);
}

/* merged(nodes) -> [(key, record | None)]: dict `nodes` with this table's entries over it,
 * keys ascending (a txn's tree writes, as the commit's putmulti takes them). */
static PyObject *nt_merged(NodeTable *t, PyObject *nodes) {
    if (!PyDict_Check(nodes)) return PyErr_Format(PyExc_TypeError, "merged needs a dict");
    int rc = 0;
    if (PyDict_GET_SIZE(nodes)) { /* rare (records installed, then merged over): via a dict */
        PyObject *d = PyDict_Copy(nodes), *out = NULL;
        for (size_t j = 0; d && rc == 0 && j < t->n; j++) {
            PyObject *key = PyBytes_FromStringAndSize((const char *)t->ent[j].k, 33);
            PyObject *rec = key ? nt_record(&t->ent[j]) : NULL;
            rc = rec ? PyDict_SetItem(d, key, rec) : -1;
            Py_XDECREF(key);
            Py_XDECREF(rec);
        }
        PyObject *sorted = d && rc == 0 ? py_sorted_items(NULL, d) : NULL;
        Py_XDECREF(d);
        if (sorted) out = PyObject_CallMethod(sorted, "items", NULL);
        Py_XDECREF(sorted);
        if (out) Py_SETREF(out, PySequence_List(out));
        return out;
    }
    NTEntry **order = PyMem_Malloc((t->n ? t->n : 1) * sizeof(NTEntry *));
    if (!order) return PyErr_NoMemory();
    int sorted = 1;
    for (size_t j = 0; j < t->n; j++) {
        order[j] = &t->ent[j];
        if (j && memcmp(t->ent[j - 1].k, t->ent[j].k, 33) >= 0) sorted = 0;
    }
    if (!sorted) qsort(order, t->n, sizeof(NTEntry *), cmp_entry_key);
    int gc_was_on = PyGC_Disable(); /* n new tuples would set off collections that walk the
                                       whole heap; each is untracked (no cycle possible) */
    PyObject *out = PyList_New((Py_ssize_t)t->n);
    for (size_t j = 0; out && j < t->n; j++) {
        PyObject *item = nt_pair(order[j]->k, nt_record(order[j]));
        if (!item) Py_CLEAR(out);
        else PyObject_GC_UnTrack(item), PyList_SET_ITEM(out, (Py_ssize_t)j, item); /* acyclic */
    }
    if (gc_was_on) PyGC_Enable();
    PyMem_Free(order);
    return out;
}
