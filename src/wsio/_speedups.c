/*
 * wsio._speedups -- optional C versions of the two loops that touch every byte of every
 * WebSocket message:
 *
 *   apply_mask(data, mask, offset=0) -> bytes
 *       XOR masking of payloads (RFC 6455 section 5.3).
 *   join_masked(header, payload, mask) -> bytes | memoryview
 *       a client's large frame, or a piece of one, masked behind its header into a buffer
 *       reused once no view of it is left.
 *   Utf8Validator().feed(data, final=False)
 *       incremental UTF-8 validation of text messages (RFC 6455 section 8.1, RFC 3629).
 *   parse_messages(data, events, mask_expected, max_size, text_message, binary_message)
 *       the receive fast path: whole unfragmented messages parsed, unmasked and decoded
 *       in one call (RFC 6455 section 5.2); anything else is left to the general parser.
 *   serialize_frame(opcode, payload, fin=True, rsv=0, mask=None) -> bytes
 *       the send path: header and (masked) payload written into one allocation.
 *   PayloadBuffer(length, mask=None)
 *       a large frame's payload unmasked, as it arrives, into the bytes handed over;
 *       or read there in place and unmasked where it is.
 *   head_fields(head, shared, max_shared)
 *       the header fields of an HTTP head (the opening handshake), checked and split.
 *   random_bytes(size)
 *       bytes of the system's cryptographic source, for masking keys, from a pool per thread.
 *   Waiter(loop)
 *       what recv() awaits: a future-like object that resumes the waiting task inside
 *       the read callback (wsio.asyncio.waiter explains why).
 *   send_message_twin(...), receive_messages_twin(...)
 *       the common case of Protocol.send_message and Protocol.receive_messages, as
 *       methods of the class: a message framed (a client's masked), a read's messages
 *       delivered, with no frame of Python; every other case calls the Python method.
 *
 * Why C: in pure Python, masking goes through two big-integer conversions and allocates
 * several times the payload; the incremental codec decodes (builds a str) only to throw
 * it away. Here masking runs at memory speed and validation allocates nothing. The waiter
 * runs once per message received; in Python, its methods would cost what they save. So
 * do the method twins, once per message sent and per read of a listener: in Python, each
 * is a frame and a few dozen bytecodes over the C that they call.
 *
 * The pure-Python implementations in wsio.protocol.masking, wsio.protocol.utf8,
 * wsio.protocol.frames, wsio.protocol.connection and wsio.asyncio.waiter stay the
 * reference and the fallback: this module is built only when a compiler is present, and
 * the environment variable WSIO_NO_SPEEDUPS turns it off. Both give the same results; the
 * C validator may fail earlier (a surrogate is rejected at its second byte, where
 * CPython's codec waits for the third), never later.
 *
 * Plain C99 and the public CPython API only; no dependencies.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <string.h>

/* Inputs larger than this are processed with the GIL released so that other threads run
 * meanwhile. Below it, releasing and taking back the GIL costs more than it frees. */
#define RELEASE_GIL_THRESHOLD (64 * 1024)

/* ------------------------------------------------------------------------------------ */
/* Argument helpers                                                                      */
/* ------------------------------------------------------------------------------------ */

/* Binds positional and keyword arguments of a METH_FASTCALL | METH_KEYWORDS function to
 * the parameter names in `names`; unset ones are left NULL.
 * Micro-optimisation: written by hand because PyArg_ParseTupleAndKeywords costs about as
 * much as masking a small frame; this is a couple of pointer copies in the usual
 * all-positional call. */
static int
bind_args(const char *func, const char *const *names, Py_ssize_t nnames,
          PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **out)
{
    Py_ssize_t i, j, nkw;

    for (i = 0; i < nnames; i++) {
        out[i] = NULL;
    }
    if (nargs > nnames) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", func,
                     nnames, nargs);
        return -1;
    }
    for (i = 0; i < nargs; i++) {
        out[i] = args[i];
    }
    if (kwnames == NULL) {
        return 0;
    }
    nkw = PyTuple_GET_SIZE(kwnames);
    for (i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        for (j = 0; j < nnames; j++) {
            if (PyUnicode_CompareWithASCIIString(key, names[j]) == 0) {
                break;
            }
        }
        if (j == nnames) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'",
                         func, key);
            return -1;
        }
        if (out[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                         func, names[j]);
            return -1;
        }
        out[j] = args[nargs + i];
    }
    return 0;
}

/* Gets a read-only, contiguous view of a bytes-like object, with a TypeError that names
 * the argument when `obj` isn't one. A non-contiguous buffer (a strided memoryview) is
 * copied into bytes first, as the pure-Python code effectively does. */
static int
get_bytes_view(PyObject *obj, Py_buffer *view, const char *func, const char *arg)
{
    PyObject *copy;
    int result;

    if (!PyObject_CheckBuffer(obj)) {
        PyErr_Format(PyExc_TypeError, "%s() argument '%s' must be a bytes-like object, not '%.200s'",
                     func, arg, Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) == 0) {
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_BufferError)) {
        return -1;
    }
    PyErr_Clear();
    copy = PyBytes_FromObject(obj);
    if (copy == NULL) {
        return -1;
    }
    /* The view keeps its own reference to the copy. */
    result = PyObject_GetBuffer(copy, view, PyBUF_SIMPLE);
    Py_DECREF(copy);
    return result;
}

/* ------------------------------------------------------------------------------------ */
/* Masking                                                                               */
/* ------------------------------------------------------------------------------------ */

/* dst[i] = src[i] ^ key[i % 4]. `key` is the mask already rotated by the offset. dst is
 * either a fresh buffer or src itself (a payload read in place, unmasked where it is):
 * each byte is read before it is written, so both are safe. */
static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char key[4])
{
    unsigned char key8[8];
    uint64_t k;
    Py_ssize_t i = 0;

    /* The key repeated twice fills a 64-bit word; because 8 is a multiple of 4, the word
     * lines up with the payload at every multiple of 8. Building it with memcpy keeps it
     * independent of the machine's byte order. */
    memcpy(key8, key, 4);
    memcpy(key8 + 4, key, 4);
    memcpy(&k, key8, 8);

    /* Micro-optimisation: 32 bytes per iteration in four independent 64-bit words, so
     * that loads, XORs and stores overlap; memcpy is how C99 spells an unaligned load or
     * store, and compilers turn it into a single move. */
    for (; n - i >= 32; i += 32) {
        uint64_t a, b, c, d;
        memcpy(&a, src + i, 8);
        memcpy(&b, src + i + 8, 8);
        memcpy(&c, src + i + 16, 8);
        memcpy(&d, src + i + 24, 8);
        a ^= k;
        b ^= k;
        c ^= k;
        d ^= k;
        memcpy(dst + i, &a, 8);
        memcpy(dst + i + 8, &b, 8);
        memcpy(dst + i + 16, &c, 8);
        memcpy(dst + i + 24, &d, 8);
    }
    /* Micro-optimisation: the rest 8 bytes at a time. */
    for (; n - i >= 8; i += 8) {
        uint64_t a;
        memcpy(&a, src + i, 8);
        a ^= k;
        memcpy(dst + i, &a, 8);
    }
    /* The last 0 to 7 bytes; i is a multiple of 8 here, so key[i & 3] is still right. */
    for (; i < n; i++) {
        dst[i] = src[i] ^ key[i & 3];
    }
}

/* offset & 3 for any Python int, negative or huge ones included, as in the Python code. */
static int
mask_shift(PyObject *offset, unsigned *shift)
{
    long long value;
    int overflow;

    if (offset == NULL) {
        *shift = 0;
        return 0;
    }
    if (!PyLong_Check(offset)) {
        PyErr_Format(PyExc_TypeError, "apply_mask() argument 'offset' must be int, not '%.200s'",
                     Py_TYPE(offset)->tp_name);
        return -1;
    }
    value = PyLong_AsLongLongAndOverflow(offset, &overflow);
    if (overflow == 0) {
        if (value == -1 && PyErr_Occurred()) {
            return -1;
        }
        /* Conversion to unsigned is modulo 2**64, i.e. two's complement: the same low bits
         * as Python's infinite-precision `offset & 3`. */
        *shift = (unsigned)((unsigned long long)value & 3u);
        return 0;
    }
    else {
        /* Beyond 64 bits: let Python compute it (never happens with real payloads). */
        PyObject *three = PyLong_FromLong(3);
        PyObject *low;
        long result;
        if (three == NULL) {
            return -1;
        }
        low = PyNumber_And(offset, three);
        Py_DECREF(three);
        if (low == NULL) {
            return -1;
        }
        result = PyLong_AsLong(low);
        Py_DECREF(low);
        if (result == -1 && PyErr_Occurred()) {
            return -1;
        }
        *shift = (unsigned)result;
        return 0;
    }
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask($module, /, data, mask, offset=0)\n"
"--\n"
"\n"
"XOR data with the 4-byte mask repeated, as if data started offset bytes into the\n"
"payload (RFC 6455 section 5.3: octet i is XORed with mask octet i mod 4). Unmasking is\n"
"the same operation. Returns a new bytes object.");

static PyObject *
speedups_apply_mask(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    static const char *const names[] = {"data", "mask", "offset"};
    PyObject *bound[3];
    Py_buffer data_view, mask_view;
    const unsigned char *src, *mask;
    unsigned char key[4];
    unsigned shift, i;
    Py_ssize_t length;
    PyObject *result;
    int data_is_view = 0, mask_is_view = 0;

    (void)module;
    if (bind_args("apply_mask", names, 3, args, nargs, kwnames, bound) < 0) {
        return NULL;
    }
    if (bound[0] == NULL || bound[1] == NULL) {
        PyErr_Format(PyExc_TypeError, "apply_mask() missing required argument '%s'",
                     bound[0] == NULL ? "data" : "mask");
        return NULL;
    }
    if (mask_shift(bound[2], &shift) < 0) {
        return NULL;
    }

    /* Micro-optimisation: bytes, by far the most common argument, is read directly
     * instead of through the buffer protocol. */
    if (PyBytes_CheckExact(bound[1])) {
        mask = (const unsigned char *)PyBytes_AS_STRING(bound[1]);
        length = PyBytes_GET_SIZE(bound[1]);
    }
    else {
        if (get_bytes_view(bound[1], &mask_view, "apply_mask", "mask") < 0) {
            return NULL;
        }
        mask_is_view = 1;
        mask = (const unsigned char *)mask_view.buf;
        length = mask_view.len;
    }
    if (length != 4) {
        PyErr_Format(PyExc_ValueError, "apply_mask() mask must be 4 bytes long, not %zd",
                     length);
        if (mask_is_view) {
            PyBuffer_Release(&mask_view);
        }
        return NULL;
    }
    /* Rotate the key so that key[0] applies to data[0]. */
    for (i = 0; i < 4; i++) {
        key[i] = mask[(i + shift) & 3];
    }
    if (mask_is_view) {
        PyBuffer_Release(&mask_view);
    }

    if (PyBytes_CheckExact(bound[0])) {  /* Micro-optimisation, as for the mask. */
        src = (const unsigned char *)PyBytes_AS_STRING(bound[0]);
        length = PyBytes_GET_SIZE(bound[0]);
    }
    else {
        if (get_bytes_view(bound[0], &data_view, "apply_mask", "data") < 0) {
            return NULL;
        }
        data_is_view = 1;
        src = (const unsigned char *)data_view.buf;
        length = data_view.len;
    }

    result = PyBytes_FromStringAndSize(NULL, length);
    if (result != NULL && length > 0) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result);
        if (length > RELEASE_GIL_THRESHOLD) {
            /* Safe without the GIL: the source is immutable bytes kept alive by the
             * caller, or an exported buffer, which its owner can't resize or free while
             * the export lasts; the result isn't visible to any other thread yet. */
            Py_BEGIN_ALLOW_THREADS
            xor_mask(dst, src, length, key);
            Py_END_ALLOW_THREADS
        }
        else {
            xor_mask(dst, src, length, key);
        }
    }
    if (data_is_view) {
        PyBuffer_Release(&data_view);
    }
    return result;
}

/* ------------------------------------------------------------------------------------ */
/* UTF-8 validation                                                                      */
/* ------------------------------------------------------------------------------------ */

/*
 * The well-formed byte sequences of RFC 3629 (section 4), by first byte:
 *
 *   00..7F                                  U+0000..U+007F
 *   C2..DF  80..BF                          U+0080..U+07FF
 *   E0      A0..BF  80..BF                  U+0800..U+0FFF      (A0: no overlongs)
 *   E1..EC  80..BF  80..BF                  U+1000..U+CFFF
 *   ED      80..9F  80..BF                  U+D000..U+D7FF      (9F: no surrogates)
 *   EE..EF  80..BF  80..BF                  U+E000..U+FFFF
 *   F0      90..BF  80..BF  80..BF          U+10000..U+3FFFF    (90: no overlongs)
 *   F1..F3  80..BF  80..BF  80..BF          U+40000..U+FFFFF
 *   F4      80..8F  80..BF  80..BF          U+100000..U+10FFFF  (8F: nothing above)
 *
 * C0, C1 (overlong), F5..FF and a continuation byte 80..BF can never start a character.
 * Only the second byte has a range that depends on the first; every later one is 80..BF.
 * So the whole state between two pieces is: how many continuation bytes are still
 * expected, and the range allowed for the next one. Checking each byte against that
 * range rejects a sequence at the first byte that rules it out: "fail fast" (RFC 6455
 * section 8.1), e.g. ED A0 (a surrogate) fails at A0 already.
 */

enum { LEAD_ASCII, LEAD_2, LEAD_E0, LEAD_3, LEAD_ED, LEAD_F0, LEAD_4, LEAD_F4, LEAD_INVALID };

/* Per lead-byte class: continuation bytes that follow, and the range of the first one. */
static const unsigned char lead_need[] = {0, 1, 2, 2, 2, 3, 3, 3, 0};
static const unsigned char lead_low[] = {0, 0x80, 0xA0, 0x80, 0x80, 0x90, 0x80, 0x80, 0};
static const unsigned char lead_high[] = {0, 0xBF, 0xBF, 0xBF, 0x9F, 0xBF, 0xBF, 0x8F, 0};

/* Class of every byte as a first byte, filled in at import from the table above.
 * Micro-optimisation: one table load instead of a chain of comparisons per character. */
static unsigned char lead_class[256];

static void
init_lead_class(void)
{
    int b;
    for (b = 0; b < 256; b++) {
        unsigned char cls;
        if (b < 0x80) {
            cls = LEAD_ASCII;
        }
        else if (b < 0xC2) {
            cls = LEAD_INVALID;  /* 80..BF continuation, C0 C1 overlong */
        }
        else if (b < 0xE0) {
            cls = LEAD_2;
        }
        else if (b == 0xE0) {
            cls = LEAD_E0;
        }
        else if (b == 0xED) {
            cls = LEAD_ED;
        }
        else if (b < 0xF0) {
            cls = LEAD_3;
        }
        else if (b == 0xF0) {
            cls = LEAD_F0;
        }
        else if (b < 0xF4) {
            cls = LEAD_4;
        }
        else if (b == 0xF4) {
            cls = LEAD_F4;
        }
        else {
            cls = LEAD_INVALID;  /* F5..FF: beyond U+10FFFF or not UTF-8 at all */
        }
        lead_class[b] = cls;
    }
}

