/* State sync in C (included by _smtfast_api.h): zapstack.zapdb._smtfast.SyncLoader.
 *
 * SyncLoader(root, depth) takes the 2**depth chunks of one state root (bulk.ChunkLoader
 * drives it; docs/formats/state-root.md §Chunks).  add(index, entries, siblings) checks a
 * chunk that carries all `depth` siblings exactly as proofs.verify_chunk does (keys
 * strictly ascending by sha256 and inside the prefix, the subtree folded up with the
 * siblings equals the root) and, while hashing it, writes its subtree's node records
 * (layout v2: key masked path || depth, interior 0x01||L||R, leaf 0x00||kh||vh||key)
 * into one C arena: each hash is computed once, no Python object per record.  A chunk
 * that fails leaves nothing.  add_top(index, entries, hash, record) takes a chunk the
 * caller checked with verify_chunk (one that stops at a terminal above `depth`).
 * finish() joins the chunks' tops (2**depth - 1 hashes), checks the result against the
 * root (ValueError if not), orders every node record in key order (a pre-order walk)
 * and radix-sorts the entries by key.  The entries are copied into a second arena when
 * their chunk is kept (the caller's objects are not held).  records(which) then yields
 * (key, value) 2-tuples of new bytes in key order (0 = the entries, 1 = the node
 * records); window(which) yields the same as one reused 2-tuple of read-only buffers
 * onto the arenas, for an LMDB putmulti(append=True), which copies each pair before it
 * takes the next (a consumer that keeps one gets RuntimeError, never stale bytes);
 * get(which, key) finds one by bisection.
 * settle() hands out, before finish(), the node records that are already final: those of
 * each chunk whose top is an interior node (they sit at and below the chunk's own
 * position), for the chunks from the first not settled yet up to the first not added
 * yet, in key order (which = 2 of records/window/count/get, until the next settle());
 * finish() then leaves them out.  A caller that writes them as they settle (bulk.py: into
 * the LMDB txn the commit will use) appends them in key order; finish()'s records (the
 * levels above the chunks, the lone leaves, chunks that came after a gap) go in after.
 * The node arena keeps only what is not handed out: once the records handed out take at
 * least half of it (and 64 bytes per chunk, which pays for the scan of the chunk table),
 * the next settle() first moves the rest to its front, so a sync's node records take
 * memory in proportion to the chunks that wait behind a gap, not to the state.
 * spill() -> n hands out, before finish(), the entries kept so far, sorted by key (which =
 * 3 of records/window/count/get, until drop_spill() or the next spill() frees them), and
 * starts a fresh entry arena:
 * a caller that writes them (bulk.py: into the same LMDB txn) holds a sync's entries in
 * memory in proportion to what it lets gather between spills, not to the state; finish()
 * then sorts only the entries kept since the last spill.  Keys of different spills
 * interleave (each spill is sorted, not the spills against each other).
 * arena() -> (node bytes, entry bytes) in use (the entries since the last spill), for
 * tests and diagnostics.
 * The readable reference: proofs.verify_chunk plus txn writes (bulk.ChunkLoader's
 * fallback); tests/zapdb/test_bulk.py and fuzz/fuzz_chunks.py hold the two equal.  Every
 * input is hostile (types and lengths checked before use, with the GIL); only add and
 * add_many's hashing runs without it.  This file: the loader, the chunk check and build,
 * add_top; _smtfast_sync_many.h: add and add_many; _smtfast_sync_join.h: finish();
 * _smtfast_sync_out.h: records/window/count/get and the type objects. */

typedef struct {
    uint8_t hash[32];
    int kind;             /* K_EMPTY, K_LEAF or K_NODE; -1: not added yet */
    int64_t top;          /* arena offset of the top's entry (-1 if empty) */
    int64_t seg_lo, seg_hi; /* arena offsets of the records strictly below the top */
    int settled;          /* its records were handed out by settle(): finish() skips them */
} SyncTop;

typedef struct {
    uint64_t k;  /* big-endian 8 bytes of the key after the keys' common prefix */
    int64_t off; /* the entry's offset in the data arena */
} SyncKey;

typedef struct {
    uint8_t *buf; /* node arena: u32 record length || 33-byte node key || record;
                   * data arena: u32 key length || u32 value length || key || value */
    size_t len, cap;
    int raw; /* allocated with the raw allocator (a worker thread's arena: no GIL) */
} SyncBuf;

/* Make room for `cap` bytes (the `len` in use kept); 0 or -1.  (Transparent huge pages
 * for the arenas were measured slower here: 10-15 ms more per 100k-key sync.) */
