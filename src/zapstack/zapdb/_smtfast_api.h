/* The Python-facing functions of zapstack.zapdb._smtfast (included by _smtfast.c). */

#include "_smtfast_codec.h"
#include "_smtfast_sort.h"
#include "_smtfast_sync.h"
#include "_smtfast_lmdb_bulk.h"
#include "_smtfast_serve.h"
static const char *backend_name = "portable";

/* Hash keys/values into Leaf records; sorted (and deduplicated, last wins) unless strict,
 * where the input must already be strictly ascending by key hash (returns 1 if not). */
static int load_leaves(PyObject *keys, PyObject *values, Leaf *leaves, Leaf **order,
                       Py_ssize_t n, int depth, const uint8_t *prefix, int strict,
                       Py_ssize_t *kept) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Leaf *lf = &leaves[i];
        PyObject *k = PyList_GET_ITEM(keys, i), *v = PyList_GET_ITEM(values, i);
        if (!PyBytes_Check(k) || PyBytes_GET_SIZE(k) < 1) {
            PyErr_SetString(PyExc_ValueError, "keys must be non-empty bytes");
            return -1;
        }
        lf->key = k;
        lf->rec = NULL;
        lf->idx = i;
        lf->del = v == Py_None;
        zsha256((const uint8_t *)PyBytes_AS_STRING(k), (size_t)PyBytes_GET_SIZE(k), lf->kh);
        if (lf->del) {
            if (strict) return 1;
            memset(lf->vh, 0, 32);
        } else if (hash_buffer(v, lf->vh) < 0) {
            return -1;
        }
        uint8_t masked[32];
        mask_path(lf->kh, depth, masked);
        if (memcmp(masked, prefix, 32) != 0) {
            if (strict) return 1;
            PyErr_SetString(PyExc_ValueError, "a key hash lies outside the subtree's prefix");
            return -1;
        }
        order[i] = lf;
        if (strict && i > 0 && memcmp(order[i - 1]->kh, lf->kh, 32) >= 0) return 1;
    }
    *kept = n;
    if (strict || n < 2) return 0;
    if (sort_leaves(order, n) < 0) return -1;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (k > 0 && memcmp(order[k - 1]->kh, order[i]->kh, 32) == 0) {
            if (PyObject_RichCompareBool(order[k - 1]->key, order[i]->key, Py_EQ) != 1) {
                if (!PyErr_Occurred()) collision();
                return -1;
            }
            order[k - 1] = order[i]; /* the later write wins */
        } else {
            order[k++] = order[i];
        }
    }
    *kept = k;
    return 0;
}

static int cmp_emit(const void *x, const void *y) {
    return memcmp(((const Emit *)x)->k, ((const Emit *)y)->k, 33);
}

/* Drop the unused slots and check the writes are in ascending node-store key order (the
 * walk takes each child's slot before its subtree, so they are: sorted here only if not). */
static size_t sort_emits(Ctx *c) {
    size_t k = 0;
    int sorted = 1;
    for (size_t i = 0; i < c->n; i++) {
        if (c->em[i].skip) continue;
        if (k > 0 && memcmp(c->em[k - 1].k, c->em[i].k, 33) > 0) sorted = 0;
        c->em[k++] = c->em[i];
    }
    c->n = k;
    if (!sorted) qsort(c->em, c->n, sizeof(Emit), cmp_emit);
    return k;
}

/* Store the writes into dict `into` in sorted order (no tuples); 0 or -1. */
static int writes_into(Ctx *c, PyObject *into) {
    sort_emits(c);
    int rc = 0;
    for (size_t j = 0; j < c->n && rc == 0; j++) {
        Emit *e = &c->em[j];
        PyObject *key = PyBytes_FromStringAndSize((const char *)e->k, 33);
        PyObject *rec = key ? record_of(e->kind, e->body, e->rec) : NULL;
        rc = rec ? PyDict_SetItem(into, key, rec) : -1;
        Py_XDECREF(key);
        Py_XDECREF(rec);
    }
    return rc;
}

