/* JSON writer and strict parser. The parser builds the whole tree in one arena that
 * hangs off the root, so a typical API body costs one malloc and one free; container
 * members are gathered on a shared scratch stack and copied out once their count is
 * known. */
#include "common/json.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- shared ---- */

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* Numbers are printed and parsed in the "C" locale whatever the process's locale is,
 * or "1.5" would come out as "1,5" under de_DE. glibc hands back a static object for
 * "C", so this normally never allocates; the race on first use only costs a leak of
 * one locale object. */
static locale_t c_locale(void)
{
    static locale_t cached;
    locale_t l = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (l)
        return l;
    l = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!l)
        return (locale_t)0;
    locale_t expected = (locale_t)0;
    if (!__atomic_compare_exchange_n(&cached, &expected, l, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        freelocale(l);
        return expected;
    }
    return l;
}


/* ---- writer ---- */

static void emit(struct json_writer *w, const void *p, size_t n)
{
    if (w->error)
        return;
    int r = buf_append(w->out, p, n);
    if (r < 0)
        w->error = r;
}

static void emit_str(struct json_writer *w, const char *s)
{
    emit(w, s, strlen(s));
}

static void misuse(struct json_writer *w)
{
    if (!w->error)
        w->error = -EINVAL;
}

static bool in_object(const struct json_writer *w)
{
    return w->depth > 0 && (w->in_object >> (w->depth - 1) & 1);
}

static void newline_indent(struct json_writer *w, int depth)
{
    static const char spaces[] = "                                ";
    emit(w, "\n", 1);
    for (size_t n = (size_t)depth * 2; n > 0;) {
        size_t k = MIN(n, sizeof(spaces) - 1);
        emit(w, spaces, k);
        n -= k;
    }
}

/* Writes what must precede a value here: nothing after a key, a comma and (pretty)
 * a new line in an array. Returns false when the value must not be written. */
static bool value_begin(struct json_writer *w)
{
    if (w->error)
        return false;
    if (w->depth == 0) {
        /* One document holds one value. */
        if (!w->first[0]) {
            misuse(w);
            return false;
        }
        w->first[0] = false;
        return true;
    }
    if (in_object(w)) {
        if (!w->after_key) {
            misuse(w);
            return false;
        }
        w->after_key = false;
        return true;
    }
    if (!w->first[w->depth])
        emit(w, ",", 1);
    if (w->pretty)
        newline_indent(w, w->depth);
    w->first[w->depth] = false;
    return true;
}

static void write_escaped(struct json_writer *w, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the bytes not yet written that need no escaping */
    emit(w, "\"", 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            int n = utf8_decode(p + i, len - i, &cp);
            if (n > 0) {
                i += (size_t)n;
                continue;
            }
            emit(w, s + run, i - run);
            emit(w, "\xEF\xBF\xBD", 3); /* U+FFFD for each ill-formed subpart */
            i += (size_t)-n;
            run = i;
            continue;
        }
        emit(w, s + run, i - run);
        char esc[7];
        switch (c) {
        case '"': emit(w, "\\\"", 2); break;
        case '\\': emit(w, "\\\\", 2); break;
        case '\n': emit(w, "\\n", 2); break;
        case '\r': emit(w, "\\r", 2); break;
        case '\t': emit(w, "\\t", 2); break;
        case '\b': emit(w, "\\b", 2); break;
        case '\f': emit(w, "\\f", 2); break;
        default:
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            emit(w, esc, 6);
        }
        i++;
        run = i;
    }
    emit(w, s + run, len - run);
    emit(w, "\"", 1);
}

void json_writer_init(struct json_writer *w, struct buf *out, bool pretty)
{
    *w = (struct json_writer){ .out = out, .pretty = pretty };
    w->first[0] = true;
}

static void container_begin(struct json_writer *w, char open, bool object)
{
    if (!value_begin(w))
        return;
    if (w->depth >= JSON_MAX_DEPTH) {
        misuse(w);
        return;
    }
    emit(w, &open, 1);
    w->depth++;
    w->first[w->depth] = true;
    if (object)
        w->in_object |= UINT64_C(1) << (w->depth - 1);
    else
        w->in_object &= ~(UINT64_C(1) << (w->depth - 1));
}