static int sync_resize(SyncBuf *b, size_t cap) {
    if (cap <= b->cap) return 0;
    uint8_t *p = b->raw ? PyMem_RawRealloc(b->buf, cap) : PyMem_Realloc(b->buf, cap);
    if (!p) {
        if (!b->raw) PyErr_NoMemory(); /* a worker reports it when it holds the GIL again */
        return -1;
    }
    b->buf = p;
    b->cap = cap;
    return 0;
}

typedef struct {
    PyObject_HEAD
    uint8_t root[32];
    int depth, finished;
    SyncTop *tops;
    SyncBuf nod;    /* the node records */
    SyncBuf dat;    /* the entries of the chunks kept */
    Py_ssize_t ndata;
    int64_t *order; /* arena offsets of the node records in key order (after finish) */
    Py_ssize_t norder;
    SyncKey *data;  /* the entries in key order (after finish) */
    SyncBuf spd;    /* the entries the last spill() handed out (which 3) */
    SyncKey *spkeys; /* ... in key order */
    Py_ssize_t nspill;
    uint64_t spgen; /* spill() calls so far: a window of an older one refuses to go on */
    Py_ssize_t next_settle; /* the first chunk settle() has not passed yet */
    int64_t *pend;  /* arena offsets of the records the last settle() handed out */
    Py_ssize_t npend, cappend;
    uint8_t last_key[33]; /* the key of the last record settle() ever handed out */
    int handed;     /* whether settle() has handed out any record yet */
    int64_t dead;   /* node arena bytes of records handed out (reclaimed by compaction) */
    uint64_t gen;   /* settle() calls so far: a window of an older one refuses to go on */
} SyncLoader;

static void sync_dealloc(SyncLoader *s) {
    PyMem_Free(s->tops);
    PyMem_Free(s->nod.buf);
    PyMem_Free(s->dat.buf);
    PyMem_Free(s->order);
    PyMem_Free(s->data);
    PyMem_Free(s->spd.buf);
    PyMem_Free(s->spkeys);
    PyMem_Free(s->pend);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static int sync_grow(SyncBuf *b, size_t need) {
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < need) cap *= 2;
    return sync_resize(b, cap);
}

/* Append arena offset `at` to the growable array *arr (*n used, *cap allocated): 0, or -1
 * with MemoryError (nothing appended). */
static int sync_off_append(int64_t **arr, Py_ssize_t *n, Py_ssize_t *cap, int64_t at) {
    if (*n == *cap) {
        Py_ssize_t c = *cap ? *cap * 2 : 1024;
        int64_t *o = PyMem_Realloc(*arr, (size_t)c * sizeof(int64_t));
        if (!o) {
            PyErr_NoMemory();
            return -1;
        }
        *arr = o;
        *cap = c;
    }
    (*arr)[(*n)++] = at;
    return 0;
}

/* A first guess at an arena's size from the first chunk's share (capped: a guess only). */
static size_t sync_guess(size_t first, int depth) {
    size_t cap = (size_t)1 << 32;
    return first >= cap >> depth ? cap : (first + first / 4) << depth;
}

/* A chunk entry's key and value (borrowed), or -1 with TypeError unless it is exactly a
 * (bytes, bytes) tuple. */
static int entry_pair(PyObject *e, PyObject **k, PyObject **v) {
    if (!PyTuple_CheckExact(e) || PyTuple_GET_SIZE(e) != 2 ||
        !PyBytes_CheckExact(*k = PyTuple_GET_ITEM(e, 0)) ||
        !PyBytes_CheckExact(*v = PyTuple_GET_ITEM(e, 1))) {
        PyErr_SetString(PyExc_TypeError, "chunk entries must be (bytes, bytes) tuples");
        return -1;
    }
    return 0;
}

/* Copy a kept chunk's (bytes, bytes) entries into the data arena (TypeError if they are
 * not exactly that: add() checked them already, add_top() did not). */
static int sync_keep(SyncLoader *s, PyObject *entries) {
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k, *v;
        if (entry_pair(PyTuple_GET_ITEM(entries, i), &k, &v) < 0) return -1;
        size_t kl = (size_t)PyBytes_GET_SIZE(k), vl = (size_t)PyBytes_GET_SIZE(v);
        if (vl > 0xFFFFFFFFu) {
            PyErr_SetString(PyExc_ValueError, "a value longer than 4 GiB");
            return -1;
        }
        if (sync_grow(&s->dat, s->dat.len + 8 + kl + vl) < 0) return -1;
        uint8_t *p = s->dat.buf + s->dat.len;
        uint32_t kl32 = (uint32_t)kl, vl32 = (uint32_t)vl;
        memcpy(p, &kl32, 4);
        memcpy(p + 4, &vl32, 4);
        memcpy(p + 8, PyBytes_AS_STRING(k), kl);
        memcpy(p + 8 + kl, PyBytes_AS_STRING(v), vl);
        s->dat.len += 8 + kl + vl;
    }
    s->ndata += n;
    return 0;
}

