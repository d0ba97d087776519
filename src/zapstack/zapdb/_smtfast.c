/* zapstack.zapdb._smtfast: the state tree's batch merge and bulk build in C.
 *
 * The same tree as zapstack/zapdb/smt.py (docs/formats/state-root.md): one call
 * applies a whole batch of (key, value-or-None) changes to the subtree at
 * (depth, prefix), reading each touched node record once through `get` and
 * hashing each changed node once, or builds a subtree bottom-up from nothing
 * when `get` is None.  It returns the subtree's new hash, the record for its own
 * position (the caller places it: a lone leaf may move further up) and the
 * node-store writes strictly below it, sorted by node-store key, each position
 * at most once.  smt.py's apply_updates / reference_root are the readable
 * definitions; tests/zapdb/test_native.py holds this module equal to them.
 *
 * Errors: ValueError for malformed input or a corrupt stored record,
 * OverflowError for two key hashes sharing 255 bits (a sha256 collision).
 * Thread-safety: holds the GIL throughout (calls back into Python for `get`). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#include "_sha256.h"
#include "_smtfast_table.h"

enum { K_EMPTY = 0, K_LEAF = 1, K_NODE = 2, K_SOME = 3 }; /* K_SOME: non-empty, kind not read */

typedef struct {
    uint8_t kh[32];
    uint8_t vh[32];
    PyObject *key; /* borrowed; the user key (for a new leaf record) */
    PyObject *rec; /* owned stored leaf record (an old leaf), else NULL */
    Py_ssize_t idx;
    int del;
} Leaf;

typedef struct { /* a subtree's new content; its record is `body` or `rec` by kind */
    int kind;
    uint8_t hash[32];
    uint8_t body[64]; /* K_NODE: left hash || right hash (no bytes object made) */
    PyObject *rec;    /* K_LEAF: owned leaf record, else NULL */
} Content;

typedef struct { /* a stored record as read: no bytes object for an interior one */
    int kind;      /* K_EMPTY, K_LEAF (rec) or K_NODE (h) */
    uint8_t h[64]; /* K_NODE: left hash || right hash */
    PyObject *rec; /* K_LEAF: owned leaf record */
} Rec;

typedef struct {
    uint8_t k[33];    /* the node-store key: masked path || depth (layout v2) */
    uint8_t skip;     /* a slot taken in walk order but left unused: no write */
    uint8_t kind;     /* K_EMPTY: a delete; K_NODE: body; K_LEAF: rec */
    uint8_t body[64];
    PyObject *rec;    /* owned (K_LEAF) */
} Emit;

typedef struct {
    PyObject *get;
    Emit *em;
    size_t n, cap;
    NodeTable *tree;  /* the txn's writes as a table: consulted first, or NULL */
    PyObject *nodes;  /* dict consulted next (the txn's own writes), or NULL */
    NodeTable *upper; /* memo for depths < split, or NULL */
    NodeTable *lower; /* memo for deeper nodes, or NULL */
    int split;
    int root_only; /* `nodes` holds only the root's key: looked in at depth 0 only */
    const Leaf *chain; /* the lone update whose path was last prefetched */
    size_t hint;       /* first capacity of em */
} Ctx;

static inline int bit_at(const uint8_t *p, int i) { return (p[i >> 3] >> (7 - (i & 7))) & 1; }

static uint64_t path_masks[257][4]; /* [depth]: the words of a path's first `depth` bits */

static void init_path_masks(void) {
    for (int depth = 0; depth <= 256; depth++) {
        for (int i = 0; i < 4; i++) {
            int bits = depth - 64 * i;
            uint64_t m = bits <= 0 ? 0 : bits >= 64 ? ~0ULL : ~0ULL << (64 - bits);
#if !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
            m = __builtin_bswap64(m); /* the words are loaded from big-endian bytes */
#endif
            path_masks[depth][i] = m;
        }
    }
}

