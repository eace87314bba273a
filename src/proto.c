/*
 * proto.c - the herald.v1 JSON protocol: parsing requests, writing replies (see proto.h and
 * proto/broker.md).
 *
 * A request is parsed twice over the same bytes. cJSON (length-bounded, never its global error
 * pointer) checks the structure and gives typed values. Then a small scanner of ours walks the
 * text, now known to be well formed, for two things cJSON cannot give: the raw spans of the
 * top-level members (so "id" and "data" pass on byte for byte) and the lexical rules cJSON is lax
 * about (leading zeros, "1.", raw control characters in strings, whitespace other than the four
 * JSON ones, a byte order mark). The latter matters because "data" is forwarded to subscribers
 * unchanged: it must be JSON that every client's parser accepts, not only cJSON.
 *
 * The scanner decides which occurrence of a top-level member counts (the last one spelled without
 * escapes) and names it by its position, and the cJSON value at that same position is used, so
 * the typed value and the raw span always come from the same member.
 */
#include "proto.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Integers above this are not exact as doubles (cJSON's numbers); also JavaScript's limit. */
#define SAFE_INT_MAX 9007199254740991.0 /* 2^53 - 1 */
#define LAST_MAX     1000000.0
#define LIMIT_MAX    1000.0

/* ---- strict lexical scanner (input already accepted by cJSON) ---- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

/* Advances *i past the string opening at s[*i]. Escapes were checked by cJSON, so a backslash
 * only means "skip the next byte"; raw control characters are refused (cJSON lets them in). */
static int scan_string(const char *s, size_t n, size_t *i)
{
    size_t j = *i + 1;
    while (j < n && s[j] != '"') {
        if ((unsigned char)s[j] < 0x20)
            return -1;
        j += s[j] == '\\' ? 2 : 1;
    }
    if (j >= n)
        return -1;
    *i = j + 1;
    return 0;
}

static size_t skip_digits(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* RFC 8259 number grammar: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? over all of s. */
static bool number_ok(const char *s, size_t n)
{
    size_t i = s[0] == '-' ? 1 : 0;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        i = skip_digits(s, i, n);
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t j = skip_digits(s, i + 1, n);
        if (j == i + 1)
            return false;
        i = j;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t j = skip_digits(s, i, n);
        if (j == i)
            return false;
        i = j;
    }
    return i == n;
}

/* Advances *i past a number. The token is the longest run of number characters, as cJSON reads
 * it, so "01" is one bad token rather than two good ones. */
static int scan_number(const char *s, size_t n, size_t *i)
{
    size_t j = *i;
    while (j < n && s[j] != '\0' && strchr("0123456789+-.eE", s[j]))
        j++;
    if (!number_ok(s + *i, j - *i))
        return -1;
    *i = j;
    return 0;
}

/* Advances *i past one value. cJSON has checked the structure, so nested values are skipped by
 * counting depth; every token on the way is checked against the strict lexical rules. */
static int scan_value(const char *s, size_t n, size_t *i)
{
    size_t j = *i;
    int depth = 0;
    do {
        if (j >= n)
            return -1;
        char c = s[j];
        if (c == '"') {
            if (scan_string(s, n, &j))
                return -1;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (scan_number(s, n, &j))
                return -1;
        } else if (c >= 'a' && c <= 'z') { /* true, false, null (checked by cJSON) */
            while (j < n && s[j] >= 'a' && s[j] <= 'z')
                j++;
        } else if (c == '{' || c == '[') {
            depth++;
            j++;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
            j++;
        } else if ((c == ',' || c == ':' || is_ws(c)) && depth > 0) {
            j++;
        } else {
            return -1;
        }
    } while (depth > 0);
    *i = j;
    return 0;
}

/* The top-level members proto_parse looks at. */
enum field { F_OP, F_ID, F_TOPIC, F_DATA, F_RECOVER, F_LAST, F_PRESENCE, F_LIMIT, F_COUNT };
static const char *const field_names[F_COUNT] = {"op",      "id",   "topic",    "data",
                                                 "recover", "last", "presence", "limit"};

struct span {
    int member;        /* position among the object's members, -1 when absent */
    size_t start, end; /* raw value text[start..end) */
};

/* Notes member `member` (key text s[k..k+klen), quotes excluded) if it is a known field. A key
 * written with escapes is never a field: only plain spellings are compared. */