static void container_end(struct json_writer *w, char close, bool object)
{
    if (w->error)
        return;
    if (w->depth == 0 || in_object(w) != object || w->after_key) {
        misuse(w);
        return;
    }
    if (w->pretty && !w->first[w->depth])
        newline_indent(w, w->depth - 1);
    emit(w, &close, 1);
    w->depth--;
}

void json_object_begin(struct json_writer *w)
{
    container_begin(w, '{', true);
}

void json_object_end(struct json_writer *w)
{
    container_end(w, '}', true);
}

void json_array_begin(struct json_writer *w)
{
    container_begin(w, '[', false);
}

void json_array_end(struct json_writer *w)
{
    container_end(w, ']', false);
}

void json_key(struct json_writer *w, const char *key)
{
    if (w->error)
        return;
    if (!key || !in_object(w) || w->after_key) {
        misuse(w);
        return;
    }
    if (!w->first[w->depth])
        emit(w, ",", 1);
    if (w->pretty)
        newline_indent(w, w->depth);
    w->first[w->depth] = false;
    write_escaped(w, key, strlen(key));
    emit_str(w, w->pretty ? ": " : ":");
    w->after_key = true;
}

void json_string(struct json_writer *w, const char *s)
{
    if (!s) {
        json_null(w);
        return;
    }
    json_string_len(w, s, strlen(s));
}

void json_string_len(struct json_writer *w, const char *s, size_t len)
{
    if (!s) {
        json_null(w);
        return;
    }
    if (value_begin(w))
        write_escaped(w, s, len);
}

void json_int(struct json_writer *w, int64_t v)
{
    char tmp[24];
    if (!value_begin(w))
        return;
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    emit(w, tmp, (size_t)n);
}

void json_uint(struct json_writer *w, uint64_t v)
{
    char tmp[24];
    if (!value_begin(w))
        return;
    int n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
    emit(w, tmp, (size_t)n);
}

void json_double(struct json_writer *w, double v)
{
    /* JSON has no spelling for infinities or NaN. */
    if (!isfinite(v)) {
        json_null(w);
        return;
    }
    if (!value_begin(w))
        return;
    locale_t c = c_locale();
    if (!c) {
        w->error = -ENOMEM;
        return;
    }
    locale_t old = uselocale(c);
    char tmp[40];
    int n = 0;
    /* The shortest %.Ng that reads back as the same double: 0.1 prints as "0.1", not
     * "0.10000000000000001"; %.17g always round-trips. */
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod_l(tmp, NULL, c) == v)
            break;
    }
    uselocale(old);
    emit(w, tmp, (size_t)n);
}

void json_bool(struct json_writer *w, bool v)
{
    if (value_begin(w))
        emit_str(w, v ? "true" : "false");
}

void json_null(struct json_writer *w)
{
    if (value_begin(w))
        emit(w, "null", 4);
}

void json_kv_string(struct json_writer *w, const char *key, const char *s)
{
    json_key(w, key);
    json_string(w, s);
}

void json_kv_int(struct json_writer *w, const char *key, int64_t v)
{
    json_key(w, key);
    json_int(w, v);
}

void json_kv_uint(struct json_writer *w, const char *key, uint64_t v)
{
    json_key(w, key);
    json_uint(w, v);
}

void json_kv_bool(struct json_writer *w, const char *key, bool v)
{
    json_key(w, key);
    json_bool(w, v);
}

int json_writer_finish(struct json_writer *w)
{
    if (!w->error && (w->depth != 0 || w->after_key || w->first[0]))
        w->error = -EINVAL;
    return w->error;
}

/* ---- parser: arena ---- */

struct chunk {
    struct chunk *next;
    alignas(max_align_t) char data[];
};

