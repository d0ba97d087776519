/* LMDB bulk calls without py-lmdb's per-record toll (included by _smtfast_api.h).
 *
 * py-lmdb's Cursor.putmulti / getmulti drop and retake the GIL and bump two atomics
 * around EVERY record (ENV_UNLOCKED in its cpython.c), and build or unpack Python
 * objects per record: 4-5x what LMDB's own mdb_cursor_put(MDB_APPEND) costs on this
 * box.  These functions make the same LMDB calls, through the same engine (py-lmdb's
 * own function table, so one LMDB copy, one lock), for a whole batch under one hold of
 * the GIL, reading records straight from a SyncLoader's arena where they come from one.
 *
 * py-lmdb has no C API, so this reads its Cursor and Transaction objects through a
 * mirror of their layout in lmdb 3.0.0 (lmdb/cpython.c, built without HAVE_MEMSINK,
 * on 64-bit).  lmdb_bind() checks the mirror before anything is read through it: the
 * exact package version, both types' tp_basicsize equal to the mirror's, and the
 * engine table a bound cursor points at naming LMDB 0.9 or 1.0.  Any mismatch leaves
 * the bridge unbound and every call answers None: the caller then uses py-lmdb's own
 * method (zapdb/lmdbfast.py), which tests hold equal to this.
 *
 * While the GIL is held nothing else runs Python, so no py-lmdb call can close or
 * remap under us; every BRIDGE_YIELD records the GIL is let go between two LMDB calls
 * (never inside one, as py-lmdb itself does per record) and the cursor re-checked. */

/* --- the mirror of lmdb 3.0.0's objects (only what is read or written) ------------- */
typedef struct {
    size_t mv_size;
    void *mv_data;
} ZlVal;

struct ZlObj; /* py-lmdb's struct lmdb_object */
typedef struct {
    struct ZlObj *prev, *next;
} ZlList;

#define ZL_HEAD   \
    PyObject_HEAD \
    ZlList siblings; \
    ZlList children; \
    int valid;

typedef int (*ZlCursorGet)(void *cursor, ZlVal *key, ZlVal *data, int op);
typedef int (*ZlCursorPut)(void *cursor, ZlVal *key, ZlVal *data, unsigned int flags);

typedef struct { /* py-lmdb's MdbApi: 4 ints, then 42 function pointers in this order */
    int major, minor, patch;
    unsigned int data_version;
    void *env_txn_dbi[34]; /* env_create .. reader_list, txn_begin .. txn_id, dbi_open .. stat */
    void *cursor_open, *cursor_close;
    ZlCursorGet cursor_get;
    ZlCursorPut cursor_put;
    void *cursor_del, *cursor_count;
    char *(*strerror_fn)(int err);
    char *(*version_fn)(int *major, int *minor, int *patch);
} ZlApi;

typedef struct {
    ZL_HEAD
    PyObject *weaklist;
    void *env, *parent;
    const ZlApi *libv;
    void *txn; /* MDB_txn * */
    int flags;
    void *db;
    int mutations;
} ZlTrans;

typedef struct {
    ZL_HEAD
    ZlTrans *trans;
    const ZlApi *libv;
    int positioned;
    void *curs; /* MDB_cursor * */
    ZlVal key, val;
    int last_mutation;
    unsigned int dbi_flags, dbi;
} ZlCursor;

enum { ZL_GET_CURRENT = 4, ZL_NEXT = 8, ZL_SET = 15, ZL_APPEND = 0x20000, ZL_KEYEXIST = -30799, ZL_NOTFOUND = -30798 };
enum { BRIDGE_YIELD = 16384 };

static PyTypeObject *zl_cursor_type, *zl_txn_type; /* set by lmdb_bind() when it checks */

/* lmdb_bind(Cursor, Transaction, version) -> bool */
static PyObject *py_lmdb_bind(PyObject *self, PyObject *args) {
    PyObject *cur, *txn;
    const char *version;
    if (!PyArg_ParseTuple(args, "O!O!s", &PyType_Type, &cur, &PyType_Type, &txn, &version))
        return NULL;
    PyTypeObject *ct = (PyTypeObject *)cur, *tt = (PyTypeObject *)txn;
    int ok = sizeof(void *) == 8 && strcmp(version, "3.0.0") == 0 &&
             ct->tp_basicsize == (Py_ssize_t)sizeof(ZlCursor) &&
             tt->tp_basicsize == (Py_ssize_t)sizeof(ZlTrans) &&
             strcmp(ct->tp_name, "Cursor") == 0 && strcmp(tt->tp_name, "Transaction") == 0;
    zl_cursor_type = ok ? ct : NULL;
    zl_txn_type = ok ? tt : NULL;
    return PyBool_FromLong(ok);
}