static void note_member(const char *key, size_t klen, int member, size_t start, size_t end,
                        struct span *f, const char *const *names, int count)
{
    if (memchr(key, '\\', klen))
        return;
    for (int k = 0; k < count; k++) {
        if (strlen(names[k]) == klen && memcmp(names[k], key, klen) == 0) {
            f[k] = (struct span){.member = member, .start = start, .end = end};
            return; /* a later duplicate overwrites: the last occurrence counts */
        }
    }
}

/* Walks the members of the object opening at s[*i], noting those named in names[0..count);
 * advances *i past it. */
static int scan_object(const char *s, size_t n, size_t *i, struct span *f, const char *const *names,
                       int count)
{
    size_t j = skip_ws(s, *i + 1, n);
    for (int member = 0; j < n && s[j] == '"'; member++) {
        size_t key = j;
        if (scan_string(s, n, &j))
            return -1;
        size_t klen = j - key - 2;
        j = skip_ws(s, j, n);
        if (j >= n || s[j] != ':')
            return -1;
        size_t start = skip_ws(s, j + 1, n);
        j = start;
        if (scan_value(s, n, &j))
            return -1;
        note_member(s + key + 1, klen, member, start, j, f, names, count);
        j = skip_ws(s, j, n);
        if (j < n && s[j] == ',')
            j = skip_ws(s, j + 1, n);
    }
    if (j >= n || s[j] != '}')
        return -1;
    *i = j + 1;
    return 0;
}

/* Checks text[0..n) lexically up to the end of its value, stored in *end, and, when it is an
 * object, finds its known fields. Returns 0 or -1. */
static int scan_text(const char *s, size_t n, struct span *f, size_t *end)
{
    for (int k = 0; k < F_COUNT; k++)
        f[k] = (struct span){.member = -1};
    size_t i = skip_ws(s, 0, n);
    int rc = i < n && s[i] == '{' ? scan_object(s, n, &i, f, field_names, F_COUNT)
                                  : scan_value(s, n, &i);
    *end = i;
    return rc;
}

/* ---- request validation ---- */

static int fail(const char **code, const char **message, const char *c, const char *m)
{
    *code = c;
    *message = m;
    return -1;
}

/* The last member of a (nested) object named exactly `name`, as the top level does. */
static const cJSON *last_member(const cJSON *obj, const char *name)
{
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, name) == 0)
            found = c;
    return found;
}

/* A number with an integral value in [0, max] (max < 2^53, so the double is exact). */
static bool get_uint(const cJSON *item, double max, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!(d >= 0 && d <= max) || d != (double)(uint64_t)d)
        return false;
    *out = (uint64_t)d;
    return true;
}

static bool span_is(const char *text, const struct span *sp, const char *lit)
{
    size_t n = strlen(lit);
    return sp->end - sp->start == n && memcmp(text + sp->start, lit, n) == 0;
}

/* "op", compared on its raw text: "sub" exactly, not "s\u0075b". */
static int check_op(const char *text, const struct span *sp, const cJSON *item,
                    struct proto_request *req, const char **code, const char **message)
{
    static const char *const ops[] = {"\"sub\"", "\"unsub\"", "\"pub\"", "\"ping\"",
                                      "\"presence\""};
    static const enum proto_op values[] = {PROTO_SUB, PROTO_UNSUB, PROTO_PUB, PROTO_PING,
                                           PROTO_PRESENCE};

    if (!item)
        return fail(code, message, PROTO_E_MISSING_FIELD, "op is required");
    if (!cJSON_IsString(item))
        return fail(code, message, PROTO_E_BAD_REQUEST, "op must be a string");
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        if (span_is(text, sp, ops[k])) {
            req->op = values[k];
            return 0;
        }
    }
    return fail(code, message, PROTO_E_UNKNOWN_OP, "op must be sub, unsub, pub, presence or ping");
}

static int check_topic(const char *text, const struct span *sp, const cJSON *item,
                       struct proto_request *req, const char **code, const char **message)
{
    if (!item)
        return fail(code, message, PROTO_E_MISSING_FIELD, "topic is required");
    if (!cJSON_IsString(item))
        return fail(code, message, PROTO_E_BAD_REQUEST, "topic must be a string");
    /* Without escapes the raw contents are the name itself, so it can point into the input. */
    if (memchr(text + sp->start, '\\', sp->end - sp->start))
        return fail(code, message, PROTO_E_BAD_TOPIC, "escapes are not allowed in topic names");
    req->topic = text + sp->start + 1;
    req->topic_len = sp->end - sp->start - 2;
    return 0;
}

