/* LMDB bulk calls without py-lmdb's per-record toll (included by _smtfast.c before the
 * merge's reads; the bulk calls are in _smtfast_lmdb_bulk.h).
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
 * and the cursor re-checked.  Reads may instead run ZL_BATCH at a time with the GIL
 * released (nogil), for a caller that keeps the txn and environment open meanwhile
 * (ZapDB: a snapshot's lock), so other threads run as between py-lmdb's own calls. */

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
enum { BRIDGE_YIELD = 16384, ZL_BATCH = 256 };

/* Run `stmt` (LMDB calls only, nothing of Python) with the GIL released when `nogil`. */
#define ZL_GIL_IF(nogil, stmt)          \
    do {                                \
        if (nogil) {                    \
            Py_BEGIN_ALLOW_THREADS;     \
            stmt;                       \
            Py_END_ALLOW_THREADS;       \
        } else {                        \
            stmt;                       \
        }                               \
    } while (0)

static PyTypeObject *zl_cursor_type, *zl_txn_type; /* set by lmdb_bind() when it checks */
static PyObject *zl_error = NULL;                    /* lmdb.Error, for a failed read */

/* lmdb_bind(Cursor, Transaction, version, Error) -> bool */
static PyObject *py_lmdb_bind(PyObject *self, PyObject *args) {
    PyObject *cur, *txn, *err;
    const char *version;
    if (!PyArg_ParseTuple(args, "O!O!sO!", &PyType_Type, &cur, &PyType_Type, &txn, &version,
                          &PyType_Type, &err))
        return NULL;
    Py_XSETREF(zl_error, Py_NewRef(err));
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

/* Up to `want` values of the cursor's records from `*op` on (MDB_GET_CURRENT first, then
 * MDB_NEXT), into run[]: how many; *rc the LMDB code that stopped it short (0: none).  Calls
 * nothing of Python: runs with the GIL released when the caller may. */
static int zl_read_run(ZlCursor *c, int *op, ZlVal *run, int want, int *rc) {
    int got = 0;
    *rc = 0;
    while (got < want) {
        ZlVal k;
        *rc = c->libv->cursor_get(c->curs, &k, &run[got], *op);
        *op = ZL_NEXT;
        if (*rc != 0) break;
        got++;
    }
    return got;
}

/* The record stored under key k in the cursor's database: new bytes, None, or NULL with
 * lmdb.Error (the cursor is left where the lookup put it).  nogil: the lookup runs with
 * the GIL released (a caller that keeps the txn open and the cursor to itself). */
static PyObject *zl_record(ZlCursor *c, const uint8_t *k, size_t kl, int nogil) {
    ZlVal mk = {kl, (void *)k}, mv = {0, NULL};
    int rc; /* nogil, as py-lmdb's get: other threads run during the lookup */
    ZL_GIL_IF(nogil, rc = c->libv->cursor_get(c->curs, &mk, &mv, ZL_SET));
    if (rc == ZL_NOTFOUND) return Py_NewRef(Py_None);
    if (rc != 0) {
        PyErr_Format(zl_error ? zl_error : PyExc_RuntimeError, "mdb_cursor_get(): %s",
                     c->libv->strerror_fn(rc));
        return NULL;
    }
    return PyBytes_FromStringAndSize(mv.mv_data, (Py_ssize_t)mv.mv_size);
}

/* lmdb_getter(cursor, nogil=False): a callable, getter(key) -> value or None, that is
 * cursor.get; the state tree's C reads (fetch in _smtfast_read.h) recognise it and read
 * through the bridge with no Python call, no key object.  None when the cursor is not one
 * the bridge reads.  nogil: each lookup releases the GIL, as py-lmdb's get does, so other
 * threads keep running while a merge reads -- only for a caller that keeps the cursor's
 * txn and environment open and the cursor to itself (ZapDB: a snapshot's lock). */
typedef struct {
    PyObject_HEAD
    PyObject *cursor;
    int nogil; /* each lookup with the GIL released (lmdb_getter's promise) */
} LmdbGetter;

static void getter_dealloc(LmdbGetter *g) {
    Py_XDECREF(g->cursor);
    PyObject_Free(g);
}

static PyObject *getter_call(LmdbGetter *g, PyObject *args, PyObject *kw) {
    PyObject *key;
    if (kw || !PyArg_ParseTuple(args, "O", &key))
        return PyErr_Format(PyExc_TypeError, "getter(key) takes one key");
    ZlCursor *c = zl_cursor(g->cursor);
    if (!c) return PyObject_CallMethod(g->cursor, "get", "O", key); /* py-lmdb says why */
    ZlVal mk;
    Py_buffer kb;
    if (zl_buf(key, &mk, &kb) < 0) return NULL;
    PyObject *r = zl_record(c, mk.mv_data, mk.mv_size, g->nogil);
    if (kb.obj) PyBuffer_Release(&kb);
    zl_done(c, 0);
    return r;
}

static PyTypeObject LmdbGetter_Type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "zapstack.zapdb._smtfast.LmdbGetter",
    .tp_basicsize = sizeof(LmdbGetter),
    .tp_dealloc = (destructor)getter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_call = (ternaryfunc)getter_call,
};

static PyObject *py_lmdb_getter(PyObject *self, PyObject *args) {
    PyObject *cursor;
    int nogil = 0;
    if (!PyArg_ParseTuple(args, "O|p", &cursor, &nogil)) return NULL;
    if (!zl_cursor(cursor)) Py_RETURN_NONE;
    LmdbGetter *g = PyObject_New(LmdbGetter, &LmdbGetter_Type);
    if (!g) return NULL;
    g->cursor = Py_NewRef(cursor);
    g->nogil = nogil;
    return (PyObject *)g;
}

/* The bridged cursor behind a merge's `get` (and *nogil, its promise), or NULL (a plain
 * callable: call it). */
static ZlCursor *zl_getter_cursor(PyObject *get, int *nogil) {
    if (!get || Py_TYPE(get) != &LmdbGetter_Type) return NULL;
    *nogil = ((LmdbGetter *)get)->nogil;
    return zl_cursor(((LmdbGetter *)get)->cursor);
}