/* Store the writes into table `t` (interior bodies copied inline, leaf records moved);
 * `fresh`: t held nothing before this merge, so the writes (each position once) are
 * appended unindexed (nt_sync indexes them if anything ever looks one up). */
static int writes_table(Ctx *c, NodeTable *t, int fresh) {
    sort_emits(c);
    if ((fresh ? nt_grow_entries(t, t->n + c->n) : nt_reserve(t, t->n + c->n)) < 0) return -1;
    for (size_t j = 0; j < c->n; j++) {
        Emit *e = &c->em[j];
        NTEntry *x = fresh ? nt_append(t, e->k) : nt_slot(t, e->k, nt_hash(e->k));
        if (!x) return -1;
        nt_clear_value(x);
        x->kind = e->kind == K_NODE ? NT_NODE : e->kind == K_LEAF ? NT_LEAF : NT_NONE;
        if (e->kind == K_NODE) memcpy(x->u.h, e->body, 64);
        if (e->kind == K_LEAF) x->u.rec = e->rec, e->rec = NULL;
    }
    return 0;
}

static PyObject *writes_list(Ctx *c) {
    sort_emits(c);
    PyObject *list = PyList_New((Py_ssize_t)c->n);
    if (!list) return NULL;
    for (size_t i = 0; i < c->n; i++) {
        Emit *e = &c->em[i];
        PyObject *t = nt_pair(e->k, record_of(e->kind, e->body, e->rec));
        if (!t) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

PyDoc_STRVAR(merge_doc,
             "merge(get, keys, values, depth=0, prefix=bytes(32), strict=False, into=None,\n"
             "      upper=None, lower=None, split=0, nodes=None)\n"
             "-> (hash, record | None, writes) or None\n\n"
             "With a dict or NodeTable `into`, the writes go into it (a dict: in sorted order)\n"
             "and `writes` is their count; reads look in `into`, then in dict `nodes`, then in\n"
             "NodeTable `upper` (depth < split) or `lower`, then call get and remember its answer\n"
             "there.  Into a NodeTable at depth 0, the root's own record goes in too.\n"
             "Apply keys[i] -> values[i] (None deletes) to the subtree at (depth, prefix),\n"
             "reading records through get(path) (None: the subtree starts empty).  Returns the\n"
             "new hash, the record for the subtree's own position, and [(path, record | None)]\n"
             "below it, sorted.  strict=True (bulk build of a verified chunk): keys must be\n"
             "strictly ascending by sha256, inside the prefix, with no None value, else returns\n"
             "None.");

static PyObject *py_merge(PyObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"get",   "keys",  "values", "depth", "prefix", "strict",
                            "into",  "upper", "lower",  "split", "nodes",  NULL};
    PyObject *get, *keys, *values, *into = Py_None, *upper = Py_None, *lower = Py_None;
    PyObject *nodes = Py_None;
    int depth = 0, strict = 0, split = 0;
    Py_buffer prefix = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!O!|iy*pOOOiO", names, &get, &PyList_Type,
                                     &keys, &PyList_Type, &values, &depth, &prefix, &strict,
                                     &into, &upper, &lower, &split, &nodes))
        return NULL;
    NodeTable *tree = PyObject_TypeCheck(into, &NodeTableType) ? (NodeTable *)into : NULL;
    if ((into != Py_None && !tree && !PyDict_Check(into)) ||
        (nodes != Py_None && (!tree || !PyDict_Check(nodes))) ||
        (upper != Py_None && !PyObject_TypeCheck(upper, &NodeTableType)) ||
        (lower != Py_None && !PyObject_TypeCheck(lower, &NodeTableType))) {
        PyBuffer_Release(&prefix);
        return PyErr_Format(PyExc_TypeError, "into must be a dict or NodeTable, nodes a dict "
                                             "(with a NodeTable into), upper and lower "
                                             "NodeTables (or None)");
    }
    uint8_t pfx[32] = {0};
    if (prefix.buf) {
        int ok = prefix.len == 32;
        if (ok) memcpy(pfx, prefix.buf, 32);
        PyBuffer_Release(&prefix);
        if (!ok) return PyErr_Format(PyExc_ValueError, "prefix must be 32 bytes");
    }
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(values) != n || depth < 0 || depth > 255)
        return PyErr_Format(PyExc_ValueError, "keys/values length mismatch or bad depth");
    uint8_t masked[32];
    mask_path(pfx, depth, masked);
    if (memcmp(masked, pfx, 32) != 0)
        return PyErr_Format(PyExc_ValueError, "prefix has bits set beyond depth");
    PyObject *dict = tree ? (nodes != Py_None && PyDict_GET_SIZE(nodes) ? nodes : NULL)
                          : (into == Py_None ? NULL : into);
    Ctx c = {get == Py_None ? NULL : get, NULL, 0, 0, tree, dict,
             upper == Py_None ? NULL : (NodeTable *)upper,
             lower == Py_None ? NULL : (NodeTable *)lower, split, 0, NULL, 2 * (size_t)n + 256};
    if (!tree && c.nodes && PyDict_GET_SIZE(into) == 1) { /* a txn's first merge: its root's slot */
        static const char zero[33] = {0};
        PyObject *root_key = PyBytes_FromStringAndSize(zero, 33);
        if (!root_key) return NULL;
        c.root_only = PyDict_Contains(into, root_key) == 1;
        Py_DECREF(root_key);
    }
    Leaf *leaves = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Leaf));
    Leaf **order = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Leaf *));
    PyObject *result = NULL, *writes = NULL;
    Rec old = {K_EMPTY, {0}, NULL};
    Content out = {K_EMPTY, {0}, {0}, NULL};
    Py_ssize_t kept = 0;
    if (!leaves || !order) {
        PyErr_NoMemory();
        goto done;
    }
    if ((c.tree && nt_sync(c.tree) < 0) || (c.upper && nt_sync(c.upper) < 0) ||
        (c.lower && nt_sync(c.lower) < 0))
        goto done;
    int rc = load_leaves(keys, values, leaves, order, n, depth, pfx, strict, &kept);
    if (rc < 0) goto done;
    if (rc > 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (fetch(&c, depth, pfx, &old) < 0) goto done;
    if (kept) {
        if (merge(&c, order, kept, depth, pfx, &old, &out) < 0) goto done;
    } else {
        content_of(&old, &out);
    }
    PyObject *record = record_of(out.kind, out.body, out.rec);
    if (!record) goto done;
    Py_XSETREF(out.rec, record);
    if (tree) { /* the root's own record first: a first merge fills the table in key order */
        static const uint8_t top[33] = {0};
        int fresh = tree->n == 0 && depth == 0;
        if (fresh) {
            NTEntry *x = nt_append(tree, top);
            if (!x) goto done;
            x->kind = out.kind == K_NODE ? NT_NODE : out.kind == K_LEAF ? NT_LEAF : NT_NONE;
            if (out.kind == K_NODE) memcpy(x->u.h, out.body, 64);
            if (out.kind == K_LEAF) x->u.rec = Py_NewRef(out.rec);
        } else if (depth == 0 && nt_set_record(tree, top, nt_hash(top), record) < 0) {
            goto done;
        }
        if (writes_table(&c, tree, fresh) < 0) goto done;
        writes = PyLong_FromSize_t(c.n);
    } else if (into != Py_None) {
        if (writes_into(&c, into) < 0) goto done;
        writes = PyLong_FromSize_t(c.n);
    } else {
        writes = writes_list(&c);
    }
    if (!writes) goto done;
    result = Py_BuildValue("(y#ON)", (const char *)out.hash, (Py_ssize_t)32, out.rec, writes);
    writes = NULL;
done:
    for (size_t i = 0; i < c.n; i++) Py_XDECREF(c.em[i].rec);
    PyMem_Free(c.em);
    PyMem_Free(leaves);
    PyMem_Free(order);
    Py_XDECREF(old.rec);
    Py_XDECREF(out.rec);
    Py_XDECREF(writes);
    return result;
}