/* dst = the first `depth` bits of src, zero after: in 64-bit words (whole-word stores, so
 * the key hash that reads the words back right after is not held up). */
static inline void mask_path(const uint8_t *src, int depth, uint8_t *dst) {
    uint64_t w[4];
    memcpy(w, src, 32);
    for (int i = 0; i < 4; i++) w[i] &= path_masks[depth][i];
    memcpy(dst, w, 32);
}

/* Append a write (a delete until filled) for (depth, path); its index, or -1 on error. */
static Py_ssize_t emit_at(Ctx *c, int depth, const uint8_t *path) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : c->hint; /* hint: ~2 writes a key, for a build */
        Emit *em = PyMem_Realloc(c->em, cap * sizeof(Emit));
        if (!em) {
            PyErr_NoMemory();
            return -1;
        }
        c->em = em;
        c->cap = cap;
    }
    Emit *e = &c->em[c->n];
    mask_path(path, depth, e->k);
    e->k[32] = (uint8_t)depth;
    e->skip = 0;
    e->kind = K_EMPTY;
    e->rec = NULL;
    return (Py_ssize_t)c->n++;
}

/* Move a content into a write slot. */
static void emit_take(Emit *e, Content *ch) {
    e->kind = (uint8_t)ch->kind;
    if (ch->kind == K_NODE) memcpy(e->body, ch->body, 64);
    e->rec = ch->rec;
    ch->rec = NULL;
}

/* An interior record (layout v2): 0x01 || left hash || right hash, whose sha256 is the
 * node's hash, like a leaf record's first 65 bytes. */
static PyObject *node_record(const uint8_t left[32], const uint8_t right[32]) {
    PyObject *r = PyBytes_FromStringAndSize(NULL, 65);
    if (!r) return NULL;
    char *p = PyBytes_AS_STRING(r);
    p[0] = 1;
    memcpy(p + 1, left, 32);
    memcpy(p + 33, right, 32);
    return r;
}

/* The stored form of a content (kind, body, rec): a new reference, None if empty. */
static PyObject *record_of(int kind, const uint8_t *body, PyObject *rec) {
    if (kind == K_NODE) return node_record(body, body + 32);
    return Py_NewRef(kind == K_EMPTY ? Py_None : rec);
}

static PyObject *leaf_record(Leaf *lf) {
    if (lf->rec) {
        Py_INCREF(lf->rec);
        return lf->rec;
    }
    Py_ssize_t klen = PyBytes_GET_SIZE(lf->key);
    PyObject *r = PyBytes_FromStringAndSize(NULL, 65 + klen);
    if (!r) return NULL;
    char *p = PyBytes_AS_STRING(r);
    p[0] = 0;
    memcpy(p + 1, lf->kh, 32);
    memcpy(p + 33, lf->vh, 32);
    memcpy(p + 65, PyBytes_AS_STRING(lf->key), klen);
    return r;
}

#include "_smtfast_lmdb.h"
#include "_smtfast_read.h"

