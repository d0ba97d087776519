/* SyncLoader.finish() (included by _smtfast_sync.h, which documents it): join the
 * chunks under the root, check it, order the node records (a pre-order walk) and sort
 * the entries (a radix sort). */

typedef struct {
    int kind;
    uint8_t hash[32];
    int64_t src; /* K_LEAF: arena offset of the leaf's entry (its record is copied) */
} SyncUp;

/* Append the record at arena offset `at` to the key order (ValueError unless its key is
 * above the last one's: LMDB's append would silently skip it). */
static int sync_push(SyncLoader *s, int64_t at, Py_ssize_t *cap) {
    if (s->norder && memcmp(s->nod.buf + s->order[s->norder - 1] + 4, s->nod.buf + at + 4, 33) >= 0) {
        PyErr_SetString(PyExc_ValueError, "node records out of order (a bug)");
        return -1;
    }
    return sync_off_append(&s->order, &s->norder, cap, at);
}

static inline uint32_t sync_len(const SyncLoader *s, int64_t at) {
    uint32_t n;
    memcpy(&n, s->nod.buf + at, 4);
    return n;
}

/* Pre-order walk of the joined levels from (d, i): each record's arena offset in order. */
static int sync_emit(SyncLoader *s, SyncUp **lv, int d, size_t i, Py_ssize_t *cap) {
    SyncUp *u = &lv[d][i];
    if (u->kind == K_EMPTY) return 0;
    if (d == s->depth) {
        SyncTop *t = &s->tops[i];
        if (t->settled) return 0; /* handed out by settle() already */
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
    uint8_t *rec = s->nod.buf + at + 37;
    if (u->kind == K_LEAF) {
        memcpy(rec, s->nod.buf + u->src + 37, len);
        return 0;
    }
    rec[0] = 1;
    memcpy(rec + 1, lv[d + 1][2 * i].hash, 32);
    memcpy(rec + 33, lv[d + 1][2 * i + 1].hash, 32);
    if (sync_emit(s, lv, d + 1, 2 * i, cap) < 0) return -1;
    return sync_emit(s, lv, d + 1, 2 * i + 1, cap);
}

/* An entry of a data arena: its key and value. */
static inline void sync_entry_in(const SyncBuf *d, int64_t off, const uint8_t **k, size_t *kl,
                                 const uint8_t **v, size_t *vl) {
    uint32_t a, b;
    memcpy(&a, d->buf + off, 4);
    memcpy(&b, d->buf + off + 4, 4);
    *k = d->buf + off + 8;
    *kl = a;
    *v = *k + a;
    *vl = b;
}

static inline void sync_entry(const SyncLoader *s, int64_t off, const uint8_t **k, size_t *kl,
                              const uint8_t **v, size_t *vl) {
    sync_entry_in(&s->dat, off, k, kl, v, vl);
}

static int sync_cmp_keys(const uint8_t *a, size_t la, const uint8_t *b, size_t lb) {
    int r = memcmp(a, b, la < lb ? la : lb);
    return r ? r : (la > lb) - (la < lb);
}

static const SyncLoader *sync_cmp_of; /* qsort's comparator takes no context */

static int sync_cmp_data(const void *x, const void *y) {
    const SyncKey *a = x, *b = y;
    if (a->k != b->k) return a->k < b->k ? -1 : 1;
    const uint8_t *ka, *kb, *va, *vb;
    size_t la, lb, wa, wb;
    sync_entry(sync_cmp_of, a->off, &ka, &la, &va, &wa);
    sync_entry(sync_cmp_of, b->off, &kb, &lb, &vb, &wb);
    return sync_cmp_keys(ka, la, kb, lb);
}

/* The entries in key order (s->data): an LSD radix sort on the 8 key bytes after the
 * keys' common prefix (16-bit digits; a pass is skipped when every key has the same
 * digit), then each run of equal 8-byte keys by the whole key.  ValueError if a key
 * repeats (two chunks cannot both hold one: a bug). */
static int sync_sort_data(SyncLoader *s) {
    Py_ssize_t n = s->ndata;
    SyncKey *tmp = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(SyncKey));
    size_t *count = PyMem_Malloc(65536 * sizeof(size_t)), common = 0;
    s->data = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(SyncKey));
    if (!tmp || !count || !s->data) {
        PyMem_Free(tmp);
        PyMem_Free(count);
        PyErr_NoMemory();
        return -1;
    }
    const uint8_t *k0 = NULL, *k, *v;
    size_t kl, vl;
    int64_t off = 0;
    for (Py_ssize_t i = 0; i < n; i++, off += 8 + (int64_t)(kl + vl)) {
        sync_entry(s, off, &k, &kl, &v, &vl);
        s->data[i].off = off;
        if (i == 0) {
            k0 = k;
            common = kl;
        }
        size_t same = 0;
        while (same < common && same < kl && k[same] == k0[same]) same++;
        common = same;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        sync_entry(s, s->data[i].off, &k, &kl, &v, &vl);
        uint64_t key = 0;
        for (size_t b = 0; b < 8; b++) key = (key << 8) | (common + b < kl ? k[common + b] : 0);
        s->data[i].k = key;
    }
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof(size_t));
        for (Py_ssize_t i = 0; i < n; i++) count[(s->data[i].k >> shift) & 0xFFFF]++;
        if (n == 0 || count[(s->data[0].k >> shift) & 0xFFFF] == (size_t)n) continue;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (Py_ssize_t i = 0; i < n; i++) tmp[count[(s->data[i].k >> shift) & 0xFFFF]++] = s->data[i];
        memcpy(s->data, tmp, (size_t)n * sizeof(SyncKey));
    }
    PyMem_Free(tmp);
    PyMem_Free(count);
    sync_cmp_of = s;
    for (Py_ssize_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && s->data[j].k == s->data[i].k;) j++;
        if (j - i > 1) qsort(s->data + i, (size_t)(j - i), sizeof(SyncKey), sync_cmp_data);
        for (Py_ssize_t m = i + 1; m < j; m++) {
            if (sync_cmp_data(&s->data[m - 1], &s->data[m]) == 0) {
                PyErr_SetString(PyExc_ValueError, "a key is in two chunks");
                return -1;
            }
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
    size_t amark = s->nod.len;
    if (memcmp(lv[0][0].hash, s->root, 32) != 0) {
        PyErr_SetString(PyExc_ValueError, "the chunks do not join to the target root");
    } else if (sync_emit(s, lv, 0, 0, &cap) == 0 && sync_sort_data(s) == 0) {
        out = PyBytes_FromStringAndSize((const char *)s->root, 32);
    }
    PyMem_Free(all);
    if (out) {
        s->finished = 1;
    } else { /* as before the call */
        s->nod.len = amark;
        PyMem_Free(s->order);
        PyMem_Free(s->data);
        s->order = NULL;
        s->data = NULL;
        s->norder = 0;
    }
    return out;
}

