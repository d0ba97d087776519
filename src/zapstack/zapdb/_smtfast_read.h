/* The merge's reads, for zapstack.zapdb._smtfast (included by _smtfast.c after its types).
 *
 * fetch() resolves a node key through the layers a merge was given: the txn's own writes
 * (a NodeTable, then a dict of records a bulk path installed), then the memo table for
 * the key's depth, probed with the key on the stack, and only on a miss the Python-callable
 * LMDB read (read in place when it is a bridged getter: _smtfast_lmdb.h), whose answer is
 * memoised.  An interior record is read as its 64 inline bytes
 * (Rec), never as a bytes object.  prefetch_path() starts loading a lone update's memo
 * entries before the walk reaches them.  All hold the GIL; no pointer into a table is kept
 * across a call that may run Python (the table may grow). */

/* A lone update's path below `from` is known before any of it is read: start loading its
 * memo entries at depths [from, to) all at once (index words, then the entries they name),
 * so the walk down meets them in cache instead of taking one miss after another. */
static void prefetch_path(const NodeTable *t, const uint8_t *kh, int from, int to) {
    enum { MAXL = 48 };
    uint64_t hs[MAXL];
    uint8_t k[33];
    if (t == NULL || t->idx == NULL || t->indexed < t->n || from >= to) return;
    if (to > 256) to = 256;
    if (to - from > MAXL) to = from + MAXL;
    for (int d = from; d < to; d++) {
        mask_path(kh, d, k);
        k[32] = (uint8_t)d;
        hs[d - from] = nt_hash(k);
        __builtin_prefetch(&t->idx[(size_t)hs[d - from] & t->mask]);
    }
    for (int d = from; d < to; d++) {
        uint64_t h = hs[d - from], w = t->idx[(size_t)h & t->mask];
        if (w && (uint32_t)(w >> 32) == (uint32_t)(h >> 32)) {
            const char *e = (const char *)&t->ent[(uint32_t)w - 1];
            __builtin_prefetch(e);
            __builtin_prefetch(e + sizeof(NTEntry) - 1);
        }
    }
}

/* A stored record (borrowed bytes or None) as a Rec; -1 if it is corrupt. */
static int rec_of(PyObject *r, Rec *out) {
    out->rec = NULL;
    out->kind = K_EMPTY;
    if (r == Py_None) return 0;
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(r);
    Py_ssize_t len = PyBytes_GET_SIZE(r);
    if (len == 65 && p[0] == 1) {
        out->kind = K_NODE;
        memcpy(out->h, p + 1, 64);
    } else if (len >= 66 && p[0] == 0) {
        out->kind = K_LEAF;
        out->rec = Py_NewRef(r);
    } else {
        PyErr_SetString(PyExc_ValueError, "corrupt state-tree node record");
        return -1;
    }
    return 0;
}

static void rec_of_entry(const NTEntry *e, Rec *out) {
    out->rec = NULL;
    out->kind = e->kind == NT_NODE ? K_NODE : e->kind == NT_LEAF ? K_LEAF : K_EMPTY;
    if (e->kind == NT_NODE) memcpy(out->h, e->u.h, 64);
    if (e->kind == NT_LEAF) out->rec = Py_NewRef(e->u.rec);
}

/* Content of a stored record (an interior one gets no record object: its slot keeps it). */
static void content_of(const Rec *old, Content *out) {
    out->kind = old->kind;
    out->rec = NULL;
    if (old->kind == K_EMPTY) {
        memset(out->hash, 0, 32);
    } else if (old->kind == K_NODE) {
        zsha256_tagged(1, old->h, old->h + 32, out->hash);
        memcpy(out->body, old->h, 64);
    } else {
        const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(old->rec);
        zsha256_tagged(0, p + 1, p + 33, out->hash);
        out->rec = Py_NewRef(old->rec);
    }
}

/* The record at (depth, path): the txn's writes (dict `nodes`), then the memo table for
 * that depth (probed with the key on the stack), then c->get, whose answer is memoised.
 * Fills *out (K_EMPTY for an empty subtree); returns -1 on error. */
static int fetch(Ctx *c, int depth, const uint8_t *path, Rec *out) {
    out->kind = K_EMPTY;
    out->rec = NULL;
    if (c->get == NULL) return 0;
    uint8_t k[33];
    mask_path(path, depth, k);
    k[32] = (uint8_t)depth;
    PyObject *key = NULL, *r;
    uint64_t h = nt_hash(k);
    NTEntry *e = c->tree ? nt_find(c->tree, k, h) : NULL;
    if (e) {
        rec_of_entry(e, out);
        return 0;
    }
    if (c->nodes && !(depth && c->root_only)) {
        if (!(key = PyBytes_FromStringAndSize((const char *)k, 33))) return -1;
        r = PyDict_GetItemWithError(c->nodes, key); /* borrowed; None = empty subtree */
        if (r || PyErr_Occurred()) {
            Py_DECREF(key);
            return r ? rec_of(r, out) : -1;
        }
    }
    NodeTable *memo = depth < c->split ? c->upper : c->lower;
    e = memo ? nt_find(memo, k, h) : NULL;
    if (e) {
        Py_XDECREF(key);
        rec_of_entry(e, out);
        return 0;
    }
    int nogil = 0;
    ZlCursor *zc = zl_getter_cursor(c->get, &nogil); /* read in place: no call, no key object */
    if (zc) {
        Py_XDECREF(key);
        r = zl_record(zc, k, 33, nogil);
        zl_done(zc, 0);
    } else {
        if (!key && !(key = PyBytes_FromStringAndSize((const char *)k, 33))) return -1;
        r = PyObject_CallOneArg(c->get, key);
        Py_DECREF(key);
    }
    if (!r) return -1;
    if (r != Py_None && !PyBytes_Check(r)) {
        Py_buffer view;
        if (PyObject_GetBuffer(r, &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(r);
            return -1;
        }
        PyObject *b = PyBytes_FromStringAndSize(view.buf, view.len);
        PyBuffer_Release(&view);
        Py_DECREF(r);
        if (!b) return -1;
        r = b;
    }
    int rc = rec_of(r, out);
    if (rc == 0 && memo) rc = nt_set_record(memo, k, h, r);
    Py_DECREF(r);
    return rc;
}