static PyObject *py_scan(PyObject *self, PyObject *d) {
    int is_list = PyList_Check(d);
    if (!is_list && !PyDict_Check(d))
        return PyErr_Format(PyExc_TypeError, "scan needs a dict or a list of pairs");
    Py_ssize_t pos = 0;
    PyObject *k, *v, *prev = NULL;
    int has_none = 0, ascending = 1;
    for (;;) {
        int got = next_pair(d, is_list, &pos, &k, &v, "scan needs (key, value) pairs");
        if (got < 0) return NULL;
        if (!got) break;
        if (v == Py_None) has_none = 1;
        if (ascending && PyBytes_Check(k)) {
            if (prev) {
                Py_ssize_t la = PyBytes_GET_SIZE(prev), lb = PyBytes_GET_SIZE(k);
                int r = memcmp(PyBytes_AS_STRING(prev), PyBytes_AS_STRING(k), la < lb ? la : lb);
                if (r > 0 || (r == 0 && la >= lb)) ascending = 0;
            }
            prev = k;
        } else {
            ascending = 0;
        }
    }
    return Py_BuildValue("(OO)", has_none ? Py_True : Py_False, ascending ? Py_True : Py_False);
}

/* sorted_items(dict) -> a new dict with the same items, bytes keys in ascending order. */
static PyObject *py_sorted_items(PyObject *self, PyObject *d) {
    if (!PyDict_Check(d)) return PyErr_Format(PyExc_TypeError, "sorted_items needs a dict");
    Py_ssize_t n = PyDict_GET_SIZE(d), pos = 0, i = 0;
    SortKey *keys = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(SortKey));
    PyObject *k, *v;
    if (!keys) return PyErr_NoMemory();
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!PyBytes_Check(k)) {
            PyMem_Free(keys);
            return PyErr_Format(PyExc_TypeError, "sorted_items needs bytes keys");
        }
        keys[i].o = k;
        keys[i++].v = v;
    }
    PyObject *out = NULL;
    if (radix_sort_keys(keys, n, common_prefix(keys, n)) == 0) out = _PyDict_NewPresized(n);
    for (i = 0; out && i < n; i++)
        if (PyDict_SetItem(out, keys[i].o, keys[i].v) < 0) Py_CLEAR(out);
    PyMem_Free(keys);
    return out;
}