/* The state carried from one piece to the next. */
typedef struct {
    unsigned char need;        /* continuation bytes still expected, 0..3 */
    unsigned char low, high;   /* range allowed for the next one when need > 0 */
    unsigned char held;        /* bytes of the open sequence seen in earlier pieces, 0..3 */
    unsigned char bytes[3];    /* those bytes, to report them in an error */
} Utf8State;

/* Why a scan failed, with the positions CPython's codec reports: for an invalid start
 * byte, data[start] is that byte and end = start + 1; for an invalid continuation byte,
 * data[start:end] is the sequence so far and data[end] the byte that broke it; at the end
 * of the data, data[start:] is the cut sequence. */
typedef struct {
    const char *reason;
    Py_ssize_t start, end;     /* relative to the piece; start < 0 if it began earlier */
} Utf8Error;

/*
 * Long stretches are checked in blocks of 64 bytes, each byte against the 3 before it,
 * with no state carried from byte to byte. In well-formed UTF-8, a byte is a continuation
 * (80..BF) exactly when one of the 3 before it leads a character that still needs it:
 * the byte just before starts a character of 2 bytes or more (C0 and above), or the one
 * before that of 3 or more (E0 and above), or the one before that of 4 (F0 and above).
 * Add the bytes that never occur (C0, C1, F5..FF) and the four first bytes whose
 * second byte has a narrower range (E0, ED, F0, F4), and these local rules hold for every
 * byte if and only if the text is valid -- given that the block starts between
 * characters, or anywhere after such a start with the bytes in between checked too.
 *
 * Why: the byte-by-byte state machine makes every step wait for the previous one, and in
 * mixed text the length of the next character is unpredictable, so its branches
 * mispredict. Here all 64 bytes are independent, branch-free and of a fixed count, which
 * compilers turn into SIMD code (16 bytes at a time with SSE2) even at -O2
 * (micro-optimisation: about 3 times the state machine's speed on mixed text).
 * A block that fails is not analysed further: the state machine runs again over the
 * stretch to find the failing byte and the reason, once per message at most.
 */
#define UTF8_BLOCK 64

/* Nonzero if some byte of s[0:UTF8_BLOCK) breaks the local rules. Reads s[-3:0). */
static unsigned
utf8_block_errors(const unsigned char *s)
{
    unsigned char errors = 0;
    int j;

    for (j = 0; j < UTF8_BLOCK; j++) {
        unsigned char c = s[j], p1 = s[j - 1], p2 = s[j - 2], p3 = s[j - 3];
        /* Single & and | rather than && and ||: no branches, so it vectorizes. */
        unsigned char wanted = (unsigned char)((p1 >= 0xC0) | (p2 >= 0xE0) | (p3 >= 0xF0));
        unsigned char is_continuation = (unsigned char)((c & 0xC0) == 0x80);
        errors |= (unsigned char)((wanted ^ is_continuation)
                                  | ((c & 0xFE) == 0xC0) | (c >= 0xF5)
                                  | ((p1 == 0xE0) & (c < 0xA0))    /* overlong */
                                  | ((p1 == 0xED) & (c > 0x9F))    /* surrogate */
                                  | ((p1 == 0xF0) & (c < 0x90))    /* overlong */
                                  | ((p1 == 0xF4) & (c > 0x8F)));  /* above U+10FFFF */
    }
    return errors;
}

/* Checks whole blocks from s[i], which is between characters and at least 3 bytes into
 * the piece. Returns where the byte-by-byte code must go on, between characters: after
 * the last block, or at the first byte of a character that the last block cut; -1 if a
 * block is invalid. */
static Py_ssize_t
utf8_check_blocks(const unsigned char *s, Py_ssize_t i, Py_ssize_t n)
{
    Py_ssize_t k;

    for (; n - i >= UTF8_BLOCK; i += UTF8_BLOCK) {
        /* Micro-optimisation: a block of ASCII just after a complete character (an ASCII
         * byte) can't break any rule; OR-ing 8-byte words finds one cheaply. */
        uint64_t any = 0;
        int w;
        for (w = 0; w < UTF8_BLOCK; w += 8) {
            uint64_t word;
            memcpy(&word, s + i + w, 8);
            any |= word;
        }
        if (!(any & UINT64_C(0x8080808080808080)) && s[i - 1] < 0x80) {
            continue;
        }
        if (utf8_block_errors(s + i)) {
            return -1;
        }
    }
    /* A character that starts in the last 3 bytes checked may end beyond them: find its
     * first byte and resume there if the character isn't complete. */
    k = i - 1;
    while (k > i - 3 && (s[k] & 0xC0) == 0x80) {
        k--;
    }
    if (s[k] >= 0xC0 && k + lead_need[lead_class[s[k]]] >= i) {
        return k;
    }
    return i;
}

/* Checks s[0:n) from state *st. On success updates *st and returns 0; on error fills
 * *err, leaves *st as it was and returns -1. Needs no GIL. */
static int
utf8_scan(Utf8State *st, const unsigned char *s, Py_ssize_t n, Utf8Error *err)
{
    /* The state lives in locals during the loop and is written back only on success
     * (micro-optimisation, and it keeps the state unchanged after an error). */
    unsigned need = st->need, low = st->low, high = st->high;
    Py_ssize_t start = -(Py_ssize_t)st->held;  /* where the open sequence began */
    Py_ssize_t i = 0;
    int blocks = 1;  /* cleared when a block fails, to find the error byte by byte */

    while (i < n) {
        unsigned c;
        if (need == 0) {
            if (blocks && i >= 3 && n - i >= UTF8_BLOCK) {
                Py_ssize_t resume = utf8_check_blocks(s, i, n);
                if (resume < 0) {
                    blocks = 0;
                }
                else {
                    i = resume;
                }
                continue;
            }
            /* Micro-optimisation: skip ASCII 8 bytes at a time -- a word without any
             * high bit set is 8 ASCII characters. Text is mostly ASCII. */
            while (n - i >= 8) {
                uint64_t word;
                memcpy(&word, s + i, 8);
                if (word & UINT64_C(0x8080808080808080)) {
                    break;
                }
                i += 8;
            }
            while (i < n && s[i] < 0x80) {
                i++;
            }
            if (i == n) {
                break;
            }
            c = lead_class[s[i]];
            if (c == LEAD_INVALID) {
                err->reason = "invalid start byte";
                err->start = i;
                err->end = i + 1;
                return -1;
            }
            need = lead_need[c];
            low = lead_low[c];
            high = lead_high[c];
            start = i++;
            /* Micro-optimisation: when the whole character is in this piece, check it
             * straight through instead of going round the state machine per byte. */
            if (n - i >= (Py_ssize_t)need) {
                c = s[i];
                if (c < low || c > high) {
                    goto invalid_continuation;
                }
                i++;
                while (--need > 0) {
                    if ((s[i] & 0xC0) != 0x80) {
                        goto invalid_continuation;
                    }
                    i++;
                }
            }
            continue;
        }
        /* A continuation byte of a sequence opened earlier (or at the end of a piece). */
        c = s[i];
        if (c < low || c > high) {
            goto invalid_continuation;
        }
        low = 0x80;
        high = 0xBF;
        need--;
        i++;
    }

    /* Success: remember the open sequence, if any, for the next piece. */
    if (need > 0) {
        if (start < 0) {
            /* Still the sequence begun earlier: this whole piece belongs to it. */
            memcpy(st->bytes + st->held, s, (size_t)n);
            st->held = (unsigned char)(st->held + n);
        }
        else {
            memcpy(st->bytes, s + start, (size_t)(n - start));
            st->held = (unsigned char)(n - start);
        }
    }
    else {
        st->held = 0;
    }
    st->need = (unsigned char)need;
    st->low = (unsigned char)low;
    st->high = (unsigned char)high;
    return 0;

invalid_continuation:
    err->reason = "invalid continuation byte";
    err->start = start;
    err->end = i;
    return -1;
}

/* Scans with the GIL released for large pieces (see RELEASE_GIL_THRESHOLD). The caller
 * holds a buffer export or a bytes reference, so the memory stays put. */
static int
utf8_scan_maybe_nogil(Utf8State *st, const unsigned char *s, Py_ssize_t n, Utf8Error *err)
{
    int result;
    if (n > RELEASE_GIL_THRESHOLD) {
        Py_BEGIN_ALLOW_THREADS
        result = utf8_scan(st, s, n, err);
        Py_END_ALLOW_THREADS
        return result;
    }
    return utf8_scan(st, s, n, err);
}

/* Raises UnicodeDecodeError for an error found in `s` scanned from state `st`. As with
 * CPython's incremental decoder, the error's object is the bytes held from earlier pieces
 * followed by this piece, and start/end index into it. */
static void
raise_utf8_error(const Utf8State *st, const unsigned char *s, Py_ssize_t n,
                 const Utf8Error *err)
{
    PyObject *object, *exc;
    Py_ssize_t held = st->held;

    object = PyBytes_FromStringAndSize(NULL, held + n);
    if (object == NULL) {
        return;
    }
    memcpy(PyBytes_AS_STRING(object), st->bytes, (size_t)held);
    memcpy(PyBytes_AS_STRING(object) + held, s, (size_t)n);
    exc = PyUnicodeDecodeError_Create("utf-8", PyBytes_AS_STRING(object), held + n,
                                      err->start + held, err->end + held, err->reason);
    Py_DECREF(object);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_UnicodeDecodeError, exc);
        Py_DECREF(exc);
    }
}

/* Validates one piece; with `final`, a sequence left open at the end is an error too.
 * Returns 0 or -1 with UnicodeDecodeError set. */
static int
utf8_feed(Utf8State *st, PyObject *data, int final, const char *func)
{
    Py_buffer view;
    const unsigned char *s;
    Py_ssize_t n;
    Utf8State before = *st;
    Utf8Error err;
    int is_view = 0, result = 0;

    if (PyBytes_CheckExact(data)) {  /* Micro-optimisation: no buffer protocol for bytes. */
        s = (const unsigned char *)PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    }
    else {
        if (get_bytes_view(data, &view, func, "data") < 0) {
            return -1;
        }
        is_view = 1;
        s = (const unsigned char *)view.buf;
        n = view.len;
    }

    if (utf8_scan_maybe_nogil(st, s, n, &err) < 0) {
        raise_utf8_error(st, s, n, &err);
        result = -1;
    }
    else if (final && st->need > 0) {
        /* Report the open sequence as CPython does: from its first byte to the end. */
        err.reason = "unexpected end of data";
        err.end = n;
        err.start = n - st->held;
        *st = before;
        raise_utf8_error(st, s, n, &err);
        result = -1;
    }
    if (is_view) {
        PyBuffer_Release(&view);
    }
    return result;
}

/* ---- Utf8Validator ----------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Utf8State state;
} Utf8ValidatorObject;

static PyObject *
validator_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Utf8ValidatorObject *self;

    if (PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Utf8Validator() takes no arguments");
        return NULL;
    }
    /* tp_alloc zero-fills: the state starts between characters, nothing held. */
    self = (Utf8ValidatorObject *)type->tp_alloc(type, 0);
    return (PyObject *)self;
}

PyDoc_STRVAR(validator_feed_doc,
"feed($self, /, data, final=False)\n"
"--\n"
"\n"
"Validate the next piece; raise UnicodeDecodeError as soon as the bytes seen so far\n"
"cannot start valid UTF-8. With final, a sequence cut at the end is an error too.");

static PyObject *
validator_feed(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"data", "final"};
    Utf8ValidatorObject *self = (Utf8ValidatorObject *)op;
    PyObject *bound[2];
    int final = 0;

    if (bind_args("feed", names, 2, args, nargs, kwnames, bound) < 0) {
        return NULL;
    }
    if (bound[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "feed() missing required argument 'data'");
        return NULL;
    }
    if (bound[1] != NULL) {
        final = PyObject_IsTrue(bound[1]);
        if (final < 0) {
            return NULL;
        }
    }
    if (utf8_feed(&self->state, bound[0], final, "feed") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef validator_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))validator_feed, METH_FASTCALL | METH_KEYWORDS,
     validator_feed_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(validator_doc,
"Utf8Validator()\n"
"--\n"
"\n"
"Checks that a byte stream, fed in pieces, is valid UTF-8 (RFC 3629).");

static PyTypeObject Utf8ValidatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsio._speedups.Utf8Validator",
    .tp_basicsize = sizeof(Utf8ValidatorObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = validator_doc,
    .tp_methods = validator_methods,
    .tp_new = validator_new,
};

/* ------------------------------------------------------------------------------------ */
/* Frames                                                                                */
/* ------------------------------------------------------------------------------------ */

/* Reads a bytes-like argument: bytes directly (micro-optimisation: the common case skips
 * the buffer protocol), anything else through a view that the caller releases when
 * *is_view is set. */
static int
read_bytes_arg(PyObject *obj, Py_buffer *view, int *is_view, const unsigned char **buf,
               Py_ssize_t *len, const char *func, const char *arg)
{
    if (PyBytes_CheckExact(obj)) {
        *buf = (const unsigned char *)PyBytes_AS_STRING(obj);
        *len = PyBytes_GET_SIZE(obj);
        *is_view = 0;
        return 0;
    }
    if (get_bytes_view(obj, view, func, arg) < 0) {
        return -1;
    }
    *buf = (const unsigned char *)view->buf;
    *len = view->len;
    *is_view = 1;
    return 0;
}

PyDoc_STRVAR(parse_messages_doc,
"parse_messages($module, data, events, mask_expected, max_size, text_message,\n"
"               binary_message, /)\n"
"--\n"
"\n"
"Parse the whole unfragmented messages at the start of data (RFC 6455 section 5.2):\n"
"frames with FIN set, RSV bits 0, opcode text or binary, masked if and only if\n"
"mask_expected, a payload of max_size bytes at most (-1: no limit), entirely in data,\n"
"and for text valid UTF-8. Each is unmasked and appended to events as\n"
"text_message(str) or binary_message(bytes). Stops at the first frame that is anything\n"
"else and returns the number of bytes consumed: the general parser takes over there and\n"
"checks that frame fully.");

/* The events of parse_messages, built without calling their class where that gives the same
 * object: TextMessage and BinaryMessage are dataclasses with slots whose one field is
 * `data`, and their generated __init__ only sets that slot. Calling the class runs that
 * __init__ in Python, which costs more than parsing a small frame; allocating the instance
 * and setting the slot costs a tenth of it. Any other callable (str and bytes in tests, a
 * class with a __post_init__, more fields or no slots) is called.
 * Micro-optimisation: a message event per message received. */

#define EVENT_CLASSES 4

static struct {
    PyObject *cls;       /* strong reference */
    Py_ssize_t offset;   /* of the `data` slot; 0: call the class */
} event_classes[EVENT_CLASSES];