/* drop_spill(): free the entries the last spill() handed out (which 3 is then empty).
 * spill() -> n: hand out the entries kept since the last spill(), sorted by key (which 3,
 * until the next spill() or drop_spill(); see _smtfast_sync.h), and start a fresh entry
 * arena.  The entries the last spill() handed out are freed first. */
static PyObject *sync_drop_spill(SyncLoader *s, PyObject *unused) {
    PyMem_Free(s->spd.buf);
    PyMem_Free(s->spkeys);
    s->spd = (SyncBuf){0};
    s->spkeys = NULL;
    s->nspill = 0;
    s->spgen++;
    Py_RETURN_NONE;
}

static PyObject *sync_spill(SyncLoader *s, PyObject *unused) {
    if (s->finished) return PyErr_Format(PyExc_ValueError, "SyncLoader already finished");
    Py_DECREF(sync_drop_spill(s, NULL));
    if (sync_sort_data(s) < 0) { /* as before the call, less the last spill's entries */
        PyMem_Free(s->data);
        s->data = NULL;
        return NULL;
    }
    s->spd = s->dat;
    s->spkeys = s->data;
    s->nspill = s->ndata;
    s->dat = (SyncBuf){0};
    s->data = NULL;
    s->ndata = 0;
    return PyLong_FromSsize_t(s->nspill);
}