static PyObject *sync_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Py_buffer root;
    int depth;
    if (!PyArg_ParseTuple(args, "y*i", &root, &depth)) return NULL;
    int ok = root.len == 32 && depth >= 0 && depth <= 24;
    uint8_t r[32];
    if (ok) memcpy(r, root.buf, 32);
    PyBuffer_Release(&root);
    if (!ok) return PyErr_Format(PyExc_ValueError, "SyncLoader needs a 32-byte root, depth 0..24");
    SyncLoader *s = (SyncLoader *)type->tp_alloc(type, 0);
    if (!s) return NULL;
    memcpy(s->root, r, 32);
    s->depth = depth;
    s->tops = PyMem_Calloc((size_t)1 << depth, sizeof(SyncTop));
    if (!s->tops) {
        Py_DECREF(s);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < ((size_t)1 << depth); i++) s->tops[i].kind = -1;
    return (PyObject *)s;
}

/* Append an entry for (depth, path) with `reclen` record bytes (filled by the caller). */
static int64_t sync_slot_in(SyncBuf *nod, int depth, const uint8_t *path, size_t reclen) {
    size_t need = nod->len + 4 + 33 + reclen;
    if (sync_grow(nod, need) < 0) return -1;
    uint8_t *p = nod->buf + nod->len;
    uint32_t n = (uint32_t)reclen;
    memcpy(p, &n, 4);
    mask_path(path, depth, p + 4);
    p[36] = (uint8_t)depth;
    int64_t at = (int64_t)nod->len;
    nod->len = need;
    return at;
}

static int64_t sync_slot(SyncLoader *s, int depth, const uint8_t *path, size_t reclen) {
    return sync_slot_in(&s->nod, depth, path, reclen);
}

static inline size_t sync_reclen(Leaf **a, Py_ssize_t n) {
    return n == 1 ? 65 + (size_t)PyBytes_GET_SIZE(a[0]->key) : 65;
}

/* Bottom-up build of a[0..n) (n >= 1) at `depth` into the entry at `slot` (reserved with
 * sync_reclen); the children's entries follow it in pre-order (ascending key order).
 * Touches no Python state (the keys' bytes are read only): 0, -1 (the arena could not
 * grow; a GIL-held arena set MemoryError) or -2 (a key-hash collision, no error set). */
static int sync_build_in(SyncBuf *nod, Leaf **a, Py_ssize_t n, int depth, int64_t slot,
                         uint8_t hash[32]) {
    if (n == 1) {
        uint8_t *rec = nod->buf + slot + 37;
        rec[0] = 0;
        memcpy(rec + 1, a[0]->kh, 32);
        memcpy(rec + 33, a[0]->vh, 32);
        memcpy(rec + 65, PyBytes_AS_STRING(a[0]->key), (size_t)PyBytes_GET_SIZE(a[0]->key));
        zsha256_tagged(0, a[0]->kh, a[0]->vh, hash);
        return 0;
    }
    if (depth >= 255) return -2;
    Py_ssize_t m = split_at(a, n, depth);
    Leaf **part[2] = {a, a + m};
    Py_ssize_t cnt[2] = {m, n - m};
    uint8_t h[2][32];
    for (int side = 0; side < 2; side++) {
        memset(h[side], 0, 32);
        if (!cnt[side]) continue;
        int64_t at = sync_slot_in(nod, depth + 1, part[side][0]->kh, sync_reclen(part[side], cnt[side]));
        if (at < 0) return -1;
        int rc = sync_build_in(nod, part[side], cnt[side], depth + 1, at, h[side]);
        if (rc < 0) return rc;
    }
    uint8_t *rec = nod->buf + slot + 37; /* after the children: the arena may have moved */
    rec[0] = 1;
    memcpy(rec + 1, h[0], 32);
    memcpy(rec + 33, h[1], 32);
    zsha256_tagged(1, h[0], h[1], hash);
    return 0;
}

static int sync_index(SyncLoader *s, PyObject *obj, Py_ssize_t *index) {
    *index = PyLong_AsSsize_t(obj);
    if (*index == -1 && PyErr_Occurred()) return -1;
    if (s->finished || *index < 0 || *index >= ((Py_ssize_t)1 << s->depth) ||
        s->tops[*index].kind >= 0) {
        PyErr_SetString(PyExc_ValueError, "chunk index out of range, repeated, or loader finished");
        return -1;
    }
    return 0;
}