/* The offset of the `data` slot that builds an instance of `cls`, 0 if it must be called,
 * -1 on error. */
static Py_ssize_t
event_slot_of(PyObject *cls)
{
    PyTypeObject *type;
    PyObject *fields, *descr, *post_init;
    Py_ssize_t nfields;

    if (!PyType_Check(cls)) {
        return 0;
    }
    type = (PyTypeObject *)cls;
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_new != PyBaseObject_Type.tp_new
        || type->tp_alloc != PyType_GenericAlloc) {
        return 0;
    }
    fields = PyObject_GetAttrString(cls, "__dataclass_fields__");
    if (fields == NULL) {
        PyErr_Clear();
        return 0;
    }
    nfields = PyDict_Check(fields) ? PyDict_GET_SIZE(fields) : -1;
    descr = nfields == 1 ? PyDict_GetItemString(fields, "data") : NULL;
    Py_DECREF(fields);
    if (descr == NULL) {
        return 0;
    }
    post_init = PyObject_GetAttrString(cls, "__post_init__");
    if (post_init != NULL) {
        Py_DECREF(post_init);
        return 0;
    }
    PyErr_Clear();
    descr = PyDict_GetItemString(type->tp_dict, "data");
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        return 0;
    }
    {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != T_OBJECT_EX || member->offset <= 0) {
            return 0;
        }
        return member->offset;
    }
}

static PyObject *
new_event(PyObject *cls, PyObject *payload)
{
    Py_ssize_t offset = -1;
    int i;
    PyObject *event;

    for (i = 0; i < EVENT_CLASSES && event_classes[i].cls != NULL; i++) {
        if (event_classes[i].cls == cls) {
            offset = event_classes[i].offset;
            break;
        }
    }
    if (offset < 0) {
        offset = event_slot_of(cls);
        if (offset < 0) {
            return NULL;
        }
        if (i < EVENT_CLASSES) {
            Py_INCREF(cls);
            event_classes[i].cls = cls;
            event_classes[i].offset = offset;
        }
    }
    if (offset == 0) {
        return PyObject_CallOneArg(cls, payload);
    }
    event = ((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    if (event != NULL) {
        Py_INCREF(payload);
        *(PyObject **)((char *)event + offset) = payload;
    }
    return event;
}

/* max_size as the fast path reads it: -1 for no limit, which a negative value or one beyond
 * any payload length also means. Returns -1 with an exception set on error (a non-integer),
 * 0 otherwise. */
static int
read_max_size(PyObject *obj, long long *max_size)
{
    int overflow;
    *max_size = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (*max_size == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow != 0 || *max_size < 0) {
        *max_size = -1;
    }
    return 0;
}

/* The frame at buf[offset:len] as a message, if it is a whole unfragmented one: FIN set, no
 * RSV bit, text or binary, masked with mask_bit, at most max_size bytes (-1: no limit),
 * entirely in buf, and for text valid UTF-8. Returns the offset after it, with *message set
 * to a new reference: str for text, bytes for binary. Returns offset itself, with *message
 * NULL, when the frame is anything else, and -1 with an exception set on error. */
static Py_ssize_t
next_message(const unsigned char *buf, Py_ssize_t len, Py_ssize_t offset,
             unsigned char mask_bit, long long max_size, PyObject **message)
{
    const unsigned char *p = buf + offset;
    Py_ssize_t avail = len - offset, pos = 2;
    unsigned long long length;
    unsigned char key[4] = {0, 0, 0, 0};
    /* Text payloads are unmasked here before decoding; larger ones use the heap. */
    unsigned char stack[512];

    *message = NULL;
    if (avail < 2) {
        return offset;
    }
    /* FIN, no RSV, text (0x1) or binary (0x2). */
    if (p[0] != 0x81 && p[0] != 0x82) {
        return offset;
    }
    if ((p[1] & 0x80) != mask_bit) {
        return offset;
    }
    length = p[1] & 0x7F;
    if (length == 126) {
        if (avail < 4) {
            return offset;
        }
        length = ((unsigned long long)p[2] << 8) | p[3];
        pos = 4;
    }
    else if (length == 127) {
        int i;
        if (avail < 10) {
            return offset;
        }
        length = 0;
        for (i = 2; i < 10; i++) {
            length = (length << 8) | p[i];
        }
        pos = 10;
        if (length >> 63) {
            return offset;
        }
    }
    if (max_size >= 0 && length > (unsigned long long)max_size) {
        return offset;
    }
    if (mask_bit) {
        if (avail - pos < 4) {
            return offset;
        }
        memcpy(key, p + pos, 4);
        pos += 4;
    }
    if ((unsigned long long)(avail - pos) < length) {
        return offset;
    }

    if (p[0] == 0x82) {
        PyObject *payload = PyBytes_FromStringAndSize(mask_bit ? NULL : (const char *)p + pos,
                                                      (Py_ssize_t)length);
        if (payload == NULL) {
            return -1;
        }
        if (mask_bit) {
            xor_mask((unsigned char *)PyBytes_AS_STRING(payload), p + pos, (Py_ssize_t)length,
                     key);
        }
        *message = payload;
    }
    else {
        const char *text = (const char *)p + pos;
        unsigned char *scratch = NULL;
        if (mask_bit) {
            scratch = length <= sizeof(stack) ? stack : PyMem_Malloc((size_t)length);
            if (scratch == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            xor_mask(scratch, p + pos, (Py_ssize_t)length, key);
            text = (const char *)scratch;
        }
        *message = PyUnicode_DecodeUTF8(text, (Py_ssize_t)length, "strict");
        if (scratch != NULL && scratch != stack) {
            PyMem_Free(scratch);
        }
        if (*message == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                return -1;
            }
            /* Invalid UTF-8: the general parser fails the connection with 1007. */
            PyErr_Clear();
            return offset;
        }
    }
    return offset + pos + (Py_ssize_t)length;
}

/* What is done with each message of the fast path: 1 to go on, 0 to stop after it, -1 on
 * error. */
typedef int (*message_handler)(PyObject *message, PyObject *const *args);

/* The loop of parse_messages and deliver_messages over data[:size]: each whole message goes
 * to handle(message, args), which takes the reference. Returns the offset after the last
 * message handled, as an int, or NULL on error. */
static PyObject *
handle_messages(const char *func, PyObject *data, Py_ssize_t size, PyObject *mask_expected,
                PyObject *max_size_arg, message_handler handle, PyObject *const *args)
{
    PyObject *message;
    Py_buffer view;
    const unsigned char *buf;
    Py_ssize_t len, offset = 0, next = 0;
    long long max_size;
    int is_view, mask, go_on = 1;

    mask = PyObject_IsTrue(mask_expected);
    if (mask < 0 || read_max_size(max_size_arg, &max_size) < 0) {
        return NULL;
    }
    if (read_bytes_arg(data, &view, &is_view, &buf, &len, func, "data") < 0) {
        return NULL;
    }
    if (size >= 0 && size < len) {
        len = size;
    }
    while (go_on > 0
           && (next = next_message(buf, len, offset, mask ? 0x80 : 0, max_size, &message))
                  > offset) {
        /* Consumed before it is handled: whatever the handler does, this message is done. */
        offset = next;
        go_on = handle(message, args);
    }
    if (is_view) {
        PyBuffer_Release(&view);
    }
    if (go_on < 0 || next < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t(offset);
}

/* parse_messages: append the event of the message to args[1], built by args[4] for text
 * and args[5] for binary. */
static int
append_event(PyObject *message, PyObject *const *args)
{
    PyObject *event = new_event(PyUnicode_CheckExact(message) ? args[4] : args[5], message);
    int status;

    Py_DECREF(message);
    if (event == NULL) {
        return -1;
    }
    status = PyList_Append(args[1], event);
    Py_DECREF(event);
    return status < 0 ? -1 : 1;
}

static PyObject *
speedups_parse_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "parse_messages() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "parse_messages() argument 'events' must be a list");
        return NULL;
    }
    return handle_messages("parse_messages", args[0], -1, args[2], args[3], append_event,
                           args);
}

/* "All control frames MUST have a payload length of 125 bytes or less" (section 5.5). */
#define MAX_CLOSE_PAYLOAD 125

PyDoc_STRVAR(parse_close_doc,
"parse_close($module, data, mask_expected, /)\n"
"--\n"
"\n"
"The close frame at the start of data, if it is a whole valid one (RFC 6455 sections\n"
"5.5, 5.5.1, 7.4): FIN set, RSV bits 0, opcode close, masked if and only if\n"
"mask_expected, a payload of 0 or 2 to 125 bytes entirely in data, whose code may be\n"
"sent in a close frame and whose reason is valid UTF-8. Returns (code, reason,\n"
"payload), the payload unmasked, code 1005 for an empty payload; None for anything else,\n"
"which the general parser takes and checks fully. What follows the frame is ignored.");

/* Whether a close frame may carry `code` (RFC 6455 section 7.4.1, 7.4.2): those of 1000-2999
 * defined and not reserved for local use, and the registered and private ranges. */
static int
sendable_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}

static PyObject *
speedups_parse_close(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    const unsigned char *buf;
    Py_ssize_t len, length, pos = 2;
    unsigned char mask_bit, payload[MAX_CLOSE_PAYLOAD];
    unsigned code = 1005;
    PyObject *reason = NULL, *raw = NULL, *result = NULL;
    int is_view, mask;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "parse_close() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    mask = PyObject_IsTrue(args[1]);
    if (mask < 0) {
        return NULL;
    }
    mask_bit = mask ? 0x80 : 0;
    if (read_bytes_arg(args[0], &view, &is_view, &buf, &len, "parse_close", "data") < 0) {
        return NULL;
    }
    /* FIN, no RSV bit, opcode close; the mask bit as expected; 125 bytes at most (126 and
     * 127 announce an extended length); not the 1-byte payload that can't hold a code. */
    if (len < 2 || buf[0] != 0x88 || (buf[1] & 0x80) != mask_bit) {
        goto done;
    }
    length = buf[1] & 0x7F;
    if (length > MAX_CLOSE_PAYLOAD || length == 1) {
        goto done;
    }
    if (mask_bit) {
        pos += 4;
    }
    if (len - pos < length) {
        goto done;
    }
    if (mask_bit) {
        xor_mask(payload, buf + pos, length, buf + 2);
    }
    else {
        memcpy(payload, buf + pos, (size_t)length);
    }
    if (length >= 2) {
        code = ((unsigned)payload[0] << 8) | payload[1];
        if (!sendable_close_code(code)) {
            goto done;
        }
    }
    reason = PyUnicode_DecodeUTF8((const char *)payload + 2 * (length >= 2),
                                  length >= 2 ? length - 2 : 0, "strict");
    if (reason == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            /* The general parser fails the connection with 1007. */
            PyErr_Clear();
        }
        goto done;
    }
    raw = PyBytes_FromStringAndSize((const char *)payload, length);
    if (raw == NULL) {
        goto done;
    }
    result = Py_BuildValue("(IOO)", code, reason, raw);
done:
    Py_XDECREF(reason);
    Py_XDECREF(raw);
    if (is_view) {
        PyBuffer_Release(&view);
    }
    if (result == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return result;
}

/* Header fields by name                                                                  */

/* `name` in lowercase as str.lower() gives it: ASCII letters mapped here, anything else
 * through str.lower() (a non-ASCII character may lower to an ASCII one). A new reference;
 * `name` itself when it is lowercase already. NULL with an exception set on error. */
static PyObject *
lower_name(PyObject *name)
{
    const Py_UCS1 *s;
    Py_ssize_t i, n;
    PyObject *lowered;
    Py_UCS1 *d;

    if (!PyUnicode_Check(name)) {
        PyErr_SetString(PyExc_TypeError, "header field names must be str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(name)) {
        return PyObject_CallMethod(name, "lower", NULL);
    }
    s = PyUnicode_1BYTE_DATA(name);
    n = PyUnicode_GET_LENGTH(name);
    for (i = 0; i < n && !(s[i] >= 'A' && s[i] <= 'Z'); i++) {
    }
    if (i == n) {
        Py_INCREF(name);
        return name;
    }
    lowered = PyUnicode_New(n, 127);
    if (lowered == NULL) {
        return NULL;
    }
    d = PyUnicode_1BYTE_DATA(lowered);
    memcpy(d, s, (size_t)i);
    for (; i < n; i++) {
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (Py_UCS1)(s[i] + 32) : s[i];
    }
    return lowered;
}

/* The (name, value) pair at `index` of the list `items`, borrowed; -1 if it isn't one. */
static int
field_at(PyObject *items, Py_ssize_t index, PyObject **name, PyObject **value)
{
    PyObject *item = PyList_GET_ITEM(items, index);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, "header fields must be (name, value) pairs");
        return -1;
    }
    *name = PyTuple_GET_ITEM(item, 0);
    *value = PyTuple_GET_ITEM(item, 1);
    return 0;
}

PyDoc_STRVAR(field_values_doc,
"field_values($module, items, key, /)\n"
"--\n"
"\n"
"The values of the (name, value) pairs of the list items whose name.lower() is key, in\n"
"order: the lookup of one header field, names case-insensitive (RFC 9110 section 5.1).");

static PyObject *
speedups_field_values(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *items, *key, *values, *name, *value;
    Py_ssize_t i, size;
    int key_ascii;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "field_values() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    items = args[0];
    key = args[1];
    if (!PyList_Check(items) || !PyUnicode_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "field_values() takes a list and a str");
        return NULL;
    }
    key_ascii = PyUnicode_IS_ASCII(key);
    size = PyUnicode_GET_LENGTH(key);
    values = PyList_New(0);
    if (values == NULL) {
        return NULL;
    }
    for (i = 0; i < PyList_GET_SIZE(items); i++) {
        int match;
        if (field_at(items, i, &name, &value) < 0 || !PyUnicode_Check(name)) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "header field names must be str");
            }
            goto error;
        }
        if (PyUnicode_IS_ASCII(name)) {
            /* An ASCII name lowers to ASCII of the same length. */
            const Py_UCS1 *s = PyUnicode_1BYTE_DATA(name), *k;
            Py_ssize_t j;
            if (!key_ascii || PyUnicode_GET_LENGTH(name) != size) {
                continue;
            }
            k = PyUnicode_1BYTE_DATA(key);
            for (j = 0; j < size; j++) {
                Py_UCS1 c = s[j];
                if (c >= 'A' && c <= 'Z') {
                    c = (Py_UCS1)(c + 32);
                }
                if (c != k[j]) {
                    break;
                }
            }
            match = j == size;
        }
        else {
            PyObject *lowered = lower_name(name);
            if (lowered == NULL) {
                goto error;
            }
            match = PyUnicode_Compare(lowered, key) == 0;
            Py_DECREF(lowered);
            if (PyErr_Occurred()) {
                goto error;
            }
        }
        if (match && PyList_Append(values, value) < 0) {
            goto error;
        }
    }
    return values;
error:
    Py_DECREF(values);
    return NULL;
}

PyDoc_STRVAR(fields_by_name_doc,
"fields_by_name($module, items, /)\n"
"--\n"
"\n"
"Every value of the (name, value) pairs of the list items, in order, in a list by\n"
"name.lower(), the names in the order of their first pair.");

