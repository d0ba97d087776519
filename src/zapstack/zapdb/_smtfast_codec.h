/* Byte-level helpers of zapstack.zapdb._smtfast (included by _smtfast_api.h): a cache-
 * friendly sort of bytes objects and the STATE_CHUNK record codec (docs/formats/bootstrap.md).
 * Each has a readable Python reference that tests hold equal: sorted(),
 * bootstrap/wire.py::encode_chunk_py, bootstrap/readers.py::ChunkReplyReader._body_py.
 * All hold the GIL; inputs are hostile (every length checked before it is used). */

typedef struct {
    uint64_t k; /* big-endian bytes [off, off+8) of the sort field, zero-padded */
    PyObject *o;
    PyObject *v; /* carried along (borrowed): the dict value in sorted_items */
} SortKey;

static Py_ssize_t sort_off; /* the field's offset (a qsort comparator takes no context) */

static int cmp_sortkey(const void *x, const void *y) {
    const SortKey *a = x, *b = y;
    if (a->k != b->k) return a->k < b->k ? -1 : 1;
    Py_ssize_t la = PyBytes_GET_SIZE(a->o) - sort_off, lb = PyBytes_GET_SIZE(b->o) - sort_off;
    if (la < 0) la = 0;
    if (lb < 0) lb = 0;
    int r = memcmp(PyBytes_AS_STRING(a->o) + sort_off, PyBytes_AS_STRING(b->o) + sort_off,
                   (size_t)(la < lb ? la : lb));
    return r ? r : (la > lb) - (la < lb);
}

static uint64_t prefix_u64(PyObject *o, Py_ssize_t off) {
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(o);
    Py_ssize_t len = PyBytes_GET_SIZE(o);
    uint64_t k = 0;
    for (Py_ssize_t i = 0; i < 8; i++) k = (k << 8) | (off + i < len ? p[off + i] : 0);
    return k;
}

/* Sort objs[0..n) (bytes) by their bytes from `off` on (lexicographic, shorter first on a
 * tie).  `common` > 0: every object is known to share its first `common` bytes, so the
 * 8-byte keys are taken after them (the result is the same order). */
static void sort_keys(SortKey *keys, Py_ssize_t n, Py_ssize_t off, Py_ssize_t common) {
    for (Py_ssize_t i = 0; i < n; i++) keys[i].k = prefix_u64(keys[i].o, off + common);
    sort_off = off;
    qsort(keys, (size_t)n, sizeof(SortKey), cmp_sortkey);
}

/* Length of the prefix every key in keys[0..n) shares. */
static Py_ssize_t common_prefix(const SortKey *keys, Py_ssize_t n) {
    if (n < 2) return 0;
    const char *first = PyBytes_AS_STRING(keys[0].o);
    Py_ssize_t lcp = PyBytes_GET_SIZE(keys[0].o);
    for (Py_ssize_t i = 1; i < n && lcp > 0; i++) {
        const char *p = PyBytes_AS_STRING(keys[i].o);
        Py_ssize_t len = PyBytes_GET_SIZE(keys[i].o), j = 0;
        if (len < lcp) lcp = len;
        while (j < lcp && p[j] == first[j]) j++;
        lcp = j;
    }
    return lcp;
}

/* ValueError(message, wire-code name, offset in the body): readers.py maps it to a
 * RemoteProtocolError carrying that code. */
