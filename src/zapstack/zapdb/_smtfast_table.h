/* zapstack.zapdb._smtfast.NodeTable: a memo of state-tree records in C (included by
 * _smtfast.c before the merge).
 *
 * Keys are node-store keys (33 bytes: masked path || depth, layout v2); a value is what
 * the node store holds there: None (an empty subtree), an interior record (kept inline as
 * its 64 bytes HL || HR) or a leaf record (a held bytes object).  The merge probes it with
 * the key on its stack (no bytes object, no dict) and reads LMDB only on a miss.  Entries
 * are dense (insertion order) behind an open-addressing index of (hash tag, entry) words,
 * so copy() is two memcpy's.  There is no delete: a memo only grows, and a changed
 * record is replaced in place.  From Python it is a small mapping (bytes -> bytes | None);
 * a dict is its readable reference (tests/zapdb/test_native.py holds them equal).
 * Holds the GIL throughout; not thread-safe by itself (the owner serialises use). */

enum { NT_FREE = 0, NT_NONE = 1, NT_NODE = 2, NT_LEAF = 3 };

typedef struct {
    uint8_t k[33];
    uint8_t kind;
    union {
        uint8_t h[64];   /* NT_NODE: left hash || right hash */
        PyObject *rec; /* NT_LEAF: the owned leaf record */
    } u;
} NTEntry;

typedef struct {
    PyObject_HEAD
    NTEntry *ent;   /* ent[0..n), insertion order */
    uint64_t *idx;  /* (tag << 32) | (entry + 1); 0 = free; icap = mask + 1 slots */
    size_t n, ecap, mask;
    size_t indexed; /* ent[0..indexed) are in idx; the rest were appended unindexed (a
                       fresh txn's first merge: the commit needs no index), see nt_sync */
} NodeTable;

static PyTypeObject NodeTableType;

static inline uint64_t nt_hash(const uint8_t *k) {
    uint64_t w[4];
    memcpy(w, k, 32);
    uint64_t h = w[0] ^ (w[1] * 0x9E3779B97F4A7C15ULL) ^ (w[2] * 0xC2B2AE3D27D4EB4FULL) ^
                 (w[3] * 0x165667B19E3779F9ULL) ^ ((uint64_t)k[32] * 0xD6E8FEB86659FD93ULL);
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 33);
}

static inline int nt_same(const uint8_t *a, const uint8_t *b) { /* 33-byte keys, in words */
    uint64_t x[4], y[4];
    memcpy(x, a, 32);
    memcpy(y, b, 32);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3])) == 0 && a[32] == b[32];
}

static NTEntry *nt_find(const NodeTable *t, const uint8_t *k, uint64_t h) {
    if (t->idx == NULL) return NULL;
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint64_t s = t->idx[i];
        if (s == 0) return NULL;
        if ((uint32_t)(s >> 32) == tag) {
            NTEntry *e = &t->ent[(uint32_t)s - 1];
            if (nt_same(e->k, k)) return e;
        }
    }
}

static void nt_place(uint64_t *idx, size_t mask, uint64_t h, size_t entry) {
    size_t i = (size_t)h & mask;
    while (idx[i]) i = (i + 1) & mask;
    idx[i] = (h >> 32 << 32) | (uint64_t)(entry + 1);
}

/* Room for `need` entries in ent; 0 or -1 (MemoryError set). */
static int nt_grow_entries(NodeTable *t, size_t need) {
    if (need >= 0xFFFFFFF0u) {
        PyErr_SetString(PyExc_OverflowError, "NodeTable is full");
        return -1;
    }
    if (need > t->ecap) {
        size_t cap = t->ecap ? t->ecap : 64;
        while (cap < need) cap *= 2;
        NTEntry *ent = PyMem_Realloc(t->ent, cap * sizeof(NTEntry));
        if (!ent) {
            PyErr_NoMemory();
            return -1;
        }
        t->ent = ent;
        t->ecap = cap;
    }
    return 0;
}