static PyObject *
speedups_fields_by_name(PyObject *module, PyObject *items)
{
    PyObject *fields, *name, *value, *key, *values;
    Py_ssize_t i;

    (void)module;
    if (!PyList_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "fields_by_name() takes a list");
        return NULL;
    }
    fields = PyDict_New();
    if (fields == NULL) {
        return NULL;
    }
    for (i = 0; i < PyList_GET_SIZE(items); i++) {
        if (field_at(items, i, &name, &value) < 0) {
            goto error;
        }
        key = lower_name(name);
        if (key == NULL) {
            goto error;
        }
        values = PyDict_GetItemWithError(fields, key);
        if (values != NULL) {
            Py_DECREF(key);
            if (PyList_Append(values, value) < 0) {
                goto error;
            }
            continue;
        }
        if (PyErr_Occurred()) {
            Py_DECREF(key);
            goto error;
        }
        values = PyList_New(1);
        if (values == NULL) {
            Py_DECREF(key);
            goto error;
        }
        Py_INCREF(value);
        PyList_SET_ITEM(values, 0, value);
        if (PyDict_SetItem(fields, key, values) < 0) {
            Py_DECREF(key);
            Py_DECREF(values);
            goto error;
        }
        Py_DECREF(key);
        Py_DECREF(values);
    }
    return fields;
error:
    Py_DECREF(fields);
    return NULL;
}

PyDoc_STRVAR(deliver_messages_doc,
"deliver_messages($module, data, size, deliver, mask_expected, max_size, /)\n"
"--\n"
"\n"
"Parse the whole unfragmented messages at the start of data[:size] (size: at most\n"
"len(data), as a BufferedProtocol's buffer_updated gives it) as parse_messages does and\n"
"call deliver(message) for each, str for text and bytes for binary, while it returns\n"
"true. Returns the number of bytes consumed: up to the end of the message that deliver\n"
"declined the rest after, or of the last message before a frame that is anything else.\n"
"An exception raised by deliver propagates.");

/* deliver_messages: call args[2] with the message; go on while it returns true. */
static int
call_deliver(PyObject *message, PyObject *const *args)
{
    PyObject *result = PyObject_CallOneArg(args[2], message);
    int go_on;

    Py_DECREF(message);
    if (result == NULL) {
        return -1;
    }
    go_on = result == Py_True ? 1 : PyObject_IsTrue(result);
    Py_DECREF(result);
    return go_on;
}

static PyObject *
speedups_deliver_messages(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;

    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "deliver_messages() takes 5 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "deliver_messages() size must not be negative");
        return NULL;
    }
    return handle_messages("deliver_messages", args[0], size, args[3], args[4], call_deliver,
                           args);
}

/* The buffer that large masked frames are built in (masked_join), reused as soon as no
 * view of the last one is left: a client that sends large messages then allocates no
 * block of their size per message, which glibc would hand back to the kernel and fault in
 * again, page by page. One for the process, as large as the largest frame built in it
 * (the callers keep that to a megabyte); NULL until first needed. */
static PyObject *masked_scratch;

/* header[:header_length], then payload[:length] XORed with key[:4] from its first octet
 * (section 5.3): a view of masked_scratch when the buffer is free (taking the view claims
 * it), else a new bytes object. */
static PyObject *
masked_join(const unsigned char *header, Py_ssize_t header_length,
            const unsigned char *payload, Py_ssize_t length, const unsigned char *key)
{
    Py_ssize_t total = header_length + length;
    PyObject *result, *whole, *stop, *bounds;
    unsigned char *out;

    if (masked_scratch == NULL || ((PyByteArrayObject *)masked_scratch)->ob_exports == 0) {
        if (masked_scratch == NULL) {
            masked_scratch = PyByteArray_FromStringAndSize(NULL, 0);
            if (masked_scratch == NULL) {
                return NULL;
            }
        }
        /* Never shrunk: messages of mixed sizes reuse the same block. */
        if (PyByteArray_GET_SIZE(masked_scratch) < total
            && PyByteArray_Resize(masked_scratch, total) < 0) {
            return NULL;
        }
        whole = PyMemoryView_FromObject(masked_scratch);
        if (whole == NULL) {
            return NULL;
        }
        stop = PyLong_FromSsize_t(total);
        bounds = stop == NULL ? NULL : PySlice_New(NULL, stop, NULL);
        result = bounds == NULL ? NULL : PyObject_GetItem(whole, bounds);
        Py_XDECREF(stop);
        Py_XDECREF(bounds);
        Py_DECREF(whole);
        if (result == NULL) {
            return NULL;
        }
        out = (unsigned char *)PyByteArray_AS_STRING(masked_scratch);
    }
    else {
        result = PyBytes_FromStringAndSize(NULL, total);
        if (result == NULL) {
            return NULL;
        }
        out = (unsigned char *)PyBytes_AS_STRING(result);
    }
    memcpy(out, header, (size_t)header_length);
    if (length > RELEASE_GIL_THRESHOLD) {
        /* Safe without the GIL: the result, a new object or a view that holds the buffer
         * claimed, isn't visible to any other thread yet. */
        Py_BEGIN_ALLOW_THREADS
        xor_mask(out + header_length, payload, length, key);
        Py_END_ALLOW_THREADS
    }
    else {
        xor_mask(out + header_length, payload, length, key);
    }
    return result;
}

PyDoc_STRVAR(join_masked_doc,
"join_masked($module, header, payload, mask, /)\n"
"--\n"
"\n"
"header, then payload XORed with the 4-byte mask (RFC 6455 section 5.3): a large frame\n"
"or a piece of one that a client sends. The result is a memoryview of a buffer that the\n"
"next call reuses once no view of it is left; new bytes while the buffer is in use.");

static PyObject *
speedups_join_masked(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer views[3];
    int i;
    PyObject *result = NULL;
    static const char *const names[] = {"header", "payload", "mask"};

    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "join_masked() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    for (i = 0; i < 3; i++) {
        if (get_bytes_view(args[i], &views[i], "join_masked", names[i]) < 0) {
            while (--i >= 0) {
                PyBuffer_Release(&views[i]);
            }
            return NULL;
        }
    }
    if (views[2].len != 4) {
        PyErr_Format(PyExc_ValueError, "join_masked() mask must be 4 bytes long, not %zd",
                     views[2].len);
    }
    else {
        result = masked_join((const unsigned char *)views[0].buf, views[0].len,
                             (const unsigned char *)views[1].buf, views[1].len,
                             (const unsigned char *)views[2].buf);
    }
    for (i = 0; i < 3; i++) {
        PyBuffer_Release(&views[i]);
    }
    return result;
}

/* The size of a frame's header with the shortest length encoding for length bytes
 * (RFC 6455 section 5.2), with the masking key's 4 bytes if masked (section 5.3). */
static Py_ssize_t
header_size(Py_ssize_t length, int masked)
{
    return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0);
}

/* The header of a frame of length bytes (header_size), first byte first (FIN, RSV and
 * opcode), ending with mask[:4] unless it is NULL: written at out (14 bytes at most), its
 * size returned. */
static Py_ssize_t
write_header(unsigned char *out, unsigned char first, Py_ssize_t length,
             const unsigned char *mask)
{
    Py_ssize_t header = header_size(length, mask != NULL);
    unsigned char mask_bit = mask != NULL ? 0x80 : 0;

    out[0] = first;
    if (length < 126) {
        out[1] = mask_bit | (unsigned char)length;
    }
    else if (length < 65536) {
        out[1] = mask_bit | 126;
        out[2] = (unsigned char)(length >> 8);
        out[3] = (unsigned char)length;
    }
    else {
        int i;
        unsigned long long value = (unsigned long long)length;
        out[1] = mask_bit | 127;
        for (i = 9; i >= 2; i--) {
            out[i] = (unsigned char)value;
            value >>= 8;
        }
    }
    if (mask != NULL) {
        memcpy(out + header - 4, mask, 4);
    }
    return header;
}

/* A frame of payload[:length], its header as write_header writes it, masked with mask[:4]
 * unless it is NULL, in a single allocation. */
static PyObject *
new_frame(unsigned char first, const unsigned char *payload, Py_ssize_t length,
          const unsigned char *mask)
{
    Py_ssize_t header;
    PyObject *result;
    unsigned char *out;

    header = header_size(length, mask != NULL);
    result = PyBytes_FromStringAndSize(NULL, header + length);
    if (result == NULL) {
        return NULL;
    }
    out = (unsigned char *)PyBytes_AS_STRING(result);
    write_header(out, first, length, mask);
    if (mask != NULL) {
        xor_mask(out + header, payload, length, mask);
    }
    else {
        memcpy(out + header, payload, (size_t)length);
    }
    return result;
}

PyDoc_STRVAR(serialize_frame_doc,
"serialize_frame($module, /, opcode, payload, fin=True, rsv=0, mask=None)\n"
"--\n"
"\n"
"Serialize one frame with the shortest length encoding (RFC 6455 section 5.2), masked\n"
"with the 4-byte mask when one is given (section 5.3), in a single allocation.");

static PyObject *
speedups_serialize_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    static const char *const names[] = {"opcode", "payload", "fin", "rsv", "mask"};
    PyObject *bound[5];
    Py_buffer payload_view, mask_view;
    const unsigned char *payload, *mask = NULL;
    Py_ssize_t length, mask_length = 0;
    long opcode, rsv = 0, first;
    int fin = 1, overflow = 0, payload_is_view, mask_is_view = 0;
    PyObject *result;

    (void)module;
    if (bind_args("serialize_frame", names, 5, args, nargs, kwnames, bound) < 0) {
        return NULL;
    }
    if (bound[0] == NULL || bound[1] == NULL) {
        PyErr_Format(PyExc_TypeError, "serialize_frame() missing required argument '%s'",
                     bound[0] == NULL ? "opcode" : "payload");
        return NULL;
    }
    opcode = PyLong_AsLongAndOverflow(bound[0], &overflow);
    if (opcode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (bound[2] != NULL && (fin = PyObject_IsTrue(bound[2])) < 0) {
        return NULL;
    }
    if (bound[3] != NULL && !overflow) {
        rsv = PyLong_AsLongAndOverflow(bound[3], &overflow);
        if (rsv == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    first = (fin ? 0x80 : 0) | rsv | opcode;
    if (overflow || opcode < 0 || rsv < 0 || first > 0xFF) {
        PyErr_SetString(PyExc_ValueError, "serialize_frame() opcode and rsv must fit in a byte");
        return NULL;
    }
    if (bound[4] != NULL && bound[4] != Py_None) {
        if (read_bytes_arg(bound[4], &mask_view, &mask_is_view, &mask, &mask_length,
                           "serialize_frame", "mask") < 0) {
            return NULL;
        }
        if (mask_length != 4) {
            PyErr_Format(PyExc_ValueError,
                         "serialize_frame() mask must be 4 bytes long, not %zd", mask_length);
            if (mask_is_view) {
                PyBuffer_Release(&mask_view);
            }
            return NULL;
        }
    }
    if (read_bytes_arg(bound[1], &payload_view, &payload_is_view, &payload, &length,
                       "serialize_frame", "payload") < 0) {
        if (mask_is_view) {
            PyBuffer_Release(&mask_view);
        }
        return NULL;
    }
    result = new_frame((unsigned char)first, payload, length, mask);
    if (payload_is_view) {
        PyBuffer_Release(&payload_view);
    }
    if (mask_is_view) {
        PyBuffer_Release(&mask_view);
    }
    return result;
}

/* ---- Protocol.send_message and Protocol.receive_messages ----------------------------- */

#define MAX_SLOTS 6

/* Where a class keeps the slots that a method twin reads, found for the last class seen:
 * each is then read at its offset in the object, as its member descriptor reads it, without
 * looking the name up in the class at each call. usable is 0 when one of them isn't a plain
 * object slot there. */
typedef struct {
    const char *const names[MAX_SLOTS];
    int count;
    PyTypeObject *type; /* a strong reference: its address can't be reused */
    int usable;
    Py_ssize_t offsets[MAX_SLOTS];
} slot_layout;

/* The slots that the twin of send_message reads, in this order. */
static slot_layout send_slots = {
    {"_writes", "_sending_fragments", "state", "extensions", "side", "random_bytes"},
    6, NULL, 0, {0},
};
/* The slots that the twin of receive_messages reads, and the one of its reader. */
static slot_layout receive_slots = {
    {"_between_messages", "_reader", "side", "max_size"}, 4, NULL, 0, {0},
};
static slot_layout reader_slots = {{"buffer"}, 1, NULL, 0, {0}};

/* Read the slots of obj into values (borrowed), looking up its class's layout when it is
 * another class than the last one. Returns 0 when they can't be read that way (the general
 * path then reads them), 1 otherwise, -1 on error. */
static int
read_slots(slot_layout *layout, PyObject *obj, PyObject **values)
{
    PyTypeObject *type = Py_TYPE(obj);
    int i;

    if (layout->type != type) {
        Py_XSETREF(layout->type, (PyTypeObject *)Py_NewRef(type));
        layout->usable = 1;
        for (i = 0; i < layout->count; i++) {
            PyObject *name = PyUnicode_InternFromString(layout->names[i]);
            PyObject *descr;

            if (name == NULL) {
                Py_CLEAR(layout->type);
                return -1;
            }
            /* The class's attribute: a slot's member descriptor itself. */
            descr = PyObject_GetAttr((PyObject *)type, name);
            Py_DECREF(name);
            if (descr == NULL) {
                PyErr_Clear();
            }
            layout->usable = descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)
                             && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
            if (layout->usable) {
                layout->offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
            }
            Py_XDECREF(descr);
            if (!layout->usable) {
                break;
            }
        }
    }
    if (!layout->usable) {
        return 0;
    }
    for (i = 0; i < layout->count; i++) {
        values[i] = *(PyObject **)((char *)obj + layout->offsets[i]);
        if (values[i] == NULL) {
            return 0; /* unset: the general path raises AttributeError */
        }
    }
    return 1;
}

/* Whether obj is an empty list; anything else is for the general path to judge. */
#define EMPTY_LIST(obj) (PyList_CheckExact(obj) && PyList_GET_SIZE(obj) == 0)

/* A client's frame: first byte first, masked with the key that random_bytes(4) draws
 * (section 5.3, a fresh key per frame). A key that isn't 4 bytes goes to serialize_frame,
 * as the reference hands it over, to be judged there. */
static PyObject *
new_client_frame(unsigned char first, PyObject *data, PyObject *random_bytes, int reuse)
{
    PyObject *four = PyLong_FromLong(4), *key, *frame;
    const unsigned char *payload = (const unsigned char *)PyBytes_AS_STRING(data), *mask;
    unsigned char head[14];

    if (four == NULL) {
        return NULL;
    }
    key = PyObject_Vectorcall(random_bytes, &four, 1, NULL);
    Py_DECREF(four);
    if (key == NULL) {
        return NULL;
    }
    if (PyBytes_CheckExact(key) && PyBytes_GET_SIZE(key) == 4) {
        mask = (const unsigned char *)PyBytes_AS_STRING(key);
        frame = reuse ? masked_join(head, write_header(head, first, PyBytes_GET_SIZE(data), mask),
                                    payload, PyBytes_GET_SIZE(data), mask)
                      : new_frame(first, payload, PyBytes_GET_SIZE(data), mask);
    }
    else {
        PyObject *args[5] = {PyLong_FromLong(first & 0x0f), data, Py_True, NULL, key};

        args[3] = PyLong_FromLong(0);
        frame = args[0] == NULL || args[3] == NULL
                    ? NULL
                    : speedups_serialize_frame(NULL, args, 5, NULL);
        Py_XDECREF(args[0]);
        Py_XDECREF(args[3]);
    }
    Py_DECREF(key);
    return frame;
}

/* send_message(self, data, text, compress=None), bound to the protocol as a method: twin is
 * (reference, OPEN, CLIENT, SEPARATE_PAYLOAD, MASKED_PIECE), the Python method and the
 * values it compares with. The common case -- open, nothing queued, no fragmented message
 * under way, no extension, bytes (a server's under SEPARATE_PAYLOAD, a client's of
 * MASKED_PIECE at most, built from SEPARATE_PAYLOAD on by masked_join) -- builds the frame
 * here; every other case, and every other type of argument, goes to the reference. */
static PyObject *
protocol_send_message(PyObject *twin, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames)
{
    PyObject *reference = PyTuple_GET_ITEM(twin, 0);
    PyObject *slots[MAX_SLOTS], *data, *text;
    Py_ssize_t length, separate, masked_piece;
    unsigned char first;
    int readable, client;

    if (kwnames != NULL || nargs < 3 || nargs > 4 || !PyBytes_CheckExact(args[1])) {
        goto general;
    }
    readable = read_slots(&send_slots, args[0], slots);
    if (readable < 0) {
        return NULL;
    }
    data = args[1];
    text = args[2];
    if (readable == 0 || !EMPTY_LIST(slots[0]) || slots[1] != Py_False
        || slots[2] != PyTuple_GET_ITEM(twin, 1) || !EMPTY_LIST(slots[3])
        || (text != Py_True && text != Py_False)) {
        goto general;
    }
    /* FIN, no RSV bit, text (0x1) or binary (0x2). */
    first = text == Py_True ? 0x81 : 0x82;
    length = PyBytes_GET_SIZE(data);
    client = slots[4] == PyTuple_GET_ITEM(twin, 2);
    separate = PyLong_AsSsize_t(PyTuple_GET_ITEM(twin, 3));
    masked_piece = PyLong_AsSsize_t(PyTuple_GET_ITEM(twin, 4));
    if ((separate == -1 || masked_piece == -1) && PyErr_Occurred()) {
        return NULL;
    }
    /* A larger payload is written apart from its header, as the reference queues it: a
     * server's as it is, a client's masked a piece at a time. */
    if (client ? length > masked_piece : length >= separate) {
        goto general;
    }
    if (client) {
        /* From separate on, built in the buffer reused between large frames. */
        return new_client_frame(first, data, slots[5], length >= separate);
    }
    /* Unmasked: a server's (section 5.1). */
    return new_frame(first, (const unsigned char *)PyBytes_AS_STRING(data), length, NULL);
general:
    return PyObject_Vectorcall(reference, args, (size_t)nargs, kwnames);
}


PyDoc_STRVAR(send_message_twin_doc,
"send_message_twin($module, reference, open, client, separate_payload, masked_piece, /)\n"
"--\n"
"\n"
"The C twin of Protocol.send_message (reference, the Python method), as a method of the\n"
"class: the common case of a message -- state open, nothing queued, no fragmented\n"
"message under way, no extension, bytes (a server's under separate_payload, a client's\n"
"of masked_piece at most) -- is built here as serialize_frame builds it, a client's\n"
"masked with random_bytes(4); every other case calls reference. open and client are the\n"
"State and the Side that the reference compares with.");

/* A method twin: a C function that a class holds as a method, which gets the instance
 * first in its arguments, as a function defined in the class does (and, being a method
 * descriptor, without a bound method made at each call). twin holds the reference, the
 * Python method, first: the twin answers for it (__doc__, __name__, __wrapped__...). */
typedef PyObject *(*twin_function)(PyObject *twin, PyObject *const *args, Py_ssize_t nargs,
                                   PyObject *kwnames);

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    twin_function function;
    PyObject *twin;
} MethodTwinObject;