/* The root value comes first, so json_value_free() finds the document from it. */
struct json_doc {
    struct json_value root;
    struct chunk *chunks;  /* chunks after the first, which is data[] */
    char *cur, *end;
    size_t next_size;
    alignas(max_align_t) char data[];
};

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define ARENA_FIRST_MAX (64 * 1024)
#define ARENA_CHUNK_MAX (1024 * 1024)

static void *arena_alloc(struct json_doc *d, size_t n)
{
    n = ALIGN8(n);
    if ((size_t)(d->end - d->cur) < n) {
        size_t size = MAX(n, d->next_size);
        struct chunk *c = malloc(sizeof(*c) + size);
        if (!c)
            return NULL;
        c->next = d->chunks;
        d->chunks = c;
        d->cur = c->data;
        d->end = c->data + size;
        d->next_size = MIN(d->next_size * 2, (size_t)ARENA_CHUNK_MAX);
    }
    void *p = d->cur;
    d->cur += n;
    return p;
}

/* Gives back the tail of the most recent allocation p, now that it needs only n bytes. */
static void arena_shrink_last(struct json_doc *d, void *p, size_t n)
{
    d->cur = (char *)p + ALIGN8(n);
}

void json_value_free(struct json_value *v)
{
    if (!v)
        return;
    struct json_doc *d = (struct json_doc *)v;
    for (struct chunk *c = d->chunks; c;) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(d);
}

/* ---- parser ---- */

/* Longest number literal read through strtod; longer ones are refused rather than
 * copied to the heap. */
#define NUMBER_MAX 512
#define SCRATCH_LOCAL 32

struct slot {
    const char *key;    /* NULL for array items */
    size_t key_offset;  /* where the key starts in the text, for duplicate errors */
    struct json_value *value;
};

struct parser {
    const char *text;
    size_t len;
    size_t pos;
    struct json_doc *doc;
    struct slot *slots;  /* members of every open container, innermost last */
    size_t nslots, cap;
    const char *error;
    size_t error_offset;
    struct slot local[SCRATCH_LOCAL];
};

static int fail(struct parser *ps, size_t offset, const char *msg)
{
    ps->error = msg;
    ps->error_offset = offset;
    return -EINVAL;
}

static int fail_oom(struct parser *ps)
{
    ps->error = "out of memory";
    ps->error_offset = ps->pos;
    return -ENOMEM;
}

static void skip_ws(struct parser *ps)
{
    while (ps->pos < ps->len) {
        char c = ps->text[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        ps->pos++;
    }
}

static int slot_push(struct parser *ps, const char *key, size_t key_offset, struct json_value *v)
{
    if (ps->nslots == ps->cap) {
        size_t cap = ps->cap * 2;
        struct slot *s;
        if (ps->slots == ps->local) {
            s = malloc(cap * sizeof(*s));
            if (s)
                memcpy(s, ps->local, ps->nslots * sizeof(*s));
        } else
            s = realloc(ps->slots, cap * sizeof(*s));
        if (!s)
            return fail_oom(ps);
        ps->slots = s;
        ps->cap = cap;
    }
    ps->slots[ps->nslots++] = (struct slot){ key, key_offset, v };
    return 0;
}

static int hex4(const char *p, uint32_t *ret)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -EINVAL;
    }
    *ret = v;
    return 0;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads the string at ps->pos (its opening quote) into the arena. Decoded text is never
 * longer than its source (an escape of 6 or 12 bytes yields at most 3 or 4), so the
 * source length bounds the allocation and the tail is given back afterwards. */