static PyObject *chunk_err(const char *msg, const char *code, Py_ssize_t pos) {
    PyObject *args = Py_BuildValue("(ssn)", msg, code, pos);
    if (args) {
        PyErr_SetObject(PyExc_ValueError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define NEED(at, size)                                                                       \
    if ((Py_ssize_t)(at) + (Py_ssize_t)(size) > len) {                                       \
        chunk_err("chunk record truncated", "TRUNCATED", len);                               \
        goto fail;                                                                           \
    }

/* parse_chunk(body, depth, max_key) -> (entries, siblings, terminal | None): a STATE_CHUNK
 * record body after its index, which the caller checks first (bytes 0..3). */
static PyObject *py_parse_chunk(PyObject *self, PyObject *args) {
    Py_buffer view;
    int depth, max_key;
    if (!PyArg_ParseTuple(args, "y*ii", &view, &depth, &max_key)) return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t len = view.len, pos = 8;
    PyObject *entries = PyList_New(0), *sibs = NULL, *term = NULL, *out = NULL;
    if (!entries) goto fail;
    NEED(0, 8);
    uint32_t n = rd32(b + 4);
    for (uint32_t i = 0; i < n; i++) {
        NEED(pos, 2);
        Py_ssize_t klen = b[pos] | b[pos + 1] << 8;
        if (klen < 1 || klen > max_key) {
            chunk_err("key length out of range", "BAD_LENGTH", pos);
            goto fail;
        }
        NEED(pos + 2, klen + 4);
        Py_ssize_t kat = pos + 2;
        pos = kat + klen;
        Py_ssize_t vlen = (Py_ssize_t)rd32(b + pos);
        NEED(pos + 4, vlen);
        PyObject *t = Py_BuildValue("(y#y#)", b + kat, klen, b + pos + 4, vlen);
        if (!t || PyList_Append(entries, t) < 0) {
            Py_XDECREF(t);
            goto fail;
        }
        Py_DECREF(t);
        pos += 4 + vlen;
    }
    NEED(pos, 1);
    int n_sib = b[pos];
    if (n_sib > depth) {
        chunk_err("more siblings than the depth", "BAD_FIELD_COUNT", pos);
        goto fail;
    }
    NEED(pos + 1, 32 * n_sib + 1);
    if (!(sibs = PyTuple_New(n_sib))) goto fail;
    for (int i = 0; i < n_sib; i++) {
        PyObject *s = PyBytes_FromStringAndSize((const char *)b + pos + 1 + 32 * i, 32);
        if (!s) goto fail;
        PyTuple_SET_ITEM(sibs, i, s);
    }
    pos += 1 + 32 * n_sib;
    if (b[pos] == 1) {
        NEED(pos + 1, 64);
        if (!(term = PyBytes_FromStringAndSize((const char *)b + pos + 1, 64))) goto fail;
        pos += 65;
    } else if (b[pos] == 0) {
        term = Py_NewRef(Py_None);
        pos += 1;
    } else {
        chunk_err("terminal flag must be 0 or 1", "BAD_FLAGS", pos);
        goto fail;
    }
    if (pos != len) {
        chunk_err("bytes after the chunk record", "TRAILING_DATA", pos);
        goto fail;
    }
    PyObject *tup = PyList_AsTuple(entries);
    if (tup) out = Py_BuildValue("(NOO)", tup, sibs, term);
fail:
    PyBuffer_Release(&view);
    Py_XDECREF(entries);
    Py_XDECREF(sibs);
    Py_XDECREF(term);
    return out;
}
#undef NEED

static inline void wr32(uint8_t *p, uint64_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* encode_chunk(index, entries, siblings, terminal) -> u32 body_len | body. */
static PyObject *py_encode_chunk(PyObject *self, PyObject *args) {
    unsigned long long index;
    PyObject *entries, *sibs, *term;
    if (!PyArg_ParseTuple(args, "KO!O!O", &index, &PyTuple_Type, &entries, &PyTuple_Type, &sibs,
                          &term))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(entries), ns = PyTuple_GET_SIZE(sibs);
    if (index > 0xFFFFFFFFull || n > 0xFFFFFFFFll || ns > 255)
        return PyErr_Format(PyExc_ValueError, "chunk index, entry or sibling count too large");
    uint64_t size = 8 + 1 + 32 * (uint64_t)ns + 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(e, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(e, 1)))
            return PyErr_Format(PyExc_TypeError, "chunk entries must be (bytes, bytes)");
        Py_ssize_t kl = PyBytes_GET_SIZE(PyTuple_GET_ITEM(e, 0));
        Py_ssize_t vl = PyBytes_GET_SIZE(PyTuple_GET_ITEM(e, 1));
        if (kl > 0xFFFF || vl > 0xFFFFFFFFll)
            return PyErr_Format(PyExc_ValueError, "chunk key or value too long");
        size += 6 + (uint64_t)kl + (uint64_t)vl;
    }
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *s = PyTuple_GET_ITEM(sibs, i);
        if (!PyBytes_Check(s) || PyBytes_GET_SIZE(s) != 32)
            return PyErr_Format(PyExc_ValueError, "siblings must be 32-byte bytes");
    }
    if (term != Py_None) {
        if (!PyBytes_Check(term) || PyBytes_GET_SIZE(term) != 64)
            return PyErr_Format(PyExc_ValueError, "terminal must be 64 bytes or None");
        size += 64;
    }
    if (size > 0xFFFFFFFFull) return PyErr_Format(PyExc_ValueError, "chunk record too long");
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(4 + size));
    if (!out) return NULL;
    uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
    wr32(p, size);
    wr32(p + 4, index);
    wr32(p + 8, (uint64_t)n);
    p += 12;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(entries, i);
        PyObject *k = PyTuple_GET_ITEM(e, 0), *v = PyTuple_GET_ITEM(e, 1);
        Py_ssize_t kl = PyBytes_GET_SIZE(k), vl = PyBytes_GET_SIZE(v);
        p[0] = (uint8_t)kl;
        p[1] = (uint8_t)(kl >> 8);
        memcpy(p + 2, PyBytes_AS_STRING(k), (size_t)kl);
        wr32(p + 2 + kl, (uint64_t)vl);
        memcpy(p + 6 + kl, PyBytes_AS_STRING(v), (size_t)vl);
        p += 6 + kl + vl;
    }
    *p++ = (uint8_t)ns;
    for (Py_ssize_t i = 0; i < ns; i++, p += 32) memcpy(p, PyBytes_AS_STRING(PyTuple_GET_ITEM(sibs, i)), 32);
    if (term == Py_None) {
        *p = 0;
    } else {
        *p = 1;
        memcpy(p + 1, PyBytes_AS_STRING(term), 64);
    }
    return out;
}