static PyObject *
method_twin_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    MethodTwinObject *method = (MethodTwinObject *)self;
    return method->function(method->twin, args, PyVectorcall_NARGS(nargsf), kwnames);
}

static PyObject *
method_twin_get(PyObject *self, PyObject *obj, PyObject *type)
{
    (void)type;
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

/* An attribute of the reference, closure naming it. */
static PyObject *
method_twin_reference_attribute(PyObject *self, void *closure)
{
    return PyObject_GetAttrString(PyTuple_GET_ITEM(((MethodTwinObject *)self)->twin, 0),
                                  (const char *)closure);
}

static PyObject *
method_twin_wrapped(PyObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(PyTuple_GET_ITEM(((MethodTwinObject *)self)->twin, 0));
}

static PyGetSetDef method_twin_getset[] = {
    {"__doc__", method_twin_reference_attribute, NULL, NULL, "__doc__"},
    {"__name__", method_twin_reference_attribute, NULL, NULL, "__name__"},
    {"__qualname__", method_twin_reference_attribute, NULL, NULL, "__qualname__"},
    {"__module__", method_twin_reference_attribute, NULL, NULL, "__module__"},
    {"__wrapped__", method_twin_wrapped, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static int
method_twin_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((MethodTwinObject *)self)->twin);
    return 0;
}

static int
method_twin_clear(PyObject *self)
{
    Py_CLEAR(((MethodTwinObject *)self)->twin);
    return 0;
}

static void
method_twin_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    method_twin_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject MethodTwinType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsio._speedups.MethodTwin",
    .tp_basicsize = sizeof(MethodTwinObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR
                | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(MethodTwinObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = method_twin_get,
    .tp_getset = method_twin_getset,
    .tp_traverse = method_twin_traverse,
    .tp_clear = method_twin_clear,
    .tp_dealloc = method_twin_dealloc,
};

/* A method twin of function over twin (stolen; NULL: an error already set). */
static PyObject *
method_twin(PyObject *twin, twin_function function)
{
    MethodTwinObject *method;

    if (twin == NULL) {
        return NULL;
    }
    method = PyObject_GC_New(MethodTwinObject, &MethodTwinType);
    if (method == NULL) {
        Py_DECREF(twin);
        return NULL;
    }
    method->vectorcall = method_twin_vectorcall;
    method->function = function;
    method->twin = twin;
    PyObject_GC_Track(method);
    return (PyObject *)method;
}

static PyObject *
speedups_send_message_twin(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{

    (void)module;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "send_message_twin() takes 5 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (!PyCallable_Check(args[0]) || !PyLong_Check(args[3]) || !PyLong_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "send_message_twin() takes a callable and int "
                                         "separate_payload and masked_piece");
        return NULL;
    }
    return method_twin(PyTuple_Pack(5, args[0], args[1], args[2], args[3], args[4]),
                       protocol_send_message);
}

/* receive_messages(self, buffer, size, deliver), bound to the protocol as a method: twin is
 * (reference, SERVER), the Python method and the side it compares with. Between messages,
 * with nothing buffered in the reader (a bytearray), the whole messages at the start of
 * buffer[:size] go to deliver as deliver_messages hands them over, and the rest to
 * self.receive_data; every other case, and every other type of argument, goes to the
 * reference. */
static PyObject *
protocol_receive_messages(PyObject *twin, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *reference = PyTuple_GET_ITEM(twin, 0);
    PyObject *slots[MAX_SLOTS], *reader_buffer, *deliver_args[5], *consumed, *view, *rest;
    PyObject *slice, *result;
    Py_ssize_t size;
    int readable;

    if (kwnames != NULL || nargs != 4 || !PyLong_CheckExact(args[2])) {
        goto general;
    }
    readable = read_slots(&receive_slots, args[0], slots);
    if (readable > 0 && slots[0] == Py_True) {
        readable = read_slots(&reader_slots, slots[1], &reader_buffer);
    }
    if (readable < 0) {
        return NULL;
    }
    if (readable == 0 || slots[0] != Py_True || !PyByteArray_CheckExact(reader_buffer)
        || PyByteArray_GET_SIZE(reader_buffer) != 0) {
        goto general;
    }
    size = PyLong_AsSsize_t(args[2]);
    if (size < 0) {
        /* Negative or too large: the reference raises what deliver_messages raises. */
        PyErr_Clear();
        goto general;
    }
    /* deliver_messages(buffer, size, deliver, mask_expected, max_size) */
    deliver_args[0] = args[1];
    deliver_args[1] = args[2];
    deliver_args[2] = args[3];
    deliver_args[3] = slots[2] == PyTuple_GET_ITEM(twin, 1) ? Py_True : Py_False;
    deliver_args[4] = slots[3] == Py_None ? PyTuple_GET_ITEM(twin, 2) : slots[3];
    consumed = handle_messages("deliver_messages", args[1], size, deliver_args[3],
                               deliver_args[4], call_deliver, deliver_args);
    if (consumed == NULL) {
        return NULL;
    }
    if (PyLong_AsSsize_t(consumed) == size) {
        Py_DECREF(consumed);
        Py_RETURN_TRUE;
    }
    /* self.receive_data(memoryview(buffer)[consumed:size]) */
    view = PyMemoryView_FromObject(args[1]);
    slice = view == NULL ? NULL : PySlice_New(consumed, args[2], NULL);
    Py_DECREF(consumed);
    rest = slice == NULL ? NULL : PyObject_GetItem(view, slice);
    Py_XDECREF(slice);
    Py_XDECREF(view);
    if (rest == NULL) {
        return NULL;
    }
    result = PyObject_CallMethodOneArg(args[0], PyTuple_GET_ITEM(twin, 3), rest);
    Py_DECREF(rest);
    if (result == NULL) {
        return NULL;
    }
    Py_DECREF(result);
    Py_RETURN_FALSE;
general:
    return PyObject_Vectorcall(reference, args, (size_t)nargs, kwnames);
}


PyDoc_STRVAR(receive_messages_twin_doc,
"receive_messages_twin($module, reference, server, /)\n"
"--\n"
"\n"
"The C twin of Protocol.receive_messages (reference, the Python method), as a method of\n"
"the class: between messages, with nothing buffered, the whole messages at the start of\n"
"the buffer go to deliver from here, as deliver_messages hands them over; every other\n"
"case calls reference. server is the Side that the reference compares with.");

static PyObject *
speedups_receive_messages_twin(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *twin, *no_limit, *receive_data;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "receive_messages_twin() takes 2 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (!PyCallable_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "receive_messages_twin() takes a callable");
        return NULL;
    }
    no_limit = PyLong_FromLong(-1);
    receive_data = PyUnicode_InternFromString("receive_data");
    twin = no_limit == NULL || receive_data == NULL
               ? NULL
               : PyTuple_Pack(4, args[0], args[1], no_limit, receive_data);
    Py_XDECREF(no_limit);
    Py_XDECREF(receive_data);
    return method_twin(twin, protocol_receive_messages);
}

/* ---- PayloadBuffer ------------------------------------------------------------------ */

/* The payload of one large frame, assembled as it arrives: each piece is unmasked straight
 * into the bytes object that the application will get, so a payload is copied once in
 * user space instead of going through a receive buffer, a slice, an unmasked copy, a
 * message buffer and a final bytes(). An I/O layer may even have the kernel write the
 * payload there, with no copy at all: prepare() is a view of the part not yet filled, and
 * commit(n) unmasks the n bytes read into it and counts them.
 *
 * The bytes object grows with what arrives, to four times what came plus PAYLOAD_INITIAL,
 * never to the declared length at once: a peer declaring a large frame must send a quarter
 * of what it makes the server allocate (less PAYLOAD_INITIAL). It is private until finish()
 * hands it over, so writing into it is safe: nothing else holds a reference but the views
 * that prepare() made, each of which holds the bytes object alive while it exists. It
 * does not grow while a view exists (BufferError): the view would point into the old
 * memory. */

#define PAYLOAD_INITIAL (64 * 1024) /* wsio.protocol.masking.PAYLOAD_INITIAL */

typedef struct {
    PyObject_HEAD
    PyObject *data;        /* bytes of `capacity` bytes, the first `filled` written */
    Py_ssize_t length;     /* declared payload length */
    Py_ssize_t filled;
    Py_ssize_t capacity;
    unsigned char mask[4];
    int masked;
    Py_ssize_t exports;    /* views of the unfilled part alive */
} PayloadBufferObject;

/* The capacity once `received` bytes of the payload have come: four times that plus
 * PAYLOAD_INITIAL, at most the declared length. */
static Py_ssize_t
payload_capacity(PayloadBufferObject *self, Py_ssize_t received)
{
    if (self->length <= PAYLOAD_INITIAL || received > (self->length - PAYLOAD_INITIAL) / 4) {
        return self->length;
    }
    return 4 * received + PAYLOAD_INITIAL;
}

static int
payload_grow(PayloadBufferObject *self, Py_ssize_t capacity)
{
    if (self->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "PayloadBuffer can't grow while a view exists");
        return -1;
    }
    if (_PyBytes_Resize(&self->data, capacity) < 0) {
        /* _PyBytes_Resize freed the object and set the pointer to NULL. */
        return -1;
    }
    self->capacity = capacity;
    return 0;
}

static PyObject *
payload_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PayloadBufferObject *self;
    Py_ssize_t length;
    PyObject *mask = Py_None;
    static char *kwlist[] = {"length", "mask", NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n|O:PayloadBuffer", kwlist, &length,
                                     &mask)) {
        return NULL;
    }
    if (length < 0) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer() length must be >= 0");
        return NULL;
    }
    self = (PayloadBufferObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->length = length;
    if (mask != Py_None) {
        Py_buffer view;
        if (get_bytes_view(mask, &view, "PayloadBuffer", "mask") < 0) {
            Py_DECREF(self);
            return NULL;
        }
        if (view.len != 4) {
            PyErr_Format(PyExc_ValueError, "PayloadBuffer() mask must be 4 bytes long, not %zd",
                         view.len);
            PyBuffer_Release(&view);
            Py_DECREF(self);
            return NULL;
        }
        memcpy(self->mask, view.buf, 4);
        PyBuffer_Release(&view);
        self->masked = 1;
    }
    self->capacity = payload_capacity(self, 0);
    self->data = PyBytes_FromStringAndSize(NULL, self->capacity);
    if (self->data == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
payload_dealloc(PyObject *op)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;
    Py_XDECREF(self->data);
    Py_TYPE(op)->tp_free(op);
}

PyDoc_STRVAR(payload_write_doc,
"write($self, data, /)\n"
"--\n"
"\n"
"Append the start of data, unmasked, up to the declared length; return how many bytes\n"
"were taken.");

static PyObject *
payload_write(PyObject *op, PyObject *data)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;
    Py_buffer view;
    const unsigned char *src;
    Py_ssize_t len, n;
    int is_view;

    if (self->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer is finished");
        return NULL;
    }
    if (read_bytes_arg(data, &view, &is_view, &src, &len, "write", "data") < 0) {
        return NULL;
    }
    n = self->length - self->filled;
    if (len < n) {
        n = len;
    }
    if (self->filled + n > self->capacity
        && payload_grow(self, payload_capacity(self, self->filled + n)) < 0) {
        if (is_view) {
            PyBuffer_Release(&view);
        }
        return NULL;
    }
    if (n > 0) {
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(self->data) + self->filled;
        if (self->masked) {
            unsigned char key[4];
            unsigned i;
            for (i = 0; i < 4; i++) {
                key[i] = self->mask[(i + (unsigned)self->filled) & 3];
            }
            xor_mask(dst, src, n, key);
        }
        else {
            memcpy(dst, src, (size_t)n);
        }
        self->filled += n;
    }
    if (is_view) {
        PyBuffer_Release(&view);
    }
    return PyLong_FromSsize_t(n);
}