static int parse_string(struct parser *ps, char **ret, size_t *ret_len)
{
    const char *t = ps->text;
    size_t start = ps->pos + 1, end = start;

    /* Find the closing quote first: one allocation of the right bound. */
    for (;;) {
        if (end >= ps->len)
            return fail(ps, ps->pos, "a string is not terminated");
        unsigned char c = (unsigned char)t[end];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(ps, end, "a string contains a control character; escape it");
        end += c == '\\' ? 2 : 1;
    }

    char *out = arena_alloc(ps->doc, end - start + 1);
    if (!out)
        return fail_oom(ps);
    size_t n = 0;
    for (size_t i = start; i < end;) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x80) {
            uint32_t cp;
            int k = utf8_decode((const unsigned char *)t + i, end - i, &cp);
            if (k < 0)
                return fail(ps, i, "a string is not valid UTF-8");
            memcpy(out + n, t + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
            continue;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            i++;
            continue;
        }
        char e = t[i + 1];
        uint32_t cp;
        switch (e) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u':
            if (end - i < 6 || hex4(t + i + 2, &cp) < 0)
                return fail(ps, i, "a \\u escape needs four hex digits");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(ps, i, "a \\u escape is a lone surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t low;
                if (end - i < 12 || t[i + 6] != '\\' || t[i + 7] != 'u' ||
                    hex4(t + i + 8, &low) < 0 || low < 0xDC00 || low > 0xDFFF)
                    return fail(ps, i, "a \\u escape is a lone surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                i += 6;
            }
            n += utf8_encode(cp, out + n);
            i += 6;
            continue;
        default:
            return fail(ps, i, "a string contains an unknown escape");
        }
        i += 2;
    }
    out[n] = 0;
    arena_shrink_last(ps->doc, out, n + 1);
    ps->pos = end + 1;
    *ret = out;
    *ret_len = n;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *ps, struct json_value *v)
{
    const char *t = ps->text;
    size_t start = ps->pos, i = start;
    bool negative = false, integer = true;

    if (t[i] == '-') {
        negative = true;
        i++;
    }
    if (i >= ps->len || !is_digit(t[i]))
        return fail(ps, start, "a '-' is not followed by a digit");
    if (t[i] == '0') {
        i++;
        if (i < ps->len && is_digit(t[i]))
            return fail(ps, start, "a number has a leading zero");
    } else
        while (i < ps->len && is_digit(t[i]))
            i++;
    size_t int_end = i;
    if (i < ps->len && t[i] == '.') {
        integer = false;
        i++;
        if (i >= ps->len || !is_digit(t[i]))
            return fail(ps, i, "a number has no digit after its '.'");
        while (i < ps->len && is_digit(t[i]))
            i++;
    }
    if (i < ps->len && (t[i] == 'e' || t[i] == 'E')) {
        integer = false;
        i++;
        if (i < ps->len && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= ps->len || !is_digit(t[i]))
            return fail(ps, i, "a number has no digit in its exponent");
        while (i < ps->len && is_digit(t[i]))
            i++;
    }
    ps->pos = i;
    v->type = JSON_NUMBER;

    if (integer) {
        uint64_t mag = 0;
        bool fits = true;
        for (size_t k = start + negative; k < int_end; k++) {
            unsigned d = (unsigned)(t[k] - '0');
            if (mag > (UINT64_MAX - d) / 10) {
                fits = false;
                break;
            }
            mag = mag * 10 + d;
        }
        if (fits && (negative ? mag <= (uint64_t)INT64_MAX + 1 : mag <= (uint64_t)INT64_MAX)) {
            int64_t n = negative ? (int64_t)(0 - mag) : (int64_t)mag;
            v->number.is_integer = true;
            v->number.integer = n;
            /* int64 → double rounds to nearest, as strtod would. */
            v->number.value = negative && mag == 0 ? -0.0 : (double)n;
            return 0;
        }
    }

    size_t n = i - start;
    if (n > NUMBER_MAX)
        return fail(ps, start, "a number is longer than " STRINGIFY(NUMBER_MAX) " characters");
    char tmp[NUMBER_MAX + 1];
    memcpy(tmp, t + start, n);
    tmp[n] = 0;
    locale_t c = c_locale();
    if (!c)
        return fail_oom(ps);
    double d = strtod_l(tmp, NULL, c);
    if (isinf(d))
        return fail(ps, start, "a number is too large");
    v->number.value = d;
    v->number.is_integer = false;
    v->number.integer = 0;
    return 0;
}

static int parse_value(struct parser *ps, struct json_value *v, int depth);