/* The live cursor behind `obj`, or NULL (not bound, not a Cursor, closed or dead). */
static ZlCursor *zl_cursor(PyObject *obj) {
    if (!zl_cursor_type || Py_TYPE(obj) != zl_cursor_type) return NULL;
    ZlCursor *c = (ZlCursor *)obj;
    if (!c->valid || !c->curs || !c->trans || Py_TYPE(c->trans) != zl_txn_type ||
        !c->trans->valid || !c->trans->txn || c->libv != c->trans->libv || !c->libv)
        return NULL;
    const ZlApi *v = c->libv;
    if (!((v->major == 0 && v->minor == 9 && v->data_version == 1) ||
          (v->major == 1 && v->minor == 0 && v->data_version == 3)))
        return NULL;
    return c;
}

/* py-lmdb's view of a cursor we moved: unpositioned, and every cursor of its txn told
 * the records changed (they refresh their cached key/value, as after its own put). */
static void zl_done(ZlCursor *c, Py_ssize_t wrote) {
    c->positioned = 0;
    c->key.mv_size = c->val.mv_size = 0;
    c->trans->mutations += (int)wrote;
}

/* Lets other threads run between two LMDB calls; the cursor again, or NULL (gone). */
static ZlCursor *zl_yield(PyObject *obj) {
    Py_BEGIN_ALLOW_THREADS Py_END_ALLOW_THREADS return zl_cursor(obj);
}

static int zl_buf(PyObject *o, ZlVal *v, Py_buffer *view) {
    if (PyBytes_CheckExact(o)) {
        v->mv_data = PyBytes_AS_STRING(o);
        v->mv_size = (size_t)PyBytes_GET_SIZE(o);
        view->obj = NULL;
        return 0;
    }
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0) return -1;
    v->mv_data = view->buf;
    v->mv_size = (size_t)view->len;
    return 0;
}

/* lmdb_putmulti(cursor, items, append) -> (consumed, added, rc, message) or None.
 * As Cursor.putmulti(items, append=append) (dupdata and overwrite on): items are
 * (key, value) pairs; a SyncLoader window() or records() iterator is read from its
 * arena.  rc is LMDB's error that stopped it (0: none), message its text. */