PyDoc_STRVAR(payload_finish_doc,
"finish($self, /)\n"
"--\n"
"\n"
"Return the complete payload as bytes; only once, and only when complete.");

static PyObject *
payload_finish(PyObject *op, PyObject *unused)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;
    PyObject *result;

    (void)unused;
    if (self->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer is finished");
        return NULL;
    }
    if (self->filled != self->length) {
        PyErr_Format(PyExc_ValueError, "PayloadBuffer has %zd of %zd bytes", self->filled,
                     self->length);
        return NULL;
    }
    result = self->data;
    self->data = NULL;
    return result;
}

PyDoc_STRVAR(payload_prepare_doc,
"prepare($self, /)\n"
"--\n"
"\n"
"A writable memoryview of the part of the payload not yet filled, grown first if\n"
"less than half is free: where the next bytes of the stream may be read in place;\n"
"commit(n) then counts the first n. Empty once the payload is complete.");

static PyObject *
payload_prepare(PyObject *op, PyObject *unused)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;

    (void)unused;
    if (self->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer is finished");
        return NULL;
    }
    /* Grown once less than half is free: at least twice as large each time, so that the
     * reads into it stay large and the reallocations few. */
    if (self->filled > self->capacity / 2 && self->capacity < self->length
        && payload_grow(self, payload_capacity(self, self->filled)) < 0) {
        return NULL;
    }
    return PyMemoryView_FromObject(op);
}

PyDoc_STRVAR(payload_commit_doc,
"commit($self, nbytes, /)\n"
"--\n"
"\n"
"Count the first nbytes of the last prepare() view as written, unmasking them in place.");

static PyObject *
payload_commit(PyObject *op, PyObject *arg)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;
    Py_ssize_t n;

    if (self->data == NULL) {
        PyErr_SetString(PyExc_ValueError, "PayloadBuffer is finished");
        return NULL;
    }
    n = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0 || n > self->capacity - self->filled) {
        PyErr_Format(PyExc_ValueError, "commit() of %zd bytes, with %zd prepared", n,
                     self->capacity - self->filled);
        return NULL;
    }
    if (self->masked && n > 0) {
        unsigned char *start = (unsigned char *)PyBytes_AS_STRING(self->data) + self->filled;
        unsigned char key[4];
        unsigned i;
        for (i = 0; i < 4; i++) {
            key[i] = self->mask[(i + (unsigned)self->filled) & 3];
        }
        xor_mask(start, start, n, key);
    }
    self->filled += n;
    Py_RETURN_NONE;
}

/* The buffer protocol: the unfilled part, writable. The view holds the bytes object
 * (internal) so that its memory outlives finish() for as long as the view does. */
static int
payload_getbuffer(PyObject *op, Py_buffer *view, int flags)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;
    PyObject *data = self->data;

    if (data == NULL) {
        PyErr_SetString(PyExc_BufferError, "PayloadBuffer is finished");
        view->obj = NULL;
        return -1;
    }
    if (PyBuffer_FillInfo(view, op, PyBytes_AS_STRING(data) + self->filled,
                          self->capacity - self->filled, 0, flags) < 0) {
        return -1;
    }
    view->internal = Py_NewRef(data);
    self->exports++;
    return 0;
}

static void
payload_releasebuffer(PyObject *op, Py_buffer *view)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;

    Py_XDECREF((PyObject *)view->internal);
    self->exports--;
}

static PyBufferProcs payload_as_buffer = {
    .bf_getbuffer = payload_getbuffer,
    .bf_releasebuffer = payload_releasebuffer,
};

static PyObject *
payload_get_remaining(PyObject *op, void *closure)
{
    PayloadBufferObject *self = (PayloadBufferObject *)op;
    (void)closure;
    return PyLong_FromSsize_t(self->length - self->filled);
}

static PyMethodDef payload_methods[] = {
    {"write", payload_write, METH_O, payload_write_doc},
    {"finish", payload_finish, METH_NOARGS, payload_finish_doc},
    {"prepare", payload_prepare, METH_NOARGS, payload_prepare_doc},
    {"commit", payload_commit, METH_O, payload_commit_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef payload_getset[] = {
    {"remaining", payload_get_remaining, NULL, "Bytes still expected.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(payload_doc,
"PayloadBuffer(length, mask=None)\n"
"--\n"
"\n"
"The payload of a frame of the declared length, unmasked with the 4-byte mask if given\n"
"(RFC 6455 section 5.3) as pieces are written, then handed over as bytes by finish().");

static PyTypeObject PayloadBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsio._speedups.PayloadBuffer",
    .tp_basicsize = sizeof(PayloadBufferObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = payload_doc,
    .tp_methods = payload_methods,
    .tp_getset = payload_getset,
    .tp_new = payload_new,
    .tp_dealloc = payload_dealloc,
    .tp_as_buffer = &payload_as_buffer,
};

/* ------------------------------------------------------------------------------------ */
/* Waiter                                                                                */
/* ------------------------------------------------------------------------------------ */

/* A future-like object (asyncio.isfuture) that a task awaits for the next message and that
 * the connection resumes where the message was read: the task's step runs inside the read
 * callback rather than a turn of the loop later. The reference and the fallback is
 * wsio.asyncio.waiter.PythonWaiter, whose module's docstring says why and when it is safe.
 *
 * An asyncio.Task awaiting it sees _asyncio_future_blocking set, checks get_loop(), then
 * registers its wake-up with add_done_callback(wakeup, context=...); on the wake-up it calls
 * result(). cancel() (Task.cancel) and callbacks added after completion go through
 * loop.call_soon, as with asyncio.Future. */

enum { WAITER_PENDING, WAITER_DONE, WAITER_CANCELLED };

typedef struct {
    PyObject_HEAD
    PyObject *loop;
    /* The first callback and its context, where there is one (the task's wake-up); any
     * others in `more`, a list of (callback, context) tuples. */
    PyObject *callback;
    PyObject *context;
    PyObject *more;
    PyObject *cancel_message;
    char state;
    char blocking;
    char yielded;
} WaiterObject;

static PyTypeObject WaiterType;

/* What the waiter needs from asyncio, looked up once, on first use. Process-wide, as the
 * module is (single-phase initialisation): not for use from several interpreters. */
static PyObject *asyncio_current_task;
/* asyncio.tasks._current_tasks, where asyncio.current_task is the Python function that
 * reads it (Python 3.11): read here directly, without a frame of Python. NULL elsewhere. */
static PyObject *asyncio_current_tasks;
static PyObject *asyncio_get_running_loop;
static PyObject *asyncio_cancelled_error;
static PyObject *asyncio_invalid_state_error;
static PyObject *str_call_soon;
static PyObject *str_call_exception_handler;
static PyObject *kwnames_context;
static PyObject *waiter_reraise_function;

/* The current exception, taken out of the error indicator, normalized. */
static PyObject *
take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value != NULL && traceback != NULL) {
        PyException_SetTraceback(value, traceback);
    }
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    return value;
#endif
}

/* Scheduled by resume() to raise, from a handle of the loop, a KeyboardInterrupt or a
 * SystemExit that a callback raised: the loop stops with it there, whichever loop it is
 * (uvloop catches everything that a transport's callback raises). */
static PyObject *
waiter_reraise(PyObject *module, PyObject *exc)
{
    (void)module;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    return NULL;
}

static PyMethodDef waiter_reraise_def = {"_reraise", waiter_reraise, METH_O, NULL};

/* Sets asyncio_current_tasks to asyncio.tasks._current_tasks if current_task is the Python
 * function that reads it; leaves it NULL otherwise. -1 on error. */
static int
waiter_import_current_tasks(PyObject *asyncio, PyObject *current_task)
{
    PyObject *tasks, *current_tasks;

    if (!PyFunction_Check(current_task)) {
        return 0;
    }
    tasks = PyObject_GetAttrString(asyncio, "tasks");
    if (tasks == NULL) {
        return -1;
    }
    current_tasks = PyObject_GetAttrString(tasks, "_current_tasks");
    Py_DECREF(tasks);
    if (current_tasks == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    if (PyDict_CheckExact(current_tasks)) {
        asyncio_current_tasks = current_tasks;
    }
    else {
        Py_DECREF(current_tasks);
    }
    return 0;
}

static int
waiter_import_asyncio(void)
{
    PyObject *asyncio, *current_task;

    if (asyncio_current_task != NULL) {
        return 0;
    }
    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        return -1;
    }
    current_task = NULL;
    if ((asyncio_cancelled_error = PyObject_GetAttrString(asyncio, "CancelledError")) == NULL
        || (asyncio_invalid_state_error = PyObject_GetAttrString(asyncio, "InvalidStateError"))
               == NULL
        || (asyncio_get_running_loop = PyObject_GetAttrString(asyncio, "_get_running_loop"))
               == NULL
        || (str_call_soon = PyUnicode_InternFromString("call_soon")) == NULL
        || (str_call_exception_handler = PyUnicode_InternFromString("call_exception_handler"))
               == NULL
        || (kwnames_context = Py_BuildValue("(s)", "context")) == NULL
        || (waiter_reraise_function = PyCFunction_New(&waiter_reraise_def, NULL)) == NULL
        || (current_task = PyObject_GetAttrString(asyncio, "current_task")) == NULL
        || waiter_import_current_tasks(asyncio, current_task) < 0) {
        Py_DECREF(asyncio);
        Py_XDECREF(current_task);
        Py_CLEAR(asyncio_cancelled_error);
        Py_CLEAR(asyncio_invalid_state_error);
        Py_CLEAR(asyncio_get_running_loop);
        Py_CLEAR(asyncio_current_tasks);
        Py_CLEAR(str_call_soon);
        Py_CLEAR(str_call_exception_handler);
        Py_CLEAR(kwnames_context);
        Py_CLEAR(waiter_reraise_function);
        return -1;
    }
    Py_DECREF(asyncio);
    /* Set last: its presence says that the others are. */
    asyncio_current_task = current_task;
    return 0;
}

static PyObject *
waiter_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    WaiterObject *self;

    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "Waiter() takes exactly one argument, the loop");
        return NULL;
    }
    if (waiter_import_asyncio() < 0) {
        return NULL;
    }
    self = PyObject_GC_New(WaiterObject, (PyTypeObject *)type);
    if (self == NULL) {
        return NULL;
    }
    self->loop = Py_NewRef(args[0]);
    self->callback = NULL;
    self->context = NULL;
    self->more = NULL;
    self->cancel_message = NULL;
    self->state = WAITER_PENDING;
    self->blocking = 0;
    self->yielded = 0;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static PyObject *
waiter_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "Waiter() takes no keyword arguments");
        return NULL;
    }
    return waiter_vectorcall((PyObject *)type, &PyTuple_GET_ITEM(args, 0),
                             (size_t)PyTuple_GET_SIZE(args), NULL);
}

static int
waiter_traverse(PyObject *op, visitproc visit, void *arg)
{
    WaiterObject *self = (WaiterObject *)op;
    Py_VISIT(self->loop);
    Py_VISIT(self->callback);
    Py_VISIT(self->context);
    Py_VISIT(self->more);
    Py_VISIT(self->cancel_message);
    return 0;
}

static int
waiter_clear(PyObject *op)
{
    WaiterObject *self = (WaiterObject *)op;
    Py_CLEAR(self->loop);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->context);
    Py_CLEAR(self->more);
    Py_CLEAR(self->cancel_message);
    return 0;
}

static void
waiter_dealloc(PyObject *op)
{
    PyObject_GC_UnTrack(op);
    waiter_clear(op);
    PyObject_GC_Del(op);
}

/* Raises for a waiter that the garbage collector cleared (it lost its loop). */
static int
waiter_check_loop(WaiterObject *self)
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Waiter has no loop: it was cleared");
        return -1;
    }
    return 0;
}

/* loop.call_soon(callback, self, context=context) */
static int
waiter_call_soon(WaiterObject *self, PyObject *callback, PyObject *context)
{
    PyObject *args[4] = {self->loop, callback, (PyObject *)self, context};
    PyObject *handle;
    if (waiter_check_loop(self) < 0) {
        return -1;
    }
    handle = PyObject_VectorcallMethod(
        str_call_soon, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames_context);
    if (handle == NULL) {
        return -1;
    }
    Py_DECREF(handle);
    return 0;
}

/* Takes the callbacks out of the waiter: the first in *callback and *context, the others
 * in *more (each NULL when absent); the caller owns the references. */
static void
waiter_take_callbacks(WaiterObject *self, PyObject **callback, PyObject **context,
                      PyObject **more)
{
    *callback = self->callback;
    *context = self->context;
    *more = self->more;
    self->callback = self->context = self->more = NULL;
}

/* Schedules every callback with loop.call_soon; on failure, the rest are dropped, as
 * asyncio.Future does when call_soon raises (the loop is closed). */
static int
waiter_schedule_callbacks(WaiterObject *self)
{
    PyObject *callback, *context, *more;
    int status = 0;
    Py_ssize_t i;

    waiter_take_callbacks(self, &callback, &context, &more);
    if (callback != NULL) {
        status = waiter_call_soon(self, callback, context);
    }
    if (more != NULL) {
        for (i = 0; status == 0 && i < PyList_GET_SIZE(more); i++) {
            PyObject *item = PyList_GET_ITEM(more, i);
            status = waiter_call_soon(self, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
        }
    }
    Py_XDECREF(callback);
    Py_XDECREF(context);
    Py_XDECREF(more);
    return status;
}

/* Runs callback(self) in context, now. An exception goes to the loop's exception handler,
 * as it would from a callback the loop runs; returns -1, with the exception set, for a
 * KeyboardInterrupt or a SystemExit, or if reporting failed. */
static int
waiter_run_callback(WaiterObject *self, PyObject *callback, PyObject *context)
{
    PyObject *result, *exc, *report, *handled;

    if (PyContext_Enter(context) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            return -1;
        }
        /* The context is in use (entered higher up the stack): resume a turn later. */
        PyErr_Clear();
        return waiter_call_soon(self, callback, context);
    }
    result = PyObject_CallOneArg(callback, (PyObject *)self);
    if (PyContext_Exit(context) < 0) {
        Py_XDECREF(result);
        return -1;
    }
    if (result != NULL) {
        Py_DECREF(result);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)
        || PyErr_ExceptionMatches(PyExc_SystemExit)) {
        return -1;
    }
    exc = take_exception();
    report = Py_BuildValue("{s:s,s:O,s:O}", "message", "Exception in callback", "exception",
                           exc, "callback", callback);
    Py_XDECREF(exc);
    if (report == NULL) {
        return -1;
    }
    handled = PyObject_CallMethodOneArg(self->loop, str_call_exception_handler, report);
    Py_DECREF(report);
    if (handled == NULL) {
        return -1;
    }
    Py_DECREF(handled);
    return 0;
}