static PyObject *py_sha256(PyObject *self, PyObject *data) {
    uint8_t out[32];
    if (hash_buffer(data, out) < 0) return NULL;
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *py_sha256_many(PyObject *self, PyObject *items) {
    PyObject *seq = PySequence_Fast(items, "sha256_many needs a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyBytes_FromStringAndSize(NULL, 32 * n);
    if (out) {
        uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (hash_buffer(PySequence_Fast_GET_ITEM(seq, i), p + 32 * i) < 0) {
                Py_CLEAR(out);
                break;
            }
        }
    }
    Py_DECREF(seq);
    return out;
}

static PyObject *py_node_hash(PyObject *self, PyObject *args) {
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "y*y*", &a, &b)) return NULL;
    PyObject *r = NULL;
    if (a.len == 32 && b.len == 32) {
        uint8_t out[32];
        zsha256_tagged(1, a.buf, b.buf, out);
        r = PyBytes_FromStringAndSize((const char *)out, 32);
    } else {
        PyErr_SetString(PyExc_ValueError, "node_hash needs two 32-byte hashes");
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return r;
}

static PyObject *py_select(PyObject *self, PyObject *arg) {
    int portable = PyObject_IsTrue(arg);
    if (portable < 0) return NULL;
    backend_name = zsha_select(portable);
    return PyUnicode_FromString(backend_name);
}