/* An index for `need` entries at load <= 1/2, holding ent[0..indexed); 0 or -1. */
static int nt_grow_index(NodeTable *t, size_t need) {
    size_t icap = t->idx ? t->mask + 1 : 0;
    if (need * 2 <= icap) return 0;
    size_t cap = icap ? icap : 128;
    while (cap < need * 2) cap *= 2;
    uint64_t *idx = PyMem_Calloc(cap, sizeof(uint64_t));
    if (!idx) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t j = 0; j < t->indexed; j++) nt_place(idx, cap - 1, nt_hash(t->ent[j].k), j);
    PyMem_Free(t->idx);
    t->idx = idx;
    t->mask = cap - 1;
    return 0;
}

/* Index the entries appended unindexed (nt_find needs every entry indexed); 0 or -1. */
static int nt_sync(NodeTable *t) {
    if (t->indexed == t->n) return 0;
    if (nt_grow_index(t, t->n) < 0) return -1;
    for (size_t j = t->indexed; j < t->n; j++) nt_place(t->idx, t->mask, nt_hash(t->ent[j].k), j);
    t->indexed = t->n;
    return 0;
}

/* Room for `need` entries, all indexed; 0 or -1 (MemoryError set). */
static int nt_reserve(NodeTable *t, size_t need) {
    if (nt_grow_entries(t, need) < 0 || nt_sync(t) < 0) return -1;
    return nt_grow_index(t, need);
}

/* A new unindexed entry for key k (the caller knows k is not in the table); NULL on error. */
static NTEntry *nt_append(NodeTable *t, const uint8_t *k) {
    if (nt_grow_entries(t, t->n + 1) < 0) return NULL;
    NTEntry *e = &t->ent[t->n++];
    memcpy(e->k, k, 33);
    e->kind = NT_FREE;
    return e;
}

/* The entry for key k (hash h), added as NT_FREE if absent; NULL on error. */
static NTEntry *nt_slot(NodeTable *t, const uint8_t *k, uint64_t h) {
    if (nt_sync(t) < 0) return NULL;
    NTEntry *e = nt_find(t, k, h);
    if (e) return e;
    if (nt_reserve(t, t->n + 1) < 0) return NULL;
    e = &t->ent[t->n];
    memcpy(e->k, k, 33);
    e->kind = NT_FREE;
    nt_place(t->idx, t->mask, h, t->n++);
    t->indexed = t->n;
    return e;
}

static void nt_clear_value(NTEntry *e) {
    if (e->kind == NT_LEAF) Py_CLEAR(e->u.rec);
    e->kind = NT_FREE;
}

/* Set k's value from a stored record (borrowed; None = empty subtree); 0 or -1. */
static int nt_set_record(NodeTable *t, const uint8_t *k, uint64_t h, PyObject *rec) {
    int kind = NT_NONE;
    const uint8_t *p = NULL;
    if (rec != Py_None) {
        if (!PyBytes_Check(rec)) {
            PyErr_SetString(PyExc_TypeError, "a node record must be bytes or None");
            return -1;
        }
        p = (const uint8_t *)PyBytes_AS_STRING(rec);
        Py_ssize_t len = PyBytes_GET_SIZE(rec);
        if (len == 65 && p[0] == 1)
            kind = NT_NODE;
        else if (len >= 66 && p[0] == 0)
            kind = NT_LEAF;
        else {
            PyErr_SetString(PyExc_ValueError, "corrupt state-tree node record");
            return -1;
        }
    }
    NTEntry *e = nt_slot(t, k, h);
    if (!e) return -1;
    nt_clear_value(e);
    e->kind = (uint8_t)kind;
    if (kind == NT_NODE) memcpy(e->u.h, p + 1, 64);
    if (kind == NT_LEAF) e->u.rec = Py_NewRef(rec);
    return 0;
}

/* The record an entry stands for, as a new reference (bytes or None). */
static PyObject *nt_record(const NTEntry *e) {
    if (e->kind == NT_LEAF) return Py_NewRef(e->u.rec);
    if (e->kind != NT_NODE) return Py_NewRef(Py_None);
    PyObject *r = PyBytes_FromStringAndSize(NULL, 65);
    if (r) {
        PyBytes_AS_STRING(r)[0] = 1;
        memcpy(PyBytes_AS_STRING(r) + 1, e->u.h, 64);
    }
    return r;
}