static int key_cmp(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    int r = strcmp(x->key, y->key);
    if (r)
        return r;
    return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

/* Refuses an object naming one key twice (which of the two would a caller read?).
 * Reports the earliest key in the text that repeats an earlier one. Small objects are
 * compared pairwise; big ones sorted, so a hostile body costs n log n, not n². */
static int check_duplicates(struct parser *ps, size_t base)
{
    size_t n = ps->nslots - base;
    struct slot *s = ps->slots + base;
    size_t best = SIZE_MAX;

    if (n <= 16) {
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (streq(s[i].key, s[j].key) && s[i].key_offset < best)
                    best = s[i].key_offset;
    } else {
        _cleanup_free_ struct slot *sorted = malloc(n * sizeof(*sorted));
        if (!sorted)
            return fail_oom(ps);
        memcpy(sorted, s, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), key_cmp);
        for (size_t i = 1; i < n; i++)
            if (streq(sorted[i].key, sorted[i - 1].key) && sorted[i].key_offset < best)
                best = sorted[i].key_offset;
    }
    if (best != SIZE_MAX)
        return fail(ps, best, "an object has the same key twice");
    return 0;
}

static int parse_container(struct parser *ps, struct json_value *v, int depth, bool object)
{
    const char close = object ? '}' : ']';
    size_t base = ps->nslots;
    int r;

    if (depth >= JSON_MAX_DEPTH)
        return fail(ps, ps->pos, "the document nests deeper than " STRINGIFY(JSON_MAX_DEPTH) " levels");
    ps->pos++;
    skip_ws(ps);
    if (ps->pos < ps->len && ps->text[ps->pos] == close)
        ps->pos++;
    else
        for (;;) {
            char *key = NULL;
            size_t key_offset = ps->pos;
            if (object) {
                size_t key_len;
                if (ps->pos >= ps->len)
                    return fail(ps, ps->pos, "the document ends inside an object");
                if (ps->text[ps->pos] != '"')
                    return fail(ps, ps->pos, "expected a string as the object key");
                r = parse_string(ps, &key, &key_len);
                if (r < 0)
                    return r;
                /* Keys are looked up as C strings; an embedded NUL would make two
                 * different keys look alike. */
                if (strlen(key) != key_len)
                    return fail(ps, key_offset, "an object key contains \\u0000");
                skip_ws(ps);
                if (ps->pos >= ps->len || ps->text[ps->pos] != ':')
                    return fail(ps, ps->pos, "expected ':' after an object key");
                ps->pos++;
                skip_ws(ps);
            }
            struct json_value *item = arena_alloc(ps->doc, sizeof(*item));
            if (!item)
                return fail_oom(ps);
            r = parse_value(ps, item, depth + 1);
            if (r < 0)
                return r;
            r = slot_push(ps, key, key_offset, item);
            if (r < 0)
                return r;
            skip_ws(ps);
            if (ps->pos >= ps->len)
                return fail(ps, ps->pos, object ? "the document ends inside an object"
                                                : "the document ends inside an array");
            char c = ps->text[ps->pos++];
            if (c == close)
                break;
            if (c != ',')
                return fail(ps, ps->pos - 1, object ? "expected ',' or '}' after an object member"
                                                    : "expected ',' or ']' after an array item");
            skip_ws(ps);
        }

    size_t n = ps->nslots - base;
    struct json_value **values = NULL;
    if (n > 0) {
        values = arena_alloc(ps->doc, n * sizeof(*values));
        if (!values)
            return fail_oom(ps);
        for (size_t i = 0; i < n; i++)
            values[i] = ps->slots[base + i].value;
    }
    if (object) {
        char **keys = NULL;
        r = check_duplicates(ps, base);
        if (r < 0)
            return r;
        if (n > 0) {
            keys = arena_alloc(ps->doc, n * sizeof(*keys));
            if (!keys)
                return fail_oom(ps);
            for (size_t i = 0; i < n; i++)
                keys[i] = (char *)ps->slots[base + i].key;
        }
        v->type = JSON_OBJECT;
        v->object.keys = keys;
        v->object.values = values;
        v->object.n = n;
    } else {
        v->type = JSON_ARRAY;
        v->array.items = values;
        v->array.n = n;
    }
    ps->nslots = base;
    return 0;
}