static int check_recover(const cJSON *item, struct proto_request *req, const char **code,
                         const char **message)
{
    if (!cJSON_IsObject(item))
        return fail(code, message, PROTO_E_BAD_REQUEST, "recover must be an object");
    const cJSON *epoch = last_member(item, "epoch");
    const cJSON *offset = last_member(item, "offset");
    if (!epoch || !offset)
        return fail(code, message, PROTO_E_MISSING_FIELD, "recover needs epoch and offset");
    if (!cJSON_IsString(epoch))
        return fail(code, message, PROTO_E_BAD_REQUEST, "recover.epoch must be a string");
    if (strlen(epoch->valuestring) >= sizeof(req->epoch))
        return fail(code, message, PROTO_E_BAD_REQUEST, "recover.epoch is too long");
    if (!get_uint(offset, SAFE_INT_MAX, &req->offset))
        return fail(code, message, PROTO_E_BAD_REQUEST,
                    "recover.offset must be an integer from 0 to 2^53-1");
    memcpy(req->epoch, epoch->valuestring, strlen(epoch->valuestring) + 1);
    req->recover = true;
    return 0;
}

static int check_last(const cJSON *item, struct proto_request *req, const char **code,
                      const char **message)
{
    uint64_t v;
    if (!get_uint(item, LAST_MAX, &v))
        return fail(code, message, PROTO_E_BAD_REQUEST,
                    "last must be an integer from 0 to 1000000");
    req->last = (unsigned)v;
    return 0;
}

/* "presence": true, or an object whose optional "info" is an object of at most PROTO_INFO_MAX
 * bytes, kept as its raw text (found by scanning the presence object as the top level is). */
static int check_presence(const char *text, const struct span *sp, const cJSON *item,
                          struct proto_request *req, const char **code, const char **message)
{
    static const char *const names[] = {"info"};
    if (cJSON_IsTrue(item)) {
        req->presence = true;
        return 0;
    }
    if (cJSON_IsFalse(item))
        return 0;
    if (!cJSON_IsObject(item))
        return fail(code, message, PROTO_E_BAD_REQUEST, "presence must be true or an object");
    struct span info = {.member = -1};
    size_t i = sp->start;
    if (scan_object(text, sp->end, &i, &info, names, 1))
        return fail(code, message, PROTO_E_BAD_JSON, "not valid JSON (RFC 8259)");
    /* The member the scanner chose (the last plain spelling), by position, as the top level. */
    const cJSON *it = NULL;
    if (info.member >= 0) {
        it = item->child;
        for (int k = 0; it && k < info.member; k++)
            it = it->next;
    }
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsObject(it))
            return fail(code, message, PROTO_E_BAD_REQUEST, "presence.info must be an object");
        if (info.end - info.start > PROTO_INFO_MAX)
            return fail(code, message, PROTO_E_BAD_REQUEST, "presence.info is over 256 bytes");
        req->info = text + info.start;
        req->info_len = info.end - info.start;
    }
    req->presence = true;
    return 0;
}

static int check_limit(const cJSON *item, struct proto_request *req, const char **code,
                       const char **message)
{
    uint64_t v;
    if (!get_uint(item, LIMIT_MAX, &v))
        return fail(code, message, PROTO_E_BAD_REQUEST, "limit must be an integer from 0 to 1000");
    req->limit = (unsigned)v;
    return 0;
}

/* Validates the members an op uses; `it` holds the cJSON value of each span's member. */
static int check_fields(const char *text, const struct span *f, const cJSON *const *it,
                        bool publish_only, struct proto_request *req, const char **code,
                        const char **message)
{
    if (it[F_ID]) {
        if (!cJSON_IsNumber(it[F_ID]) && !cJSON_IsString(it[F_ID]))
            return fail(code, message, PROTO_E_BAD_REQUEST, "id must be a number or a string");
        req->id = text + f[F_ID].start;
        req->id_len = f[F_ID].end - f[F_ID].start;
    }
    if (publish_only && !it[F_OP])
        req->op = PROTO_PUB; /* an HTTP API publish needs no op */
    else if (check_op(text, &f[F_OP], it[F_OP], req, code, message))
        return -1;
    if (publish_only && req->op != PROTO_PUB)
        return fail(code, message, PROTO_E_UNKNOWN_OP, "only pub can be published");
    if (req->op == PROTO_PING)
        return 0;
    if (check_topic(text, &f[F_TOPIC], it[F_TOPIC], req, code, message))
        return -1;
    if (req->op == PROTO_PUB) {
        if (!it[F_DATA])
            return fail(code, message, PROTO_E_MISSING_FIELD, "data is required");
        req->data = text + f[F_DATA].start;
        req->data_len = f[F_DATA].end - f[F_DATA].start;
    }
    if (req->op == PROTO_SUB && it[F_RECOVER] && check_recover(it[F_RECOVER], req, code, message))
        return -1;
    if (req->op == PROTO_SUB && it[F_LAST] && check_last(it[F_LAST], req, code, message))
        return -1;
    if (req->op == PROTO_SUB && it[F_PRESENCE] &&
        check_presence(text, &f[F_PRESENCE], it[F_PRESENCE], req, code, message))
        return -1;
    if (req->op == PROTO_PRESENCE) {
        req->limit = PROTO_LIMIT_DEFAULT;
        if (it[F_LIMIT] && check_limit(it[F_LIMIT], req, code, message))
            return -1;
    }
    return 0;
}

