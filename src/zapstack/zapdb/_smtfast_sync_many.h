/* SyncLoader.add and add_many (included by _smtfast_sync.h): one chunk as a job, and many
 * jobs on two threads.
 *
 * add(index, entries, siblings) -> bool checks one chunk (every sibling given) on this
 * thread, with the GIL released for the hashing: True and kept, or False and nothing
 * kept.  add_many(items) -> [bool]: items is a sequence of (index, entries, siblings),
 * each what add() takes; the verdicts and what is kept are exactly those of calling
 * add() on each in order.  The arguments are checked first, with the GIL (TypeError,
 * ValueError: an index out of range, already kept, repeated in the batch, or the loader
 * finished); nothing is kept then.  The hashing and the subtree builds -- nearly all the work --
 * run with the GIL released on this thread and (a batch of SYNC_SPAWN_MIN entries or
 * more) one helper thread, each chunk into its own arena (raw allocator); then, with
 * the GIL again, the kept chunks' records are appended to the loader's arena in the
 * items' order and their entries copied, as add() would.  A chunk that another thread
 * kept meanwhile, a failed allocation or a key-hash collision raises as add() would, the
 * earlier chunks staying kept.  The workers read
 * the entries' and siblings' bytes only; the items are held (a tuple copy) throughout. */

#include <pthread.h>
#include <stdatomic.h>

typedef struct {
    Py_ssize_t index;
    PyObject *entries, *sibs; /* borrowed from the held items */
    int checkable;            /* 0: wrong sibling count or size: rejected, no work */
    int status;               /* 1 checked (keep), 0 rejected, -1 no memory, -2 collision */
    Py_ssize_t n;             /* entries */
    SyncBuf nod;              /* the chunk's records (raw allocator) */
    uint8_t own[32];          /* the chunk's subtree hash */
    int64_t top, seg_lo;      /* offsets in nod: the top entry (-1: empty), the rest */
} SyncJob;

typedef struct {
    const SyncLoader *s;
    SyncJob *jobs;
    size_t n;
    atomic_size_t next;
} SyncPool;

/* One chunk's check and build (as proofs.verify_chunk checks it) into the job's own
 * arena; touches no Python state, so it runs without the GIL. */
static void sync_job_run(const SyncLoader *s, SyncJob *j) {
    int depth = s->depth;
    j->status = 0;
    j->top = -1;
    if (!j->checkable) return;
    uint8_t prefix[32];
    chunk_prefix(j->index, depth, prefix);
    Py_ssize_t n = j->n;
    Leaf *leaves = PyMem_RawMalloc((size_t)(n ? n : 1) * sizeof(Leaf));
    Leaf **order = PyMem_RawMalloc((size_t)(n ? n : 1) * sizeof(Leaf *));
    if (!leaves || !order) {
        j->status = -1;
        goto done;
    }
    int rc = sync_hash_leaves(j->entries, leaves, order, depth, prefix);
    uint8_t h[32] = {0};
    if (rc == 0 && n > 0) {
        size_t reclen = sync_reclen(order, n);
        int64_t top = sync_slot_in(&j->nod, depth, prefix, reclen);
        if (top < 0) {
            j->status = -1;
            goto done;
        }
        int built = sync_build_in(&j->nod, order, n, depth, top, h);
        if (built < 0) {
            j->status = built;
            goto done;
        }
        j->top = top;
        j->seg_lo = top + 37 + (int64_t)reclen;
    }
    memcpy(j->own, h, 32);
    if (rc == 0) sync_fold(j->sibs, prefix, depth, j->own, h);
    if (rc == 0 && memcmp(h, s->root, 32) == 0) j->status = 1;
done:
    PyMem_RawFree(leaves);
    PyMem_RawFree(order);
}

static void *sync_worker(void *arg) {
    SyncPool *p = arg;
    size_t i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->n) sync_job_run(p->s, &p->jobs[i]);
    return NULL;
}

#define SYNC_IN_BATCH (-2) /* a top's kind while add_many holds that index (briefly) */
#define SYNC_SPAWN_MIN 512 /* entries in a batch worth a helper thread (~0.1 ms to start) */

/* Check one chunk's arguments (GIL held) into `j`; -1 with an exception if they are
 * malformed.  Only when they are fine, its index is marked SYNC_IN_BATCH (so that a
 * repeat in the batch is refused); the caller unmarks it before anything else happens. */
static int sync_job_prepare(SyncLoader *s, PyObject *idx, PyObject *entries, PyObject *sibs,
                            SyncJob *j) {
    if (!PyTuple_Check(entries) || !PyTuple_Check(sibs)) {
        PyErr_SetString(PyExc_TypeError, "entries and siblings must be tuples");
        return -1;
    }
    if (sync_index(s, idx, &j->index) < 0) return -1;
    if (s->tops[j->index].kind == SYNC_IN_BATCH) {
        PyErr_SetString(PyExc_ValueError, "chunk index repeated in add_many");
        return -1;
    }
    j->checkable = PyTuple_GET_SIZE(sibs) == s->depth;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(sibs); i++) {
        PyObject *sb = PyTuple_GET_ITEM(sibs, i);
        if (!PyBytes_Check(sb)) {
            PyErr_SetString(PyExc_TypeError, "siblings must be bytes");
            return -1;
        }
        if (PyBytes_GET_SIZE(sb) != 32) j->checkable = 0;
    }
    if (sync_check_entries(entries) < 0) return -1;
    s->tops[j->index].kind = SYNC_IN_BATCH;
    j->entries = entries;
    j->sibs = sibs;
    j->n = PyTuple_GET_SIZE(entries);
    j->nod.raw = 1;
    return 0;
}