static PyObject *py_lmdb_putmulti(PyObject *self, PyObject *args) {
    PyObject *cobj, *items;
    int append;
    if (!PyArg_ParseTuple(args, "OOp", &cobj, &items, &append)) return NULL;
    ZlCursor *c = zl_cursor(cobj);
    if (!c) Py_RETURN_NONE;
    unsigned int flags = append ? ZL_APPEND : 0;
    Py_ssize_t consumed = 0, added = 0;
    int rc = 0;
    if (Py_TYPE(items) == &SyncIter_Type) {
        SyncIter *it = (SyncIter *)items;
        SyncLoader *s = it->s;
        if (it->which == 2 && it->gen != s->gen)
            return PyErr_Format(PyExc_RuntimeError, "settled records read after the next settle()");
        for (; it->pos < sync_nrec(s, it->which); it->pos++) {
            const uint8_t *k, *v;
            size_t kl, vl;
#if defined(__GNUC__)
            if (it->which == 0 && it->pos + 8 < s->ndata) { /* as syncit_next: random order */
                const uint8_t *ahead = s->dat.buf + s->data[it->pos + 8].off;
                __builtin_prefetch(ahead);
                __builtin_prefetch(ahead + 64);
            }
#endif
            sync_rec(s, it->which, it->pos, &k, &kl, &v, &vl);
            ZlVal mk = {kl, (void *)k}, mv = {vl, (void *)v};
            rc = c->libv->cursor_put(c->curs, &mk, &mv, flags);
            if (rc != 0 && rc != ZL_KEYEXIST) break;
            added += rc == 0;
            rc = 0;
            if (++consumed % BRIDGE_YIELD == 0 && !(c = zl_yield(cobj)))
                return PyErr_Format(PyExc_RuntimeError, "the cursor closed mid-putmulti");
        }
    } else {
        PyObject *iter = PyObject_GetIter(items), *item;
        if (!iter) return NULL;
        while ((item = PyIter_Next(iter))) {
            if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
                Py_DECREF(item);
                Py_DECREF(iter);
                return PyErr_Format(PyExc_TypeError, "putmulti() elements must be 2-tuples");
            }
            ZlVal mk, mv;
            Py_buffer kb, vb;
            if (zl_buf(PyTuple_GET_ITEM(item, 0), &mk, &kb) < 0) {
                Py_DECREF(item);
                Py_DECREF(iter);
                return NULL;
            }
            if (zl_buf(PyTuple_GET_ITEM(item, 1), &mv, &vb) < 0) {
                if (kb.obj) PyBuffer_Release(&kb);
                Py_DECREF(item);
                Py_DECREF(iter);
                return NULL;
            }
            rc = c->libv->cursor_put(c->curs, &mk, &mv, flags);
            if (kb.obj) PyBuffer_Release(&kb);
            if (vb.obj) PyBuffer_Release(&vb);
            Py_DECREF(item);
            if (rc != 0 && rc != ZL_KEYEXIST) break;
            added += rc == 0;
            rc = 0;
            if (++consumed % BRIDGE_YIELD == 0 && !(c = zl_yield(cobj))) {
                Py_DECREF(iter);
                return PyErr_Format(PyExc_RuntimeError, "the cursor closed mid-putmulti");
            }
        }
        Py_DECREF(iter);
        if (PyErr_Occurred()) return NULL;
    }
    zl_done(c, consumed + (rc != 0));
    const char *msg = rc ? c->libv->strerror_fn(rc) : "";
    return Py_BuildValue("(nnis)", consumed, added, rc, msg);
}

/* lmdb_getmulti(cursor, keys) -> ([(key, value)], rc, message, value bytes) or None.
 * As Cursor.getmulti(keys): the pairs of the keys found, in the order given; each key
 * is the object given when it is exact bytes (equal to the stored one).  rc is an LMDB
 * error other than "not found" that stopped it (0: none); value bytes, the sum of the
 * values' lengths. */
static PyObject *py_lmdb_getmulti(PyObject *self, PyObject *args) {
    PyObject *cobj, *keys;
    if (!PyArg_ParseTuple(args, "OO", &cobj, &keys)) return NULL;
    ZlCursor *c = zl_cursor(cobj);
    if (!c) Py_RETURN_NONE;
    PyObject *seq = PySequence_Fast(keys, "getmulti() keys must be a sequence");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(0);
    Py_ssize_t total = 0;
    int rc = 0;
    for (Py_ssize_t i = 0; out && i < n; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(seq, i);
        ZlVal mk, mv = {0, NULL};
        Py_buffer kb;
        if (zl_buf(key, &mk, &kb) < 0) {
            Py_CLEAR(out);
            break;
        }
        rc = c->libv->cursor_get(c->curs, &mk, &mv, ZL_SET);
        PyObject *k = NULL;
        if (rc == 0)
            k = kb.obj ? PyBytes_FromStringAndSize(mk.mv_data, (Py_ssize_t)mk.mv_size)
                       : Py_NewRef(key);
        if (kb.obj) PyBuffer_Release(&kb);
        if (rc == ZL_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0) break;
        total += (Py_ssize_t)mv.mv_size;
        PyObject *pair = k ? steal_pair(k, PyBytes_FromStringAndSize(mv.mv_data,
                                                                     (Py_ssize_t)mv.mv_size))
                           : NULL;
        if (!pair || PyList_Append(out, pair) < 0) Py_CLEAR(out);
        Py_XDECREF(pair);
        if (out && (i + 1) % BRIDGE_YIELD == 0 && !(c = zl_yield(cobj))) {
            Py_CLEAR(out);
            PyErr_SetString(PyExc_RuntimeError, "the cursor closed mid-getmulti");
        }
    }
    Py_DECREF(seq);
    if (!out) return NULL;
    zl_done(c, 0);
    PyObject *ret =
        Py_BuildValue("(Oisn)", out, rc, rc ? c->libv->strerror_fn(rc) : "", total);
    Py_DECREF(out);
    return ret;
}