/* One record of the upper-tree warm-up: (depth, path) read through `get` into `upper`, then,
 * for an interior record above `split` - 1, its non-empty children (an empty child's hash
 * is EMPTY in its parent: memoised as None unread).  Pre-order: ascending keys. */
static int warm_walk(PyObject *get, NodeTable *upper, int depth, uint8_t *path, int split,
                     int known_empty) {
    uint8_t k[33];
    memcpy(k, path, 32);
    k[32] = (uint8_t)depth;
    PyObject *key = PyBytes_FromStringAndSize((const char *)k, 33);
    if (!key) return -1;
    PyObject *r = known_empty ? Py_NewRef(Py_None) : PyObject_CallOneArg(get, key);
    Py_DECREF(key);
    int rc = r ? nt_set_record(upper, k, nt_hash(k), r) : -1; /* TypeError if not bytes */
    if (rc == 0 && r != Py_None && depth + 1 < split && depth < 255) {
        if (!PyBytes_Check(r)) {
            PyErr_SetString(PyExc_TypeError, "warm: get must return bytes or None");
            rc = -1;
        } else if (PyBytes_GET_SIZE(r) == 65 && PyBytes_AS_STRING(r)[0] == 1) {
            static const uint8_t empty[32] = {0};
            const uint8_t *h = (const uint8_t *)PyBytes_AS_STRING(r) + 1;
            uint8_t bit = (uint8_t)(0x80 >> (depth & 7));
            rc = warm_walk(get, upper, depth + 1, path, split, !memcmp(h, empty, 32));
            path[depth >> 3] |= bit;
            if (rc == 0)
                rc = warm_walk(get, upper, depth + 1, path, split, !memcmp(h + 32, empty, 32));
            path[depth >> 3] &= (uint8_t)~bit;
        }
    }
    Py_XDECREF(r);
    return rc;
}