/* Parses one request; `publish_only` is the HTTP API's mode, where op defaults to pub. */
static int parse(const char *text, size_t len, struct proto_request *req, bool publish_only,
                 const char **code, const char **message)
{
    memset(req, 0, sizeof(*req));
    const char *end = NULL;
    cJSON *root = len ? cJSON_ParseWithLengthOpts(text, len, &end, 0) : NULL;
    if (!root)
        return fail(code, message, PROTO_E_BAD_JSON, "not valid JSON");

    struct span f[F_COUNT];
    size_t after = end ? (size_t)(end - text) : len, scanned;
    if (skip_ws(text, after, len) != len) {
        cJSON_Delete(root);
        return fail(code, message, PROTO_E_BAD_JSON, "unexpected text after the JSON value");
    }
    /* cJSON skips a byte order mark and any byte up to 0x20 as whitespace; we do not. */
    if (scan_text(text, len, f, &scanned) || scanned != after) {
        cJSON_Delete(root);
        return fail(code, message, PROTO_E_BAD_JSON, "not valid JSON (RFC 8259)");
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(code, message, PROTO_E_BAD_REQUEST, "a request must be a JSON object");
    }
    /* cJSON keeps every member, duplicates included, in text order. */
    const cJSON *it[F_COUNT] = {0};
    int member = 0;
    for (const cJSON *c = root->child; c; c = c->next, member++)
        for (int k = 0; k < F_COUNT; k++)
            if (f[k].member == member)
                it[k] = c;
    int rc = check_fields(text, f, it, publish_only, req, code, message);
    cJSON_Delete(root);
    return rc;
}

int proto_parse(const char *text, size_t len, struct proto_request *req, const char **code,
                const char **message)
{
    return parse(text, len, req, false, code, message);
}

int proto_parse_publish(const char *text, size_t len, struct proto_request *req, const char **code,
                        const char **message)
{
    return parse(text, len, req, true, code, message);
}

int proto_array_next(const char *text, size_t len, size_t *pos, const char **el, size_t *el_len)
{
    size_t i = skip_ws(text, *pos, len);
    if (*pos == 0) {
        if (i >= len || text[i] != '[')
            return -1;
        i = skip_ws(text, i + 1, len);
        if (i < len && text[i] == ']') {
            *pos = len + 1;
            return skip_ws(text, i + 1, len) == len ? 0 : -1;
        }
    } else if (*pos > len) { /* past the closing bracket */
        return 0;
    }
    size_t start = i;
    if (scan_value(text, len, &i))
        return -1;
    *el = text + start;
    *el_len = i - start;
    i = skip_ws(text, i, len);
    if (i < len && text[i] == ',') {
        *pos = i + 1;
    } else if (i < len && text[i] == ']' && skip_ws(text, i + 1, len) == len) {
        *pos = len + 1; /* not len: a text ending in a comma leaves *pos there */
    } else {
        return -1;
    }
    return 1;
}

/* ---- reply writers ---- */

/* A bounded writer: once something does not fit, nothing more is written and the result is 0.
 * One byte is always kept for the terminating NUL. */
struct wbuf {
    char *p;
    size_t cap, len;
    bool full;
};

static void put(struct wbuf *w, const char *s, size_t n)
{
    if (w->full || n >= w->cap - w->len) {
        w->full = true;
        return;
    }
    if (n)
        memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void put_lit(struct wbuf *w, const char *s)
{
    put(w, s, strlen(s));
}

/* JSON string contents: runs of plain bytes are copied, '"' '\' and controls escaped. */
static void put_escaped(struct wbuf *w, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, s + run, i - run);
        char esc[8];
        int k = c < 0x20 ? snprintf(esc, sizeof(esc), "\\u%04x", c)
                         : snprintf(esc, sizeof(esc), "\\%c", c);
        put(w, esc, (size_t)k);
        run = i + 1;
    }
    put(w, s + run, n - run);
}