static int nt_key(PyObject *key, const uint8_t **k) {
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != 33) {
        PyErr_SetString(PyExc_TypeError, "a NodeTable key is 33 bytes (path || depth)");
        return -1;
    }
    *k = (const uint8_t *)PyBytes_AS_STRING(key);
    return 0;
}

static PyObject *nt_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if ((args && PyTuple_GET_SIZE(args)) || (kw && PyDict_GET_SIZE(kw)))
        return PyErr_Format(PyExc_TypeError, "NodeTable() takes no arguments");
    NodeTable *t = (NodeTable *)type->tp_alloc(type, 0);
    if (t) t->ent = NULL, t->idx = NULL, t->n = t->ecap = t->mask = t->indexed = 0;
    return (PyObject *)t;
}

static void nt_dealloc(NodeTable *t) {
    for (size_t j = 0; j < t->n; j++) nt_clear_value(&t->ent[j]);
    PyMem_Free(t->ent);
    PyMem_Free(t->idx);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static Py_ssize_t nt_len(NodeTable *t) { return (Py_ssize_t)t->n; }

static int nt_contains(NodeTable *t, PyObject *key) {
    const uint8_t *k;
    if (nt_key(key, &k) < 0 || nt_sync(t) < 0) return -1;
    return nt_find(t, k, nt_hash(k)) != NULL;
}

static PyObject *nt_getitem(NodeTable *t, PyObject *key) {
    const uint8_t *k;
    if (nt_key(key, &k) < 0 || nt_sync(t) < 0) return NULL;
    NTEntry *e = nt_find(t, k, nt_hash(k));
    if (!e) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    return nt_record(e);
}

static int nt_setitem(NodeTable *t, PyObject *key, PyObject *rec) {
    const uint8_t *k;
    if (rec == NULL) {
        PyErr_SetString(PyExc_TypeError, "a NodeTable has no delete (a memo only grows)");
        return -1;
    }
    if (nt_key(key, &k) < 0) return -1;
    return nt_set_record(t, k, nt_hash(k), rec);
}

static PyObject *nt_get(NodeTable *t, PyObject *const *args, Py_ssize_t nargs) {
    const uint8_t *k;
    if (nargs < 1 || nargs > 2) return PyErr_Format(PyExc_TypeError, "get(key, default=None)");
    if (nt_key(args[0], &k) < 0 || nt_sync(t) < 0) return NULL;
    NTEntry *e = nt_find(t, k, nt_hash(k));
    if (e) return nt_record(e);
    return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

/* The 2-tuple (a, b), stealing both (either NULL: an error already set; both released). */
static PyObject *steal_pair(PyObject *a, PyObject *b) {
    PyObject *t = a && b ? PyTuple_New(2) : NULL;
    if (!t) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    return t;
}

/* The pair (bytes k[0..33), rec), stealing rec (NULL: an error already set). */
static PyObject *nt_pair(const uint8_t *k, PyObject *rec) {
    return steal_pair(rec ? PyBytes_FromStringAndSize((const char *)k, 33) : NULL, rec);
}

static PyObject *nt_items(NodeTable *t, PyObject *unused) {
    PyObject *list = PyList_New((Py_ssize_t)t->n);
    for (size_t j = 0; list && j < t->n; j++) {
        PyObject *item = nt_pair(t->ent[j].k, nt_record(&t->ent[j]));
        if (!item) Py_CLEAR(list);
        else PyList_SET_ITEM(list, (Py_ssize_t)j, item);
    }
    return list;
}

static PyObject *nt_copy(NodeTable *t, PyObject *unused) {
    if (nt_sync(t) < 0) return NULL;
    NodeTable *c = (NodeTable *)nt_new(Py_TYPE(t), NULL, NULL);
    if (!c || t->n == 0) return (PyObject *)c;
    c->ent = PyMem_Malloc(t->ecap * sizeof(NTEntry));
    c->idx = PyMem_Malloc((t->mask + 1) * sizeof(uint64_t));
    if (!c->ent || !c->idx) {
        Py_DECREF(c);
        return PyErr_NoMemory();
    }
    memcpy(c->ent, t->ent, t->n * sizeof(NTEntry));
    memcpy(c->idx, t->idx, (t->mask + 1) * sizeof(uint64_t));
    c->n = c->indexed = t->n, c->ecap = t->ecap, c->mask = t->mask;
    for (size_t j = 0; j < c->n; j++)
        if (c->ent[j].kind == NT_LEAF) Py_INCREF(c->ent[j].u.rec);
    return (PyObject *)c;
}

/* The next (key, value) of `src`, a dict or (is_list) a list of 2-tuples, both borrowed:
 * 1 = got one, 0 = no more, -1 = TypeError(`bad`) for a list item that is not a pair. */
static int next_pair(PyObject *src, int is_list, Py_ssize_t *pos, PyObject **k, PyObject **v,
                     const char *bad) {
    if (!is_list) return PyDict_Next(src, pos, k, v);
    if (*pos >= PyList_GET_SIZE(src)) return 0;
    PyObject *item = PyList_GET_ITEM(src, (*pos)++);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, bad);
        return -1;
    }
    *k = PyTuple_GET_ITEM(item, 0);
    *v = PyTuple_GET_ITEM(item, 1);
    return 1;
}