static PyObject *py_warm(PyObject *self, PyObject *args) {
    PyObject *get, *upper;
    int split;
    if (!PyArg_ParseTuple(args, "OO!i", &get, &NodeTableType, &upper, &split)) return NULL;
    uint8_t path[32] = {0};
    if (split > 0 && warm_walk(get, (NodeTable *)upper, 0, path, split > 256 ? 256 : split, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* sorted_entries(groups) -> dict: the (key, value) pairs of every tuple in list `groups`
 * as one dict with the keys ascending; ValueError if a key is repeated. */
static PyObject *py_sorted_entries(PyObject *self, PyObject *groups) {
    if (!PyList_Check(groups)) return PyErr_Format(PyExc_TypeError, "sorted_entries needs a list");
    Py_ssize_t ng = PyList_GET_SIZE(groups), total = 0, n = 0;
    for (Py_ssize_t i = 0; i < ng; i++) {
        PyObject *g = PyList_GET_ITEM(groups, i);
        if (!PyTuple_Check(g)) return PyErr_Format(PyExc_TypeError, "groups must be tuples");
        total += PyTuple_GET_SIZE(g);
    }
    SortKey *keys = PyMem_Malloc((size_t)(total ? total : 1) * sizeof(SortKey));
    if (!keys) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < ng; i++) {
        PyObject *g = PyList_GET_ITEM(groups, i);
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(g); j++, n++) {
            PyObject *e = PyTuple_GET_ITEM(g, j);
            if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(e, 0))) {
                PyMem_Free(keys);
                return PyErr_Format(PyExc_TypeError, "entries must be (bytes, value) pairs");
            }
            keys[n].o = PyTuple_GET_ITEM(e, 0);
            keys[n].v = PyTuple_GET_ITEM(e, 1);
        }
    }
    sort_keys(keys, n, 0, common_prefix(keys, n));
    PyObject *out = _PyDict_NewPresized(n);
    for (Py_ssize_t i = 0; out && i < n; i++) {
        if (i > 0 && cmp_sortkey(&keys[i - 1], &keys[i]) == 0) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_ValueError, "sorted_entries: a key is repeated");
        } else if (PyDict_SetItem(out, keys[i].o, keys[i].v) < 0) {
            Py_CLEAR(out);
        }
    }
    PyMem_Free(keys);
    return out;
}

/* fold(path, node, siblings) -> the root: `node` at depth len(siblings) on `path` hashed up
 * with siblings[d-1] at each depth d (left or right by bit d-1 of path); proofs._fold. */
static PyObject *py_fold(PyObject *self, PyObject *args) {
    Py_buffer path, node;
    PyObject *sibs;
    if (!PyArg_ParseTuple(args, "y*y*O!", &path, &node, &PyTuple_Type, &sibs)) return NULL;
    PyObject *out = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(sibs);
    uint8_t h[32];
    if (path.len != 32 || node.len != 32 || n > 256) {
        PyErr_SetString(PyExc_ValueError, "fold needs a 32-byte path and node, <= 256 siblings");
        goto done;
    }
    memcpy(h, node.buf, 32);
    for (Py_ssize_t d = n; d > 0; d--) {
        PyObject *s = PyTuple_GET_ITEM(sibs, d - 1);
        if (!PyBytes_Check(s) || PyBytes_GET_SIZE(s) != 32) {
            PyErr_SetString(PyExc_ValueError, "siblings must be 32-byte bytes");
            goto done;
        }
        const uint8_t *sb = (const uint8_t *)PyBytes_AS_STRING(s);
        uint8_t cur[32];
        memcpy(cur, h, 32);
        if (bit_at(path.buf, (int)(d - 1)))
            zsha256_tagged(1, sb, cur, h);
        else
            zsha256_tagged(1, cur, sb, h);
    }
    out = PyBytes_FromStringAndSize((const char *)h, 32);
done:
    PyBuffer_Release(&path);
    PyBuffer_Release(&node);
    return out;
}