static bool literal(struct parser *ps, const char *word)
{
    size_t n = strlen(word);
    if (ps->len - ps->pos < n || memcmp(ps->text + ps->pos, word, n) != 0)
        return false;
    ps->pos += n;
    return true;
}

static int parse_value(struct parser *ps, struct json_value *v, int depth)
{
    if (ps->pos >= ps->len)
        return fail(ps, ps->pos, "the document ends where a value was expected");
    char c = ps->text[ps->pos];
    switch (c) {
    case '{':
        return parse_container(ps, v, depth, true);
    case '[':
        return parse_container(ps, v, depth, false);
    case '"':
        v->type = JSON_STRING;
        return parse_string(ps, &v->string.data, &v->string.len);
    case 't':
    case 'f':
        if (!literal(ps, c == 't' ? "true" : "false"))
            break;
        v->type = JSON_BOOL;
        v->boolean = c == 't';
        return 0;
    case 'n':
        if (!literal(ps, "null"))
            break;
        v->type = JSON_NULL;
        return 0;
    default:
        if (c == '-' || is_digit(c))
            return parse_number(ps, v);
    }
    return fail(ps, ps->pos, "expected a value (an object, array, string, number, true, false or null)");
}

int json_parse(const char *text, size_t len, struct json_value **ret,
               const char **ret_error, size_t *ret_offset)
{
    struct parser ps = { .text = text, .len = len };
    ps.slots = ps.local;
    ps.cap = SCRATCH_LOCAL;

    /* The first chunk lives with the root and is sized from the input, which bounds
     * what a small body needs; big bodies grow by chunks. */
    size_t first = MIN(len + len / 2 + 256, (size_t)ARENA_FIRST_MAX);
    struct json_doc *d = malloc(sizeof(*d) + first);
    int r;
    if (!d) {
        r = fail_oom(&ps);
        goto out;
    }
    *d = (struct json_doc){ .cur = d->data, .end = d->data + first, .next_size = MAX(first, 4096) };
    ps.doc = d;

    skip_ws(&ps);
    if (ps.pos >= len) {
        r = fail(&ps, ps.pos, "the document is empty");
        goto out;
    }
    r = parse_value(&ps, &d->root, 0);
    if (r < 0)
        goto out;
    skip_ws(&ps);
    if (ps.pos < len) {
        r = fail(&ps, ps.pos, "there is more text after the JSON value");
        goto out;
    }
    *ret = &TAKE_PTR(d)->root;
out:
    if (ps.slots != ps.local)
        free(ps.slots);
    if (d)
        json_value_free(&d->root);
    if (r < 0) {
        if (ret_error)
            *ret_error = ps.error;
        if (ret_offset)
            *ret_offset = ps.error_offset;
    }
    return r;
}

/* ---- lookups ---- */

const struct json_value *json_get(const struct json_value *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT || !key)
        return NULL;
    for (size_t i = 0; i < v->object.n; i++)
        if (streq(v->object.keys[i], key))
            return v->object.values[i];
    return NULL;
}

const char *json_get_string(const struct json_value *v, const char *key)
{
    const struct json_value *m = json_get(v, key);
    return m && m->type == JSON_STRING ? m->string.data : NULL;
}

bool json_get_bool(const struct json_value *v, const char *key, bool *ret)
{
    const struct json_value *m = json_get(v, key);
    if (!m || m->type != JSON_BOOL)
        return false;
    *ret = m->boolean;
    return true;
}

bool json_get_int(const struct json_value *v, const char *key, int64_t *ret)
{
    const struct json_value *m = json_get(v, key);
    if (!m || m->type != JSON_NUMBER || !m->number.is_integer)
        return false;
    *ret = m->number.integer;
    return true;
}