static PyObject *py_backend(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(backend_name);
}

static PyMethodDef methods[] = {
    {"merge", (PyCFunction)(void (*)(void))py_merge, METH_VARARGS | METH_KEYWORDS, merge_doc},
    {"scan", py_scan, METH_O,
     "scan(dict or list of pairs) -> (has a None value, bytes keys strictly ascending in order)"},
    {"sorted_items", py_sorted_items, METH_O,
     "sorted_items(dict) -> a new dict, the same items with bytes keys ascending"},
    {"parse_chunk", py_parse_chunk, METH_VARARGS,
     "parse_chunk(body, depth, max_key) -> (entries, siblings, terminal); ValueError(msg, "
     "code, offset)"},
    {"encode_chunk", py_encode_chunk, METH_VARARGS,
     "encode_chunk(index, entries, siblings, terminal) -> u32 body_len | body"},
    {"subtree_keys", py_subtree_keys, METH_VARARGS,
     "subtree_keys(record values, depth, path, out, budget=-1, per_leaf=0) -> bool: the "
     "subtree's leaf keys, pre-order; False once the keys pass the budget"},
    {"warm", py_warm, METH_VARARGS,
     "warm(get, upper, split): every tree record at depth < split into upper (see the C)"},
    {"sorted_entries", py_sorted_entries, METH_O,
     "sorted_entries(groups) -> dict of every (key, value), keys ascending and distinct"},
    {"fold", py_fold, METH_VARARGS, "fold(path, node, siblings) -> root (see proofs._fold)"},
    {"walk", py_walk, METH_VARARGS, "walk(get, depth, path) -> (siblings, stop): proofs._walk"},
    {"sha256", py_sha256, METH_O, "sha256(data) -> 32-byte digest"},
    {"sha256_many", py_sha256_many, METH_O, "sha256_many(seq) -> concatenated digests"},
    {"node_hash", py_node_hash, METH_VARARGS, "node_hash(left, right) -> sha256(0x01||l||r)"},
    {"select", py_select, METH_O, "select(portable) -> name of the SHA-256 backend in use"},
    {"backend", py_backend, METH_NOARGS, "backend() -> 'sha-ni' or 'portable'"},
    {"lmdb_bind", py_lmdb_bind, METH_VARARGS,
     "lmdb_bind(Cursor, Transaction, version, Error) -> bool: the py-lmdb bridge checked, bound"},
    {"lmdb_getter", py_lmdb_getter, METH_VARARGS,
     "lmdb_getter(cursor, nogil=False) -> cursor.get as a callable the tree's C reads call "
     "directly | None"},
    {"lmdb_putmulti", py_lmdb_putmulti, METH_VARARGS,
     "lmdb_putmulti(cursor, items, append) -> (consumed, added, rc, message) | None"},
    {"lmdb_getmulti", py_lmdb_getmulti, METH_VARARGS,
     "lmdb_getmulti(cursor, keys) -> ([(key, value)], rc, message) | None"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_smtfast",
    "State-tree merge, bulk build and state sync (see _smtfast.c).", -1, methods};

PyMODINIT_FUNC PyInit__smtfast(void) {
    backend_name = zsha_select(0);
    init_path_masks();
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "LAYOUT", 2) < 0) Py_CLEAR(m); /* node-store layout */
    PyObject *table = (PyObject *)&NodeTableType;
    if (m && (PyType_Ready(&NodeTableType) < 0 || PyType_Ready(&LmdbGetter_Type) < 0 || PyModule_AddObjectRef(m, "NodeTable", table) < 0 ||
              sync_register(m) < 0))
        Py_CLEAR(m);
    return m;
}