/* absorb(nodes, split): every (key, record) of `nodes` (a dict, or a list of pairs) at
 * depth < split, set here. */
static PyObject *nt_absorb(NodeTable *t, PyObject *args) {
    PyObject *nodes, *key, *rec;
    int split;
    Py_ssize_t pos = 0;
    if (!PyArg_ParseTuple(args, "Oi", &nodes, &split)) return NULL;
    int is_list = PyList_Check(nodes);
    if (!is_list && !PyDict_Check(nodes))
        return PyErr_Format(PyExc_TypeError, "absorb needs a dict or a list of pairs");
    for (;;) {
        int got = next_pair(nodes, is_list, &pos, &key, &rec, "absorb needs (key, record) pairs");
        if (got < 0) return NULL;
        if (!got) break;
        const uint8_t *k;
        if (nt_key(key, &k) < 0) return NULL;
        if (k[32] < split && nt_set_record(t, k, nt_hash(k), rec) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *nt_merged(NodeTable *t, PyObject *nodes); /* in _smtfast_sort.h */

static PyObject *nt_nbytes(NodeTable *t, PyObject *unused) {
    size_t b = sizeof(NodeTable) + t->ecap * sizeof(NTEntry);
    if (t->idx) b += (t->mask + 1) * sizeof(uint64_t);
    return PyLong_FromSize_t(b);
}

static PyMethodDef nt_methods[] = {
    {"get", (PyCFunction)(void (*)(void))nt_get, METH_FASTCALL,
     "get(key, default=None) -> the record (bytes), None (empty subtree) or default"},
    {"items", (PyCFunction)nt_items, METH_NOARGS, "items() -> [(key, record | None)], as inserted"},
    {"copy", (PyCFunction)nt_copy, METH_NOARGS, "copy() -> an independent table (memcpy)"},
    {"absorb", (PyCFunction)nt_absorb, METH_VARARGS,
     "absorb(nodes, split): set every (key, record) of dict nodes at depth < split"},
    {"merged", (PyCFunction)nt_merged, METH_O,
     "merged(nodes) -> [(key, record | None)]: nodes with this table's over it, ascending"},
    {"nbytes", (PyCFunction)nt_nbytes, METH_NOARGS, "nbytes() -> memory held (not leaf records)"},
    {NULL, NULL, 0, NULL}};

static PySequenceMethods nt_as_sequence = {.sq_contains = (objobjproc)nt_contains};
static PyMappingMethods nt_as_mapping = {(lenfunc)nt_len, (binaryfunc)nt_getitem,
                                         (objobjargproc)nt_setitem};

static PyTypeObject NodeTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zapstack.zapdb._smtfast.NodeTable",
    .tp_basicsize = sizeof(NodeTable),
    .tp_dealloc = (destructor)nt_dealloc,
    .tp_as_sequence = &nt_as_sequence,
    .tp_as_mapping = &nt_as_mapping,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "NodeTable(): a memo of state-tree records, node-store key -> record | None "
              "(see _smtfast_table.h)",
    .tp_methods = nt_methods,
    .tp_new = nt_new,
};