/* 0, or -1 with TypeError unless every entry is exactly a (bytes, bytes) tuple. */
static int sync_check_entries(PyObject *entries) {
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k, *v;
        if (entry_pair(PyTuple_GET_ITEM(entries, i), &k, &v) < 0) return -1;
    }
    return 0;
}

/* Hash and check one chunk's entries (checked by sync_check_entries) into leaves[]:
 * 1 = rejected (unsorted, outside the prefix, empty key), 0 = fine.  Reads the entries'
 * bytes only: it runs without the GIL in add_many's workers. */
static int sync_hash_leaves(PyObject *entries, Leaf *leaves, Leaf **order, int depth,
                            const uint8_t *prefix) {
    Py_ssize_t n = PyTuple_GET_SIZE(entries);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyTuple_GET_ITEM(entries, i);
        PyObject *k = PyTuple_GET_ITEM(e, 0), *v = PyTuple_GET_ITEM(e, 1);
        if (PyBytes_GET_SIZE(k) < 1) return 1;
        Leaf *lf = &leaves[i];
        lf->key = k;
        lf->rec = NULL;
        lf->idx = i;
        lf->del = 0;
        zsha256((const uint8_t *)PyBytes_AS_STRING(k), (size_t)PyBytes_GET_SIZE(k), lf->kh);
        zsha256((const uint8_t *)PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v), lf->vh);
        uint8_t masked[32];
        mask_path(lf->kh, depth, masked);
        if (memcmp(masked, prefix, 32) != 0) return 1;
        if (i > 0 && memcmp(order[i - 1]->kh, lf->kh, 32) >= 0) return 1;
        order[i] = lf;
    }
    return 0;
}

/* The path prefix (depth bits) of chunk `index`. */
static void chunk_prefix(Py_ssize_t index, int depth, uint8_t prefix[32]) {
    memset(prefix, 0, 32);
    for (int i = 0; i < depth; i++)
        if ((index >> (depth - 1 - i)) & 1) prefix[i >> 3] |= (uint8_t)(0x80 >> (i & 7));
}

/* h := the root that `own` (the chunk's subtree hash) folds up to with its siblings. */
static void sync_fold(PyObject *sibs, const uint8_t *prefix, int depth, const uint8_t own[32],
                      uint8_t h[32]) {
    memcpy(h, own, 32);
    for (int d = depth; d > 0; d--) {
        const uint8_t *sb = (const uint8_t *)PyBytes_AS_STRING(PyTuple_GET_ITEM(sibs, d - 1));
        uint8_t cur[32];
        memcpy(cur, h, 32);
        if (bit_at(prefix, d - 1))
            zsha256_tagged(1, sb, cur, h);
        else
            zsha256_tagged(1, cur, sb, h);
    }
}

/* add_top(index, entries, hash, record | None): a chunk the caller verified whose walk
 * stopped above `depth`: its position holds `hash` (record: a leaf's, or None if empty). */
static PyObject *sync_add_top(SyncLoader *s, PyObject *args) {
    PyObject *idx, *entries, *rec;
    Py_buffer hash;
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "OO!y*O", &idx, &PyTuple_Type, &entries, &hash, &rec)) return NULL;
    int bad = hash.len != 32 || (rec != Py_None && (!PyBytes_Check(rec) || PyBytes_GET_SIZE(rec) < 66 ||
                                                   PyBytes_AS_STRING(rec)[0] != 0));
    uint8_t h[32];
    if (!bad) memcpy(h, hash.buf, 32);
    PyBuffer_Release(&hash);
    if (bad) return PyErr_Format(PyExc_ValueError, "add_top needs a 32-byte hash, a leaf record or None");
    if (sync_index(s, idx, &index) < 0) return NULL;
    SyncTop *t = &s->tops[index];
    size_t dmark = s->dat.len;
    Py_ssize_t nmark = s->ndata;
    if (sync_keep(s, entries) < 0) {
        s->dat.len = dmark;
        s->ndata = nmark;
        return NULL;
    }
    t->top = -1;
    if (rec != Py_None) {
        uint8_t prefix[32];
        chunk_prefix(index, s->depth, prefix);
        size_t len = (size_t)PyBytes_GET_SIZE(rec);
        if ((t->top = sync_slot(s, s->depth, prefix, len)) < 0) {
            s->dat.len = dmark;
            s->ndata = nmark;
            return NULL;
        }
        memcpy(s->nod.buf + t->top + 37, PyBytes_AS_STRING(rec), len);
    }
    memcpy(t->hash, h, 32);
    t->kind = rec == Py_None ? K_EMPTY : K_LEAF;
    t->seg_lo = t->seg_hi = (int64_t)s->nod.len;
    Py_RETURN_NONE;
}

#include "_smtfast_sync_many.h"
#include "_smtfast_sync_join.h"
#include "_smtfast_sync_out.h"