/* Whether resume() may run the callbacks now: the waiter's loop is the one running in this
 * thread (a task resumed elsewhere would find no running loop, or another's), and no task
 * of it is running (a task can't step inside another). -1 on error. */
static int
waiter_may_resume_now(WaiterObject *self)
{
    PyObject *current, *running;

    running = PyObject_CallNoArgs(asyncio_get_running_loop);
    if (running == NULL) {
        return -1;
    }
    Py_DECREF(running); /* only compared: self->loop holds the loop */
    if (running != self->loop) {
        return 0;
    }
    if (asyncio_current_tasks != NULL) {
        /* What asyncio.current_task(loop) returns, read as it reads it. */
        current = PyDict_GetItemWithError(asyncio_current_tasks, self->loop);
        return current != NULL ? 0 : PyErr_Occurred() ? -1 : 1;
    }
    current = PyObject_CallOneArg(asyncio_current_task, self->loop);
    if (current == NULL) {
        return -1;
    }
    Py_DECREF(current);
    return current == Py_None;
}

PyDoc_STRVAR(waiter_resume_doc,
"resume($self, /)\n"
"--\n"
"\n"
"Mark the waiter done and resume whoever awaits it: now, when its loop is the one\n"
"running in this thread and no task is (a read callback), else at the next turn of the\n"
"loop. Does nothing if the waiter is done already.");