static void put_string(struct wbuf *w, const char *s, size_t n)
{
    put(w, "\"", 1);
    put_escaped(w, s, n);
    put(w, "\"", 1);
}

static void put_cstring(struct wbuf *w, const char *s)
{
    put_string(w, s ? s : "", s ? strlen(s) : 0);
}

static void put_u64(struct wbuf *w, uint64_t v)
{
    char num[24];
    int k = snprintf(num, sizeof(num), "%" PRIu64, v);
    put(w, num, (size_t)k);
}

/* ,"id":<raw> when the request had one. */
static void put_id(struct wbuf *w, const char *id, size_t id_len)
{
    if (!id)
        return;
    put_lit(w, ",\"id\":");
    put(w, id, id_len);
}

static size_t finish(struct wbuf *w)
{
    if (w->full)
        return 0;
    w->p[w->len] = '\0';
    return w->len;
}

size_t proto_json_escape(char *out, size_t cap, const char *s, size_t n)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_escaped(&w, s, n);
    return finish(&w);
}

size_t proto_welcome(char *out, size_t cap, const char *session)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_lit(&w, "{\"type\":\"welcome\",\"version\":\"" PROTO_VERSION "\",\"session\":");
    put_cstring(&w, session);
    put_lit(&w, "}");
    return finish(&w);
}

size_t proto_error(char *out, size_t cap, const char *id, size_t id_len, const char *code,
                   const char *message)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_lit(&w, "{\"type\":\"error\"");
    put_id(&w, id, id_len);
    put_lit(&w, ",\"code\":");
    put_cstring(&w, code);
    put_lit(&w, ",\"message\":");
    put_cstring(&w, message);
    put_lit(&w, "}");
    return finish(&w);
}

size_t proto_pong(char *out, size_t cap, const char *id, size_t id_len)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_lit(&w, "{\"type\":\"pong\"");
    put_id(&w, id, id_len);
    put_lit(&w, "}");
    return finish(&w);
}

/* {"type":"ack","op":"<op>","id":..,"topic":"<t>" : the start every ack shares. */
static void put_ack_head(struct wbuf *w, const char *op, const struct proto_request *req)
{
    put_lit(w, "{\"type\":\"ack\",\"op\":\"");
    put_lit(w, op);
    put_lit(w, "\"");
    put_id(w, req->id, req->id_len);
    put_lit(w, ",\"topic\":");
    put_string(w, req->topic ? req->topic : "", req->topic ? req->topic_len : 0);
}

size_t proto_ack_sub(char *out, size_t cap, const struct proto_request *req, const char *epoch,
                     uint64_t offset, uint64_t replay, uint64_t delivered, int recovered)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_ack_head(&w, "sub", req);
    put_lit(&w, ",\"epoch\":");
    put_cstring(&w, epoch);
    put_lit(&w, ",\"offset\":");
    put_u64(&w, offset);
    put_lit(&w, ",\"replay\":");
    put_u64(&w, replay);
    if (delivered) {
        put_lit(&w, ",\"delivered\":");
        put_u64(&w, delivered);
    }
    if (req->recover && recovered != PROTO_RECOVERY_IGNORED)
        put_lit(&w, recovered ? ",\"recovered\":true" : ",\"recovered\":false");
    put_lit(&w, "}");
    return finish(&w);
}

size_t proto_ack_presence_head(char *out, size_t cap, const struct proto_request *req, size_t count)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_ack_head(&w, "presence", req);
    put_lit(&w, ",\"count\":");
    put_u64(&w, count);
    put_lit(&w, ",\"members\":[");
    return finish(&w);
}

size_t proto_member(char *out, size_t cap, const char *session, const char *info, size_t info_len)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_lit(&w, "{\"session\":");
    put_cstring(&w, session);
    put_lit(&w, ",\"info\":");
    if (info)
        put(&w, info, info_len);
    else
        put_lit(&w, "null");
    put_lit(&w, "}");
    return finish(&w);
}

size_t proto_ack_unsub(char *out, size_t cap, const struct proto_request *req)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_ack_head(&w, "unsub", req);
    put_lit(&w, "}");
    return finish(&w);
}

size_t proto_ack_pub(char *out, size_t cap, const struct proto_request *req, uint64_t offset,
                     unsigned reach)
{
    struct wbuf w = {.p = out, .cap = cap};
    put_ack_head(&w, "pub", req);
    put_lit(&w, ",\"offset\":");
    put_u64(&w, offset);
    put_lit(&w, ",\"reach\":");
    put_u64(&w, reach);
    put_lit(&w, "}");
    return finish(&w);
}