static Py_ssize_t split_at(Leaf **a, Py_ssize_t n, int depth) {
    Py_ssize_t lo = 0, hi = n; /* first index whose bit `depth` is 1 (a is sorted) */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (bit_at(a[mid]->kh, depth))
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int collision(void) {
    PyErr_SetString(PyExc_OverflowError, "sha256 key-hash collision in the state tree");
    return -1;
}

/* Bottom-up build of H(a[0..n), depth) over a fresh position (nothing stored below).
 * Writes come out in pre-order (a child's slot is taken before its subtree is built),
 * which is ascending node-store key order: the caller needs no sort. */
static int build(Ctx *c, Leaf **a, Py_ssize_t n, int depth, Content *out) {
    out->rec = NULL;
    if (n == 0) {
        out->kind = K_EMPTY;
        memset(out->hash, 0, 32);
        return 0;
    }
    if (n == 1) {
        out->kind = K_LEAF;
        zsha256_tagged(0, a[0]->kh, a[0]->vh, out->hash);
        out->rec = leaf_record(a[0]);
        return out->rec ? 0 : -1;
    }
    if (depth >= 255) return collision();
    Py_ssize_t m = split_at(a, n, depth);
    Content side[2];
    Leaf **part[2] = {a, a + m};
    Py_ssize_t cnt[2] = {m, n - m};
    for (int s = 0; s < 2; s++) {
        Py_ssize_t slot = -1; /* a non-empty side always has a record */
        if (cnt[s] && (slot = emit_at(c, depth + 1, part[s][0]->kh)) < 0) return -1;
        if (build(c, part[s], cnt[s], depth + 1, &side[s]) < 0) return -1;
        if (slot >= 0) emit_take(&c->em[slot], &side[s]);
    }
    zsha256_tagged(1, side[0].hash, side[1].hash, out->hash);
    out->kind = K_NODE;
    memcpy(out->body, side[0].hash, 32);
    memcpy(out->body + 32, side[1].hash, 32);
    return 0;
}

static int merge(Ctx *c, Leaf **u, Py_ssize_t n, int depth, const uint8_t *path, Rec *old,
                 Content *out);

/* Merge into a position that holds nothing or one leaf (borrowed `old`). */
static int merge_flat(Ctx *c, Leaf **u, Py_ssize_t n, int depth, PyObject *old, Content *out) {
    Leaf oldleaf;
    Leaf **arr = PyMem_Malloc((size_t)(n + 1) * sizeof(Leaf *));
    if (!arr) {
        PyErr_NoMemory();
        return -1;
    }
    const uint8_t *okh = old ? (const uint8_t *)PyBytes_AS_STRING(old) + 1 : NULL;
    int placed = okh == NULL;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!placed) {
            int cmp = memcmp(okh, u[i]->kh, 32);
            if (cmp <= 0) {
                placed = 1;
                if (cmp < 0) {
                    memcpy(oldleaf.kh, okh, 32);
                    memcpy(oldleaf.vh, okh + 32, 32);
                    oldleaf.rec = old;
                    arr[k++] = &oldleaf;
                }
            }
        }
        if (!u[i]->del) arr[k++] = u[i];
    }
    if (!placed) {
        memcpy(oldleaf.kh, okh, 32);
        memcpy(oldleaf.vh, okh + 32, 32);
        oldleaf.rec = old;
        arr[k++] = &oldleaf;
    }
    int rc = build(c, arr, k, depth, out);
    PyMem_Free(arr);
    return rc;
}

/* Place a changed child's content in its slot (or delete what was there, or leave the
 * slot unused). */
static void settle(Ctx *c, Py_ssize_t slot, Content *ch, const Rec *old, int keep) {
    Emit *e = &c->em[slot];
    if (keep && ch->kind != K_EMPTY) {
        emit_take(e, ch);
        e->skip = 0;
        return;
    }
    Py_CLEAR(ch->rec);
    e->skip = old->kind == K_EMPTY;
}

/* Merge into an interior node whose record holds its children's hashes `hashes` (64 bytes):
 * only a side with updates is read; the other keeps its hash, and is read only when the
 * updated side ends up empty (a lone leaf there moves up). */