/* Keep a checked job (GIL held): its records after the loader's, its top, its entries. */
static int sync_job_keep(SyncLoader *s, SyncJob *j) {
    if (s->finished || s->tops[j->index].kind >= 0) {
        PyErr_SetString(PyExc_ValueError, "chunk index out of range, repeated, or loader finished");
        return -1;
    }
    size_t mark = s->nod.len, dmark = s->dat.len;
    Py_ssize_t nmark = s->ndata;
    if (sync_grow(&s->nod, mark + j->nod.len) < 0) return -1;
    if (j->nod.len) memcpy(s->nod.buf + mark, j->nod.buf, j->nod.len);
    s->nod.len = mark + j->nod.len;
    if (sync_keep(s, j->entries) < 0) {
        s->nod.len = mark;
        s->dat.len = dmark;
        s->ndata = nmark;
        return -1;
    }
    SyncTop *t = &s->tops[j->index];
    t->kind = j->n == 0 ? K_EMPTY : j->n == 1 ? K_LEAF : K_NODE;
    memcpy(t->hash, j->own, 32);
    t->top = j->top < 0 ? -1 : (int64_t)mark + j->top;
    t->seg_lo = j->top < 0 ? (int64_t)s->nod.len : (int64_t)mark + j->seg_lo;
    t->seg_hi = (int64_t)s->nod.len;
    if (mark == 0 && dmark == 0) { /* the first chunk kept: room for all like it */
        if (sync_resize(&s->nod, sync_guess(s->nod.len, s->depth)) < 0 ||
            sync_resize(&s->dat, sync_guess(s->dat.len, s->depth)) < 0)
            PyErr_Clear(); /* only a guess: the arenas grow as needed */
    }
    return 0;
}

/* The verdict of a job that ran (GIL held): True (kept: its records after the loader's,
 * its top, its entries), False, or NULL with the error add() raises. */
static PyObject *sync_job_result(SyncLoader *s, SyncJob *j) {
    if (j->status == -1) return PyErr_NoMemory();
    if (j->status == -2) return collision(), NULL;
    if (j->status == 1 && sync_job_keep(s, j) < 0) return NULL;
    return Py_NewRef(j->status == 1 ? Py_True : Py_False);
}

static PyObject *sync_add(SyncLoader *s, PyObject *args) {
    PyObject *idx, *entries, *sibs;
    if (!PyArg_ParseTuple(args, "OOO", &idx, &entries, &sibs)) return NULL;
    SyncJob j = {0};
    if (sync_job_prepare(s, idx, entries, sibs, &j) < 0) return NULL;
    s->tops[j.index].kind = -1;
    Py_BEGIN_ALLOW_THREADS;
    sync_job_run(s, &j);
    Py_END_ALLOW_THREADS;
    PyObject *result = sync_job_result(s, &j);
    PyMem_RawFree(j.nod.buf);
    return result;
}

static PyObject *sync_add_many(SyncLoader *s, PyObject *arg) {
    PyObject *items = PySequence_Tuple(arg); /* held: the workers read what it holds */
    if (!items) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    SyncJob *jobs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(SyncJob));
    PyObject *result = NULL, *out = NULL;
    if (!jobs) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t ready = 0; /* items prepared: their indexes are marked */
    while (ready < n) {
        PyObject *item = PyTuple_GET_ITEM(items, ready);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_TypeError, "add_many takes (index, entries, siblings) tuples");
            break;
        }
        if (sync_job_prepare(s, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1),
                             PyTuple_GET_ITEM(item, 2), &jobs[ready]) < 0)
            break;
        ready++;
    }
    Py_ssize_t entries = 0;
    for (Py_ssize_t i = 0; i < ready; i++) {
        s->tops[jobs[i].index].kind = -1;
        entries += jobs[i].n;
    }
    if (ready < n) goto done;
    SyncPool pool = {.s = s, .jobs = jobs, .n = (size_t)n};
    atomic_init(&pool.next, 0);
    Py_BEGIN_ALLOW_THREADS;
    pthread_t helper;
    int spawned = n > 1 && entries >= SYNC_SPAWN_MIN &&
                  pthread_create(&helper, NULL, sync_worker, &pool) == 0;
    sync_worker(&pool);
    if (spawned) pthread_join(helper, NULL);
    Py_END_ALLOW_THREADS;
    if (!(out = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *verdict = sync_job_result(s, &jobs[i]);
        if (!verdict) goto done;
        PyList_SET_ITEM(out, i, verdict);
    }
    result = Py_NewRef(out);
done:
    Py_XDECREF(out);
    if (jobs)
        for (Py_ssize_t i = 0; i < n; i++) PyMem_RawFree(jobs[i].nod.buf);
    PyMem_Free(jobs);
    Py_DECREF(items);
    return result;
}