static PyObject *
waiter_resume(PyObject *op, PyObject *unused)
{
    WaiterObject *self = (WaiterObject *)op;
    PyObject *callback, *context, *more, *exc = NULL;
    int now;
    Py_ssize_t i;

    (void)unused;
    if (self->state != WAITER_PENDING) {
        Py_RETURN_NONE;
    }
    if (self->callback == NULL) {
        self->state = WAITER_DONE;
        Py_RETURN_NONE;
    }
    if (waiter_check_loop(self) < 0) {
        return NULL;
    }
    /* Decided before the waiter is marked done: on an error, it stays pending. */
    now = waiter_may_resume_now(self);
    if (now < 0) {
        return NULL;
    }
    self->state = WAITER_DONE;
    if (!now) {
        if (waiter_schedule_callbacks(self) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    waiter_take_callbacks(self, &callback, &context, &more);
    if (waiter_run_callback(self, callback, context) < 0) {
        exc = take_exception();
    }
    if (more != NULL) {
        for (i = 0; i < PyList_GET_SIZE(more); i++) {
            PyObject *item = PyList_GET_ITEM(more, i);
            if (exc == NULL) {
                if (waiter_run_callback(self, PyTuple_GET_ITEM(item, 0),
                                        PyTuple_GET_ITEM(item, 1)) < 0) {
                    exc = take_exception();
                }
            }
            /* After a KeyboardInterrupt, the others run at the next turn. */
            else if (waiter_call_soon(self, PyTuple_GET_ITEM(item, 0),
                                      PyTuple_GET_ITEM(item, 1)) < 0) {
                PyErr_Clear();
            }
        }
    }
    Py_DECREF(callback);
    Py_DECREF(context);
    Py_XDECREF(more);
    if (exc != NULL) {
        /* Raised from a handle of the loop rather than from here, inside the caller's
         * callback, which the loop may catch (uvloop's transports do). */
        PyObject *handle = PyObject_CallMethodObjArgs(self->loop, str_call_soon,
                                                      waiter_reraise_function, exc, NULL);
        if (handle == NULL) {
            /* The loop is closed: raise it here after all. */
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
            return NULL;
        }
        Py_DECREF(handle);
        Py_DECREF(exc);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(waiter_resume_soon_doc,
"resume_soon($self, /)\n"
"--\n"
"\n"
"Mark the waiter done and resume whoever awaits it at the next turn of the loop, as\n"
"asyncio.Future.set_result() does. Does nothing if the waiter is done already.");

static PyObject *
waiter_resume_soon(PyObject *op, PyObject *unused)
{
    WaiterObject *self = (WaiterObject *)op;

    (void)unused;
    if (self->state != WAITER_PENDING) {
        Py_RETURN_NONE;
    }
    self->state = WAITER_DONE;
    if (waiter_schedule_callbacks(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
waiter_add_done_callback(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    static const char *const names[] = {"callback", "context"};
    WaiterObject *self = (WaiterObject *)op;
    PyObject *bound[2];
    PyObject *context;

    if (bind_args("add_done_callback", names, 2, args, nargs, kwnames, bound) < 0) {
        return NULL;
    }
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "add_done_callback() takes context as a keyword");
        return NULL;
    }
    if (bound[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "add_done_callback() missing argument 'callback'");
        return NULL;
    }
    if (bound[1] == NULL || bound[1] == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            return NULL;
        }
    }
    else if (PyContext_CheckExact(bound[1])) {
        context = Py_NewRef(bound[1]);
    }
    else {
        PyErr_SetString(PyExc_TypeError, "add_done_callback() context must be a Context");
        return NULL;
    }
    if (self->state != WAITER_PENDING) {
        int status = waiter_call_soon(self, bound[0], context);
        Py_DECREF(context);
        if (status < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (self->callback == NULL) {
        self->callback = Py_NewRef(bound[0]);
        self->context = context;
        Py_RETURN_NONE;
    }
    if (self->more == NULL) {
        self->more = PyList_New(0);
        if (self->more == NULL) {
            Py_DECREF(context);
            return NULL;
        }
    }
    {
        PyObject *item = PyTuple_Pack(2, bound[0], context);
        int status;
        Py_DECREF(context);
        if (item == NULL) {
            return NULL;
        }
        status = PyList_Append(self->more, item);
        Py_DECREF(item);
        if (status < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* Comparing callbacks may run Python code (__eq__), which may complete the waiter or add
 * callbacks meanwhile: what is compared is held, and the waiter is only updated where it
 * still holds what was read before. */
static PyObject *
waiter_remove_done_callback(PyObject *op, PyObject *callback)
{
    WaiterObject *self = (WaiterObject *)op;
    PyObject *first, *more, *kept;
    Py_ssize_t removed = 0, i;
    int equal;

    first = Py_XNewRef(self->callback);
    if (first != NULL) {
        equal = PyObject_RichCompareBool(first, callback, Py_EQ);
        if (equal < 0) {
            Py_DECREF(first);
            return NULL;
        }
        if (equal && self->callback == first) {
            Py_CLEAR(self->callback);
            Py_CLEAR(self->context);
            removed++;
        }
        Py_DECREF(first);
    }
    more = Py_XNewRef(self->more);
    if (more != NULL) {
        kept = PyList_New(0);
        if (kept == NULL) {
            Py_DECREF(more);
            return NULL;
        }
        for (i = 0; i < PyList_GET_SIZE(more); i++) {
            PyObject *item = Py_NewRef(PyList_GET_ITEM(more, i));
            equal = PyObject_RichCompareBool(PyTuple_GET_ITEM(item, 0), callback, Py_EQ);
            if (equal < 0 || (!equal && PyList_Append(kept, item) < 0)) {
                Py_DECREF(item);
                Py_DECREF(kept);
                Py_DECREF(more);
                return NULL;
            }
            Py_DECREF(item);
            removed += equal;
        }
        if (self->more == more) {
            Py_SETREF(self->more, kept);
        }
        else {
            Py_DECREF(kept);
        }
        Py_DECREF(more);
    }
    if (self->callback == NULL && self->more != NULL && PyList_GET_SIZE(self->more)) {
        /* Keep the first callback in its field: resume() runs that one first. */
        PyObject *next = PyList_GET_ITEM(self->more, 0);
        self->callback = Py_NewRef(PyTuple_GET_ITEM(next, 0));
        self->context = Py_NewRef(PyTuple_GET_ITEM(next, 1));
        if (PyList_SetSlice(self->more, 0, 1, NULL) < 0) {
            return NULL;
        }
    }
    return PyLong_FromSsize_t(removed);
}

static PyObject *
waiter_cancel(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const char *const names[] = {"msg"};
    WaiterObject *self = (WaiterObject *)op;
    PyObject *bound[1];

    if (bind_args("cancel", names, 1, args, nargs, kwnames, bound) < 0) {
        return NULL;
    }
    if (self->state != WAITER_PENDING) {
        Py_RETURN_FALSE;
    }
    self->state = WAITER_CANCELLED;
    Py_XSETREF(self->cancel_message, Py_XNewRef(bound[0]));
    if (waiter_schedule_callbacks(self) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* Raises what result() raises for a waiter that isn't done, or cancelled; returns NULL. */
static PyObject *
waiter_raise(WaiterObject *self, const char *not_ready)
{
    if (self->state == WAITER_CANCELLED) {
        PyObject *error;
        if (self->cancel_message == NULL || self->cancel_message == Py_None) {
            error = PyObject_CallNoArgs(asyncio_cancelled_error);
        }
        else {
            /* Built here: PyErr_SetObject would take a tuple for the arguments, and a
             * CancelledError for the exception itself. */
            error = PyObject_CallOneArg(asyncio_cancelled_error, self->cancel_message);
        }
        if (error != NULL) {
            PyErr_SetObject(asyncio_cancelled_error, error);
            Py_DECREF(error);
        }
    }
    else {
        PyErr_SetString(asyncio_invalid_state_error, not_ready);
    }
    return NULL;
}

static PyObject *
waiter_result(PyObject *op, PyObject *unused)
{
    WaiterObject *self = (WaiterObject *)op;
    (void)unused;
    if (self->state == WAITER_DONE) {
        Py_RETURN_NONE;
    }
    return waiter_raise(self, "Result is not ready.");
}

static PyObject *
waiter_exception(PyObject *op, PyObject *unused)
{
    WaiterObject *self = (WaiterObject *)op;
    (void)unused;
    if (self->state == WAITER_DONE) {
        Py_RETURN_NONE;
    }
    return waiter_raise(self, "Exception is not set.");
}

static PyObject *
waiter_done(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(((WaiterObject *)op)->state != WAITER_PENDING);
}

static PyObject *
waiter_cancelled(PyObject *op, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(((WaiterObject *)op)->state == WAITER_CANCELLED);
}

static PyObject *
waiter_get_loop(PyObject *op, PyObject *unused)
{
    (void)unused;
    if (waiter_check_loop((WaiterObject *)op) < 0) {
        return NULL;
    }
    return Py_NewRef(((WaiterObject *)op)->loop);
}

static PyObject *
waiter_get_blocking(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((WaiterObject *)op)->blocking);
}

static int
waiter_set_blocking(PyObject *op, PyObject *value, void *closure)
{
    int truth;
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "can't delete _asyncio_future_blocking");
        return -1;
    }
    truth = PyObject_IsTrue(value);
    if (truth < 0) {
        return -1;
    }
    ((WaiterObject *)op)->blocking = (char)truth;
    return 0;
}

/* `await waiter`: the waiter is its own iterator. The first step yields it to the task
 * (unless it is done already); the next returns None, or raises if it was cancelled. */
static PyObject *
waiter_await(PyObject *op)
{
    return Py_NewRef(op);
}

static PySendResult
waiter_send(PyObject *op, PyObject *arg, PyObject **result)
{
    WaiterObject *self = (WaiterObject *)op;
    (void)arg;
    if (self->state == WAITER_PENDING) {
        if (!self->yielded) {
            self->yielded = 1;
            self->blocking = 1;
            *result = Py_NewRef(op);
            return PYGEN_NEXT;
        }
        PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
        *result = NULL;
        return PYGEN_ERROR;
    }
    if (self->state == WAITER_CANCELLED) {
        waiter_raise(self, "");
        *result = NULL;
        return PYGEN_ERROR;
    }
    *result = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PyObject *
waiter_iternext(PyObject *op)
{
    PyObject *result;
    switch (waiter_send(op, Py_None, &result)) {
    case PYGEN_NEXT:
        return result;
    case PYGEN_RETURN:
        Py_DECREF(result);
        return NULL; /* StopIteration(None), without creating it */
    default:
        return NULL;
    }
}

/* send(value): the generator protocol of what __await__ returns, for code that drives
 * it by hand (asyncio.Future's iterator has it too). */
static PyObject *
waiter_send_method(PyObject *op, PyObject *value)
{
    PyObject *result;
    switch (waiter_send(op, value, &result)) {
    case PYGEN_NEXT:
        return result;
    case PYGEN_RETURN:
        /* The value is always None. */
        Py_DECREF(result);
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    default:
        return NULL;
    }
}

static PyMethodDef waiter_methods[] = {
    {"resume", waiter_resume, METH_NOARGS, waiter_resume_doc},
    {"resume_soon", waiter_resume_soon, METH_NOARGS, waiter_resume_soon_doc},
    {"add_done_callback", (PyCFunction)(void (*)(void))waiter_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", waiter_remove_done_callback, METH_O, NULL},
    {"cancel", (PyCFunction)(void (*)(void))waiter_cancel, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"result", waiter_result, METH_NOARGS, NULL},
    {"exception", waiter_exception, METH_NOARGS, NULL},
    {"done", waiter_done, METH_NOARGS, NULL},
    {"cancelled", waiter_cancelled, METH_NOARGS, NULL},
    {"get_loop", waiter_get_loop, METH_NOARGS, NULL},
    {"send", waiter_send_method, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef waiter_getset[] = {
    {"_asyncio_future_blocking", waiter_get_blocking, waiter_set_blocking,
     "Set while a task is to wait for the waiter (the asyncio future protocol).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods waiter_as_async = {
    .am_await = waiter_await,
    .am_send = waiter_send,
};

PyDoc_STRVAR(waiter_doc,
"Waiter(loop)\n"
"--\n"
"\n"
"A future-like object whose awaiting task resume() runs at once when no task is running\n"
"(see wsio.asyncio.waiter.PythonWaiter, the pure-Python reference).");

static PyTypeObject WaiterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsio._speedups.Waiter",
    .tp_basicsize = sizeof(WaiterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = waiter_doc,
    .tp_methods = waiter_methods,
    .tp_getset = waiter_getset,
    .tp_as_async = &waiter_as_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = waiter_iternext,
    .tp_new = waiter_new,
    .tp_vectorcall = waiter_vectorcall,
    .tp_traverse = waiter_traverse,
    .tp_clear = waiter_clear,
    .tp_dealloc = waiter_dealloc,
};

/* ------------------------------------------------------------------------------------ */
/* HTTP head fields                                                                      */
/* ------------------------------------------------------------------------------------ */

PyDoc_STRVAR(head_fields_doc,
"head_fields($module, head, shared, max_shared, /)\n"
"--\n"
"\n"
"The header fields of an HTTP head that ends with an empty line (RFC 9112 section 2.1),\n"
"as (name, value) pairs, each value decoded from ISO-8859-1 without the whitespace\n"
"around it; None unless the start line holds no bare LF and every line after it is a\n"
"valid field line (section 5): a token, a colon, then field characters up to CRLF.\n"
"Each name is taken from the dict shared if there, else added to it while it holds\n"
"fewer than max_shared (see wsio.protocol.http11.python_head_fields, the reference).");

/* RFC 9110 section 5.6.2: tchar, for every byte, filled in at import.
 * Micro-optimisation: one table load instead of a chain of comparisons per character. */
static unsigned char tchar_table[256];

static void
init_tchar_table(void)
{
    int c;
    for (c = 0; c < 256; c++) {
        tchar_table[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
    }
}

static int
is_tchar(unsigned char c)
{
    return tchar_table[c];
}

/* RFC 9110 section 5.5: field-vchar, space and tab. */
static int
is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* The name as the dict shared holds it, added if new and there is room. */
static PyObject *
shared_name(const unsigned char *s, Py_ssize_t n, PyObject *shared, Py_ssize_t max_shared)
{
    PyObject *name = PyUnicode_DecodeLatin1((const char *)s, n, NULL);
    PyObject *found;

    if (name == NULL) {
        return NULL;
    }
    found = PyDict_GetItemWithError(shared, name);
    if (found != NULL) {
        Py_INCREF(found);
        Py_DECREF(name);
        return found;
    }
    if (PyErr_Occurred()) {
        Py_DECREF(name);
        return NULL;
    }
    if (PyDict_GET_SIZE(shared) < max_shared && PyDict_SetItem(shared, name, name) < 0) {
        Py_DECREF(name);
        return NULL;
    }
    return name;
}

/* The field line at s[pos:], which ends with CRLF, if valid: its name is s[pos:*name_end],
 * its value s[*value_start:*value_end] and the next line starts at *next. A head that ends
 * with CRLF CRLF stops every scan before its end. */
static int
scan_field_line(const unsigned char *s, Py_ssize_t pos, Py_ssize_t *name_end,
                Py_ssize_t *value_start, Py_ssize_t *value_end, Py_ssize_t *next)
{
    Py_ssize_t i = pos, line_end;

    while (is_tchar(s[i])) {
        i++;
    }
    if (i == pos || s[i] != ':') {
        return 0;
    }
    *name_end = i++;
    while (s[i] == ' ' || s[i] == '\t') {
        i++;
    }
    *value_start = line_end = i;
    while (is_field_char(s[line_end])) {
        line_end++;
    }
    if (!(s[line_end] == '\r' && s[line_end + 1] == '\n')) {
        return 0;
    }
    while (line_end > i && (s[line_end - 1] == ' ' || s[line_end - 1] == '\t')) {
        line_end--;
    }
    *value_end = line_end;
    /* Past the trailing whitespace, the CR and the LF. */
    while (s[line_end] != '\n') {
        line_end++;
    }
    *next = line_end + 1;
    return 1;
}

static PyObject *
speedups_head_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const unsigned char *s;
    Py_ssize_t len, first, pos, end, max_shared, name_end, value_start, value_end;
    PyObject *shared, *fields;

    (void)module;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "head_fields() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "head_fields() argument 'head' must be bytes");
        return NULL;
    }
    shared = args[1];
    if (!PyDict_Check(shared)) {
        PyErr_SetString(PyExc_TypeError, "head_fields() argument 'shared' must be a dict");
        return NULL;
    }
    max_shared = PyLong_AsSsize_t(args[2]);
    if (max_shared == -1 && PyErr_Occurred()) {
        return NULL;
    }
    s = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    len = PyBytes_GET_SIZE(args[0]);
    if (len < 4 || memcmp(s + len - 4, "\r\n\r\n", 4) != 0) {
        Py_RETURN_NONE;
    }
    /* The start line: up to the first CRLF, with no LF of its own. */
    for (first = 0; !(s[first] == '\r' && s[first + 1] == '\n'); first++) {
        if (s[first] == '\n') {
            Py_RETURN_NONE;
        }
    }
    first += 2;
    /* The field lines, up to the empty line: all checked before any name is shared. */
    end = len - 2;
    for (pos = first; pos < end;) {
        if (!scan_field_line(s, pos, &name_end, &value_start, &value_end, &pos)) {
            Py_RETURN_NONE;
        }
    }
    fields = PyList_New(0);
    if (fields == NULL) {
        return NULL;
    }
    for (pos = first; pos < end;) {
        PyObject *name, *value, *field;
        Py_ssize_t start = pos;
        int status;

        scan_field_line(s, pos, &name_end, &value_start, &value_end, &pos);
        name = shared_name(s + start, name_end - start, shared, max_shared);
        if (name == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        value = PyUnicode_DecodeLatin1((const char *)s + value_start, value_end - value_start,
                                       NULL);
        if (value == NULL) {
            Py_DECREF(name);
            Py_DECREF(fields);
            return NULL;
        }
        field = PyTuple_Pack(2, name, value);
        Py_DECREF(name);
        Py_DECREF(value);
        if (field == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        status = PyList_Append(fields, field);
        Py_DECREF(field);
        if (status < 0) {
            Py_DECREF(fields);
            return NULL;
        }
    }
    return fields;
}

/* ---- random_bytes ----------------------------------------------------------------------- */

/* Bytes drawn from os.urandom at a time, as in wsio.protocol.entropy: masking keys for
 * 1,024 frames. */
#define POOL_SIZE 4096

/* One thread's pool of system random bytes, kept in its thread state's dict so that it
 * goes with the thread. A pool whose generation isn't pool_generation was copied from a
 * parent by a fork: it is empty. */
typedef struct {
    PyObject_HEAD
    PyObject *data; /* bytes, a multiple of 4 long; NULL: empty */
    Py_ssize_t position;
    unsigned long generation;
} KeyPoolObject;

static unsigned long pool_generation;
static PyObject *pool_key; /* the pools' key in the thread state dicts */

static void
key_pool_dealloc(PyObject *self)
{
    Py_XDECREF(((KeyPoolObject *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

/* Holds bytes only: no reference cycle can go through it. */
static PyTypeObject KeyPoolType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wsio._speedups.KeyPool",
    .tp_basicsize = sizeof(KeyPoolObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = key_pool_dealloc,
};

/* The pool of the running thread, a new reference. */
static KeyPoolObject *
thread_pool(void)
{
    PyObject *dict = PyThreadState_GetDict();
    KeyPoolObject *pool;

    if (dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "random_bytes() needs a thread state");
        return NULL;
    }
    if (pool_key == NULL) {
        pool_key = PyUnicode_InternFromString("wsio._speedups.random_bytes");
        if (pool_key == NULL) {
            return NULL;
        }
    }
    pool = (KeyPoolObject *)PyDict_GetItemWithError(dict, pool_key);
    if (pool != NULL) {
        Py_INCREF(pool);
    }
    else {
        if (PyErr_Occurred()) {
            return NULL;
        }
        pool = PyObject_New(KeyPoolObject, &KeyPoolType);
        if (pool == NULL) {
            return NULL;
        }
        pool->data = NULL;
        pool->generation = pool_generation;
        if (PyDict_SetItem(dict, pool_key, (PyObject *)pool) < 0) {
            Py_DECREF(pool);
            return NULL;
        }
    }
    if (pool->generation != pool_generation) {
        Py_CLEAR(pool->data);
        pool->generation = pool_generation;
    }
    return pool;
}

/* os.urandom(size), looked up at each call, as the Python version does. */
static PyObject *
system_random_bytes(Py_ssize_t size)
{
    PyObject *os = PyImport_ImportModule("os"), *data;

    if (os == NULL) {
        return NULL;
    }
    data = PyObject_CallMethod(os, "urandom", "n", size);
    Py_DECREF(os);
    return data;
}

/* keys 4-byte keys into out, each taken from the pool once, the pool refilled whenever it
 * runs out. */
static int
take_keys(KeyPoolObject *pool, unsigned char *out, Py_ssize_t keys)
{
    Py_ssize_t i;

    for (i = 0; i < keys; i++) {
        if (pool->data == NULL || pool->position >= PyBytes_GET_SIZE(pool->data)) {
            PyObject *data = system_random_bytes(POOL_SIZE);

            if (data == NULL) {
                return -1;
            }
            if (!PyBytes_Check(data) || PyBytes_GET_SIZE(data) == 0
                || PyBytes_GET_SIZE(data) % 4 != 0) {
                PyErr_Format(PyExc_ValueError,
                             "os.urandom() returned %R, not bytes of a multiple of 4", data);
                Py_DECREF(data);
                return -1;
            }
            /* Set after the call, during which other threads ran: nothing else can have
             * taken from this thread's pool meanwhile. */
            Py_XSETREF(pool->data, data);
            pool->position = 0;
        }
        memcpy(out + 4 * i, PyBytes_AS_STRING(pool->data) + pool->position, 4);
        pool->position += 4;
    }
    return 0;
}

PyDoc_STRVAR(random_bytes_doc,
"random_bytes($module, size, /)\n"
"--\n"
"\n"
"size bytes from the system's cryptographic source (RFC 6455 sections 5.3 and 10.3),\n"
"none of them handed out before, in this thread or any other, in this process or its\n"
"parent: as wsio.protocol.entropy.random_bytes, each thread drawing from a pool of its\n"
"own, filled by os.urandom 4,096 bytes at a time.");

static PyObject *
speedups_random_bytes(PyObject *module, PyObject *arg)
{
    unsigned char out[POOL_SIZE / 4 + 4];
    Py_ssize_t size = PyNumber_AsSsize_t(arg, PyExc_OverflowError);
    KeyPoolObject *pool;
    int status;

    (void)module;
    if (size == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (size > POOL_SIZE / 4) {
        /* Large requests gain nothing from the pool and would drain it. */
        return system_random_bytes(size);
    }
    if (size <= 0) {
        return PyBytes_FromStringAndSize(NULL, 0);
    }
    pool = thread_pool();
    if (pool == NULL) {
        return NULL;
    }
    /* Whole keys: the rest of the last one is dropped, never handed out. */
    status = take_keys(pool, out, (size + 3) / 4);
    Py_DECREF(pool);
    return status < 0 ? NULL : PyBytes_FromStringAndSize((const char *)out, size);
}

PyDoc_STRVAR(forget_random_pools_doc,
"forget_random_pools($module, /)\n"
"--\n"
"\n"
"Empty every thread's pool of random_bytes: in a fork's child, the bytes that the parent\n"
"has yet to hand out must not be handed out by the child too. The module registers it\n"
"with os.register_at_fork when it is imported.");

static PyObject *
speedups_forget_random_pools(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    pool_generation++;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------ */
/* Module                                                                                */
/* ------------------------------------------------------------------------------------ */

static PyMethodDef speedups_methods[] = {
    {"join_masked", (PyCFunction)(void (*)(void))speedups_join_masked, METH_FASTCALL,
     join_masked_doc},
    {"apply_mask", (PyCFunction)(void (*)(void))speedups_apply_mask,
     METH_FASTCALL | METH_KEYWORDS, apply_mask_doc},
    {"deliver_messages", (PyCFunction)(void (*)(void))speedups_deliver_messages, METH_FASTCALL,
     deliver_messages_doc},
    {"head_fields", (PyCFunction)(void (*)(void))speedups_head_fields, METH_FASTCALL,
     head_fields_doc},
    {"parse_messages", (PyCFunction)(void (*)(void))speedups_parse_messages, METH_FASTCALL,
     parse_messages_doc},
    {"serialize_frame", (PyCFunction)(void (*)(void))speedups_serialize_frame,
     METH_FASTCALL | METH_KEYWORDS, serialize_frame_doc},
    {"send_message_twin", (PyCFunction)(void (*)(void))speedups_send_message_twin, METH_FASTCALL,
     send_message_twin_doc},
    {"receive_messages_twin", (PyCFunction)(void (*)(void))speedups_receive_messages_twin,
     METH_FASTCALL, receive_messages_twin_doc},
    {"parse_close", (PyCFunction)(void (*)(void))speedups_parse_close, METH_FASTCALL,
     parse_close_doc},
    {"field_values", (PyCFunction)(void (*)(void))speedups_field_values, METH_FASTCALL,
     field_values_doc},
    {"fields_by_name", (PyCFunction)speedups_fields_by_name, METH_O, fields_by_name_doc},
    {"random_bytes", (PyCFunction)speedups_random_bytes, METH_O, random_bytes_doc},
    {"forget_random_pools", (PyCFunction)speedups_forget_random_pools, METH_NOARGS,
     forget_random_pools_doc},
    {NULL, NULL, 0, NULL},
};

/* os.register_at_fork(after_in_child=module.forget_random_pools) */
static int
forget_random_pools_at_fork(PyObject *module)
{
    PyObject *os, *register_at_fork, *forget, *kwnames, *result;

    os = PyImport_ImportModule("os");
    if (os == NULL) {
        return -1;
    }
    register_at_fork = PyObject_GetAttrString(os, "register_at_fork");
    Py_DECREF(os);
    if (register_at_fork == NULL) {
        /* No fork on this platform. */
        PyErr_Clear();
        return 0;
    }
    forget = PyObject_GetAttrString(module, "forget_random_pools");
    kwnames = Py_BuildValue("(s)", "after_in_child");
    result = forget == NULL || kwnames == NULL
                 ? NULL
                 : PyObject_Vectorcall(register_at_fork, &forget, 0, kwnames);
    Py_DECREF(register_at_fork);
    Py_XDECREF(forget);
    Py_XDECREF(kwnames);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

PyDoc_STRVAR(speedups_doc,
"Optional C implementations of wsio's hot paths: XOR masking (RFC 6455 section 5.3),\n"
"UTF-8 validation (RFC 3629), frame parsing and building, the waiter of recv(), and\n"
"the header fields of the opening handshake (RFC 9112 section 5).\n"
"wsio.protocol and wsio.asyncio.waiter use them when this module is built and\n"
"WSIO_NO_SPEEDUPS is not set; the pure-Python code there is the reference and the\n"
"fallback.");

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wsio._speedups",
    .m_doc = speedups_doc,
    .m_size = -1,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module;

    init_lead_class();
    init_tchar_table();
    if (PyType_Ready(&Utf8ValidatorType) < 0) {
        return NULL;
    }
    module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddType(module, &Utf8ValidatorType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyType_Ready(&PayloadBufferType) < 0 || PyModule_AddType(module, &PayloadBufferType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyType_Ready(&MethodTwinType) < 0 || PyType_Ready(&KeyPoolType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    if (PyType_Ready(&WaiterType) < 0 || PyModule_AddType(module, &WaiterType) < 0
        || forget_random_pools_at_fork(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