static int merge_node(Ctx *c, Leaf **u, Py_ssize_t n, int depth, const uint8_t *path,
                      const uint8_t *hashes, Content *out) {
    if (depth >= 255) return collision();
    if (n == 1 && c->chain != u[0]) { /* a lone update from here down: its path is known */
        c->chain = u[0];
        prefetch_path(c->upper, u[0]->kh, depth + 1, c->split);
        prefetch_path(c->lower, u[0]->kh, depth + 1 > c->split ? depth + 1 : c->split,
                      depth + 9 > c->split ? depth + 9 : c->split);
    }
    static const uint8_t empty[32] = {0};
    uint8_t side[2][32];
    memcpy(side[0], path, 32);
    memcpy(side[1], path, 32);
    side[1][depth >> 3] |= (uint8_t)(0x80 >> (depth & 7));
    Py_ssize_t m = split_at(u, n, depth);
    Leaf **part[2] = {u, u + m};
    Py_ssize_t cnt[2] = {m, n - m};
    Rec old[2] = {{K_EMPTY, {0}, NULL}, {K_EMPTY, {0}, NULL}};
    Content ch[2] = {{K_EMPTY, {0}, {0}, NULL}, {K_EMPTY, {0}, {0}, NULL}};
    Py_ssize_t slot[2]; /* taken before each side's subtree: writes come out in key order */
    int rc = -1;
    for (int s = 0; s < 2; s++) {
        if ((slot[s] = emit_at(c, depth + 1, side[s])) < 0) goto done;
        c->em[slot[s]].skip = 1;
        if (cnt[s]) {
            if (fetch(c, depth + 1, side[s], &old[s]) < 0) goto done;
            if (merge(c, part[s], cnt[s], depth + 1, side[s], &old[s], &ch[s]) < 0) goto done;
        } else {
            memcpy(ch[s].hash, hashes + 32 * s, 32);
            ch[s].kind = memcmp(ch[s].hash, empty, 32) ? K_SOME : K_EMPTY;
        }
    }
    for (int s = 0; s < 2; s++) { /* the other side emptied: is this one a lone leaf? */
        if (ch[s].kind == K_SOME && ch[1 - s].kind == K_EMPTY) {
            if (fetch(c, depth + 1, side[s], &old[s]) < 0) goto done;
            content_of(&old[s], &ch[s]);
            if (ch[s].kind == K_EMPTY || memcmp(ch[s].hash, hashes + 32 * s, 32)) {
                PyErr_SetString(PyExc_ValueError, "corrupt state-tree node record");
                goto done;
            }
        }
    }
    int lone = -1; /* a side whose lone leaf moves up here */
    if (ch[0].kind == K_EMPTY && ch[1].kind == K_LEAF) lone = 1;
    if (ch[1].kind == K_EMPTY && ch[0].kind == K_LEAF) lone = 0;
    if (ch[0].kind == K_EMPTY && ch[1].kind == K_EMPTY) {
        out->kind = K_EMPTY;
        memset(out->hash, 0, 32);
        out->rec = NULL;
    } else if (lone >= 0) {
        *out = ch[lone];
        ch[lone].rec = NULL;
    } else {
        out->kind = K_NODE;
        zsha256_tagged(1, ch[0].hash, ch[1].hash, out->hash);
        memcpy(out->body, ch[0].hash, 32);
        memcpy(out->body + 32, ch[1].hash, 32);
    }
    for (int s = 0; s < 2; s++) {
        if (lone >= 0 || out->kind == K_EMPTY)
            settle(c, slot[s], &ch[s], &old[s], 0);
        else if (cnt[s])
            settle(c, slot[s], &ch[s], &old[s], 1);
    }
    rc = 0;
done:
    for (int s = 0; s < 2; s++) {
        Py_XDECREF(old[s].rec);
        Py_XDECREF(ch[s].rec);
    }
    if (rc < 0 && out->rec) Py_CLEAR(out->rec);
    return rc;
}

static int merge(Ctx *c, Leaf **u, Py_ssize_t n, int depth, const uint8_t *path, Rec *old,
                 Content *out) {
    out->rec = NULL;
    if (old->kind == K_NODE) return merge_node(c, u, n, depth, path, old->h, out);
    return merge_flat(c, u, n, depth, old->kind == K_LEAF ? old->rec : NULL, out);
}

static int hash_buffer(PyObject *obj, uint8_t out[32]) {
    if (PyBytes_Check(obj)) {
        zsha256((const uint8_t *)PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj), out);
        return 0;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    zsha256(view.buf, (size_t)view.len, out);
    PyBuffer_Release(&view);
    return 0;
}

#include "_smtfast_api.h"
