/* json_schema.c - see json_schema.h. */
#include "json_schema.h"

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_URI  "https://json-schema.org/draft/2020-12/schema"
#define DEFS_PREFIX "#/$defs/"
#define MAX_DEPTH   64
#define PATH_CAP    512
#define WHY_CAP     1024

struct schema_regex {
    const cJSON *node; /* the "pattern" member */
    regex_t re;
};

/* ---- loading and checking the schema ---- */

static int load_fail(struct schema *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int load_fail(struct schema *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->error, sizeof(s->error), fmt, ap);
    va_end(ap);
    return -1;
}

/* Without libm (the test programs are not linked with -lm): beyond 2^53 every double is whole. */
static bool is_integral(double d)
{
    if (!isfinite(d))
        return false;
    if (d >= 9007199254740992.0 || d <= -9007199254740992.0)
        return true;
    return (double)(long long)d == d;
}

static bool is_nonneg_integer(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && is_integral(v->valuedouble);
}

static const char *const type_names[] = {"object",  "array",   "string", "number",
                                         "integer", "boolean", "null"};

static bool known_type(const char *t)
{
    for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
        if (strcmp(t, type_names[i]) == 0)
            return true;
    return false;
}

/* The definition "#/$defs/NAME" names, or NULL. */
static const cJSON *resolve_ref(const cJSON *root, const char *ref)
{
    if (strncmp(ref, DEFS_PREFIX, strlen(DEFS_PREFIX)) != 0)
        return NULL;
    const char *name = ref + strlen(DEFS_PREFIX);
    if (!*name || strchr(name, '/') || strchr(name, '~') || strchr(name, '%'))
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "$defs"), name);
}

static int add_regex(struct schema *s, const cJSON *node, const char *where)
{
    if (s->nres == s->capres) {
        size_t cap = s->capres ? s->capres * 2 : 8;
        struct schema_regex *r = realloc(s->res, cap * sizeof(*r));
        if (!r)
            return load_fail(s, "out of memory");
        s->res = r;
        s->capres = cap;
    }
    struct schema_regex *r = &s->res[s->nres];
    int rc = regcomp(&r->re, node->valuestring, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &r->re, msg, sizeof(msg));
        return load_fail(s, "%s/pattern: \"%s\" is not a POSIX extended regex: %s", where,
                         node->valuestring, msg);
    }
    r->node = node;
    s->nres++;
    return 0;
}

static int check_node(struct schema *s, const cJSON *node, const char *where, bool is_root);

/* Every member of an object-valued keyword (properties, $defs) is a schema. */
static int check_schema_map(struct schema *s, const cJSON *map, const char *where, const char *kw)
{
    if (!cJSON_IsObject(map))
        return load_fail(s, "%s/%s must be an object", where, kw);
    for (const cJSON *m = map->child; m; m = m->next) {
        for (const cJSON *o = m->next; o; o = o->next)
            if (strcmp(o->string, m->string) == 0)
                return load_fail(s, "%s/%s: \"%s\" given twice", where, kw, m->string);
        char sub[PATH_CAP];
        snprintf(sub, sizeof(sub), "%s/%s/%s", where, kw, m->string);
        if (check_node(s, m, sub, false))
            return -1;
    }
    return 0;
}

static int check_node(struct schema *s, const cJSON *node, const char *where, bool is_root)
{
    if (!cJSON_IsObject(node))
        return load_fail(s,
                         "%s: a schema must be an object here (boolean schemas are not in the "
                         "subset)",
                         where);
    for (const cJSON *k = node->child; k; k = k->next) {
        const char *kw = k->string;
        for (const cJSON *o = k->next; o; o = o->next)
            if (strcmp(o->string, kw) == 0)
                return load_fail(s, "%s: keyword \"%s\" given twice", where, kw);
        if (strcmp(kw, "$schema") == 0) {
            if (!is_root || !cJSON_IsString(k) || strcmp(k->valuestring, SCHEMA_URI) != 0)
                return load_fail(s, "%s/$schema: only \"" SCHEMA_URI "\", at the root", where);
        } else if (strcmp(kw, "title") == 0 || strcmp(kw, "description") == 0) {
            if (!cJSON_IsString(k))
                return load_fail(s, "%s/%s must be a string", where, kw);
        } else if (strcmp(kw, "type") == 0) {
            if (!cJSON_IsString(k) || !known_type(k->valuestring))
                return load_fail(s, "%s/type must be one type name (a string)", where);
        } else if (strcmp(kw, "properties") == 0) {
            if (check_schema_map(s, k, where, kw))
                return -1;
        } else if (strcmp(kw, "required") == 0) {
            if (!cJSON_IsArray(k))
                return load_fail(s, "%s/required must be an array", where);
            for (const cJSON *r = k->child; r; r = r->next) {
                if (!cJSON_IsString(r))
                    return load_fail(s, "%s/required: names must be strings", where);
                for (const cJSON *o = r->next; o; o = o->next)
                    if (cJSON_IsString(o) && strcmp(o->valuestring, r->valuestring) == 0)
                        return load_fail(s, "%s/required: \"%s\" twice", where, r->valuestring);
            }
        } else if (strcmp(kw, "additionalProperties") == 0) {
            if (!cJSON_IsBool(k))
                return load_fail(s, "%s/additionalProperties must be a boolean in the subset",
                                 where);
        } else if (strcmp(kw, "enum") == 0) {
            if (!cJSON_IsArray(k) || !k->child)
                return load_fail(s, "%s/enum must be a non-empty array", where);
        } else if (strcmp(kw, "const") == 0) {
            /* any value */
        } else if (strcmp(kw, "oneOf") == 0) {
            if (!cJSON_IsArray(k) || !k->child)
                return load_fail(s, "%s/oneOf must be a non-empty array", where);
            int i = 0;
            for (const cJSON *b = k->child; b; b = b->next, i++) {
                char sub[PATH_CAP];
                snprintf(sub, sizeof(sub), "%s/oneOf/%d", where, i);
                if (check_node(s, b, sub, false))
                    return -1;
            }
        } else if (strcmp(kw, "minimum") == 0) {
            if (!cJSON_IsNumber(k))
                return load_fail(s, "%s/minimum must be a number", where);
        } else if (strcmp(kw, "maximum") == 0) {
            if (!cJSON_IsNumber(k))
                return load_fail(s, "%s/maximum must be a number", where);
        } else if (strcmp(kw, "maxLength") == 0 || strcmp(kw, "maxItems") == 0) {
            if (!is_nonneg_integer(k))
                return load_fail(s, "%s/%s must be a non-negative integer", where, kw);
        } else if (strcmp(kw, "items") == 0) {
            char sub[PATH_CAP];
            snprintf(sub, sizeof(sub), "%s/items", where);
            if (check_node(s, k, sub, false))
                return -1;
        } else if (strcmp(kw, "pattern") == 0) {
            if (!cJSON_IsString(k))
                return load_fail(s, "%s/pattern must be a string", where);
            if (add_regex(s, k, where))
                return -1;
        } else if (strcmp(kw, "$defs") == 0) {
            if (!is_root)
                return load_fail(s, "%s: $defs only at the root in the subset", where);
            if (check_schema_map(s, k, where, kw))
                return -1;
        } else if (strcmp(kw, "$ref") == 0) {
            if (!cJSON_IsString(k) || !resolve_ref(s->root, k->valuestring))
                return load_fail(s, "%s/$ref must be \"" DEFS_PREFIX "NAME\" naming a definition",
                                 where);
        } else {
            return load_fail(s, "%s: keyword \"%s\" is not in the supported subset", where, kw);
        }
    }
    return 0;
}

static int load_parsed(struct schema *s, const char *text)
{
    const char *end = NULL;
    s->root = cJSON_ParseWithOpts(text, &end, 1);
    if (!s->root)
        return load_fail(s, "%s: not JSON (near byte %td)", s->path,
                         end ? end - text : (ptrdiff_t)0);
    if (check_node(s, s->root, "#", true)) {
        char detail[sizeof(s->error)];
        memcpy(detail, s->error, sizeof(detail));
        schema_free(s);
        snprintf(s->error, sizeof(s->error), "%.300s: %.700s", s->path, detail);
        return -1;
    }
    return 0;
}

static void schema_init(struct schema *s)
{
    memset(s, 0, sizeof(*s));
}

int schema_load_string(struct schema *s, const char *text)
{
    schema_init(s);
    snprintf(s->path, sizeof(s->path), "(string)");
    return load_parsed(s, text);
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 8192, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

/* path, or the repository root (two levels above $HERALD_BIN) joined with path. */
static void bin_relative(char *out, size_t cap, const char *path)
{
    out[0] = '\0';
    const char *bin = getenv("HERALD_BIN");
    if (!bin || !*bin)
        return;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", bin);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(dir, sizeof(dir), ".");
            break;
        }
        if (slash == dir) {
            dir[1] = '\0';
            break;
        }
        *slash = '\0';
    }
    snprintf(out, cap, "%.700s/%.300s", dir, path);
}

int schema_load(struct schema *s, const char *path)
{
    schema_init(s);
    char cand[2][1024];
    int n = 0;
    if (path[0] == '/') {
        snprintf(cand[n++], sizeof(cand[0]), "%s", path);
    } else {
        bin_relative(cand[n], sizeof(cand[0]), path);
        if (cand[n][0])
            n++;
        snprintf(cand[n++], sizeof(cand[0]), "%s", path);
    }
    for (int i = 0; i < n; i++) {
        char *text = read_whole(cand[i]);
        if (!text)
            continue;
        snprintf(s->path, sizeof(s->path), "%.1000s", cand[i]);
        int rc = load_parsed(s, text);
        free(text);
        return rc;
    }
    return load_fail(s, "%s: cannot read it (tried %s%s%s)", path, cand[0], n > 1 ? " and " : "",
                     n > 1 ? cand[1] : "");
}

void schema_free(struct schema *s)
{
    for (size_t i = 0; i < s->nres; i++)
        regfree(&s->res[i].re);
    free(s->res);
    cJSON_Delete(s->root);
    s->res = NULL;
    s->nres = s->capres = 0;
    s->root = NULL;
}

/* ---- validating ---- */

struct vctx {
    const struct schema *s;
    char ipath[PATH_CAP]; /* instance location: $, $.recover.offset */
    size_t ilen;
    char spath[PATH_CAP]; /* schema location: #/$defs/ack_sub */
    size_t slen;
    char why[WHY_CAP];
    bool discr;       /* the failure was a const mismatch (a wrong alternative, not a broken one) */
    bool type_fail;   /* the failure was of "type" ... */
    size_t fail_ilen; /* ... at this instance location (its length in ipath) */
    int depth;
};

static size_t push(char *buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends to a path; returns the old length to pop back to. */
static size_t push(char *buf, size_t *len, const char *fmt, ...)
{
    size_t old = *len;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, PATH_CAP - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len = *len + (size_t)k < PATH_CAP ? *len + (size_t)k : PATH_CAP - 1;
    return old;
}

static void pop(char *buf, size_t *len, size_t old)
{
    *len = old;
    buf[old] = '\0';
}

/* A short rendering of a value for messages. */
static void show(const cJSON *v, char *out, size_t cap)
{
    char *txt = cJSON_PrintUnformatted(v);
    if (!txt) {
        snprintf(out, cap, "(?)");
        return;
    }
    if (strlen(txt) > 60)
        snprintf(out, cap, "%.57s...", txt);
    else
        snprintf(out, cap, "%s", txt);
    free(txt);
}

static int vfail(struct vctx *c, const char *kw, bool discr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int vfail(struct vctx *c, const char *kw, bool discr, const char *fmt, ...)
{
    char msg[WHY_CAP / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->why, sizeof(c->why), "%.200s: %.500s (schema %.250s%s%.40s)", c->ipath, msg,
             c->spath, *kw ? "/" : "", kw);
    c->discr = discr;
    c->type_fail = strcmp(kw, "type") == 0;
    c->fail_ilen = c->ilen;
    return -1;
}

static bool type_ok(const cJSON *v, const char *t)
{
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && is_integral(v->valuedouble);
    return false;
}

static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static const regex_t *find_regex(const struct schema *s, const cJSON *node)
{
    for (size_t i = 0; i < s->nres; i++)
        if (s->res[i].node == node)
            return &s->res[i].re;
    return NULL;
}

static int validate(struct vctx *c, const cJSON *sch, const cJSON *v);

static int v_one_of(struct vctx *c, const cJSON *alts, const cJSON *v)
{
    int matches = 0, first = -1, second = -1, n = 0;
    char best[WHY_CAP] = "", any[WHY_CAP] = "";
    size_t sold = push(c->spath, &c->slen, "/oneOf");
    for (const cJSON *b = alts->child; b; b = b->next, n++) {
        size_t bold = push(c->spath, &c->slen, "/%d", n);
        if (validate(c, b, v) == 0) {
            if (matches == 0)
                first = n;
            else if (matches == 1)
                second = n;
            matches++;
        } else if (!c->discr && !(c->type_fail && c->fail_ilen == c->ilen) && !best[0]) {
            /* Not failed on a const, nor on the type of the value itself: the alternative
             * meant. */
            memcpy(best, c->why, sizeof(best));
        } else if (!any[0]) {
            memcpy(any, c->why, sizeof(any));
        }
        pop(c->spath, &c->slen, bold);
    }
    int rc = 0;
    if (matches > 1) {
        rc = vfail(c, "", false,
                   "matches %d alternatives of oneOf (%d and %d at least), not "
                   "exactly one",
                   matches, first, second);
    } else if (matches == 0 && best[0]) {
        /* The alternative that agreed on the discriminating consts is the one meant. */
        memcpy(c->why, best, sizeof(c->why));
        c->discr = c->type_fail = false;
        rc = -1;
    } else if (matches == 0) {
        char first_why[WHY_CAP / 2];
        snprintf(first_why, sizeof(first_why), "%s", any);
        rc = vfail(c, "", false, "matches none of the %d alternatives of oneOf; first: %s", n,
                   first_why);
        /* To an enclosing oneOf, like a value of the wrong type here. */
        c->type_fail = true;
    }
    pop(c->spath, &c->slen, sold);
    return rc;
}

static int v_object(struct vctx *c, const cJSON *sch, const cJSON *v)
{
    for (const cJSON *m = v->child; m; m = m->next)
        for (const cJSON *o = m->next; o; o = o->next)
            if (strcmp(o->string, m->string) == 0)
                return vfail(c, "", false, "member \"%s\" appears twice", m->string);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(sch, "properties");
    if (props) {
        for (const cJSON *m = v->child; m; m = m->next) {
            const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, m->string);
            if (!ps)
                continue;
            size_t iold = push(c->ipath, &c->ilen, ".%s", m->string);
            size_t sold = push(c->spath, &c->slen, "/properties/%s", m->string);
            int rc = validate(c, ps, m);
            pop(c->ipath, &c->ilen, iold);
            pop(c->spath, &c->slen, sold);
            if (rc)
                return rc;
        }
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(sch, "required");
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next)
        if (!cJSON_GetObjectItemCaseSensitive(v, r->valuestring))
            return vfail(c, "required", false, "required member \"%s\" is missing", r->valuestring);
    const cJSON *ap = cJSON_GetObjectItemCaseSensitive(sch, "additionalProperties");
    if (cJSON_IsFalse(ap))
        for (const cJSON *m = v->child; m; m = m->next)
            if (!props || !cJSON_GetObjectItemCaseSensitive(props, m->string)) {
                size_t iold = push(c->ipath, &c->ilen, ".%s", m->string);
                int rc = vfail(c, "additionalProperties", false, "member not allowed here");
                pop(c->ipath, &c->ilen, iold);
                return rc;
            }
    return 0;
}

static int v_array(struct vctx *c, const cJSON *sch, const cJSON *v)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(sch, "maxItems");
    if (k && (double)cJSON_GetArraySize(v) > k->valuedouble)
        return vfail(c, "maxItems", false, "%d items, more than %g", cJSON_GetArraySize(v),
                     k->valuedouble);
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(sch, "items");
    int i = 0;
    for (const cJSON *e = v->child; items && e; e = e->next, i++) {
        size_t iold = push(c->ipath, &c->ilen, "[%d]", i);
        size_t sold = push(c->spath, &c->slen, "/items");
        int rc = validate(c, items, e);
        pop(c->ipath, &c->ilen, iold);
        pop(c->spath, &c->slen, sold);
        if (rc)
            return rc;
    }
    return 0;
}

static int validate(struct vctx *c, const cJSON *sch, const cJSON *v)
{
    if (++c->depth > MAX_DEPTH) {
        c->depth--;
        return vfail(c, "", false, "schema nesting deeper than %d ($ref loop?)", MAX_DEPTH);
    }
    int rc = -1;
    char shown[80];
    /* Discriminating keywords first, so a wrong alternative of a oneOf fails on them. */
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(sch, "type");
    if (k && !type_ok(v, k->valuestring)) {
        show(v, shown, sizeof(shown));
        vfail(c, "type", false, "%s is not of type %s", shown, k->valuestring);
        goto out;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "const")) && !cJSON_Compare(v, k, true)) {
        char want[80];
        show(v, shown, sizeof(shown));
        show(k, want, sizeof(want));
        vfail(c, "const", true, "%s is not the const %s", shown, want);
        goto out;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "enum"))) {
        const cJSON *e = k->child;
        while (e && !cJSON_Compare(v, e, true))
            e = e->next;
        if (!e) {
            show(v, shown, sizeof(shown));
            vfail(c, "enum", false, "%s is not one of the enum's values", shown);
            goto out;
        }
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "minimum")) && cJSON_IsNumber(v) &&
        !(v->valuedouble >= k->valuedouble)) {
        show(v, shown, sizeof(shown));
        vfail(c, "minimum", false, "%s is below the minimum %g", shown, k->valuedouble);
        goto out;
    }
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "maximum")) && cJSON_IsNumber(v) &&
        !(v->valuedouble <= k->valuedouble)) {
        show(v, shown, sizeof(shown));
        vfail(c, "maximum", false, "%s is above the maximum %g", shown, k->valuedouble);
        goto out;
    }
    if (cJSON_IsArray(v) && v_array(c, sch, v))
        goto out;
    if (cJSON_IsString(v)) {
        if ((k = cJSON_GetObjectItemCaseSensitive(sch, "maxLength")) &&
            (double)utf8_length(v->valuestring) > k->valuedouble) {
            show(v, shown, sizeof(shown));
            vfail(c, "maxLength", false, "%s is longer than %g characters (%zu)", shown,
                  k->valuedouble, utf8_length(v->valuestring));
            goto out;
        }
        if ((k = cJSON_GetObjectItemCaseSensitive(sch, "pattern"))) {
            const regex_t *re = find_regex(c->s, k);
            if (!re) {
                vfail(c, "pattern", false, "pattern not compiled (schema changed after loading?)");
                goto out;
            }
            if (regexec(re, v->valuestring, 0, NULL, 0) != 0) {
                show(v, shown, sizeof(shown));
                vfail(c, "pattern", false, "%s does not match %s", shown, k->valuestring);
                goto out;
            }
        }
    }
    if (cJSON_IsObject(v) && v_object(c, sch, v))
        goto out;
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "oneOf")) && v_one_of(c, k, v))
        goto out;
    if ((k = cJSON_GetObjectItemCaseSensitive(sch, "$ref"))) {
        const cJSON *target = resolve_ref(c->s->root, k->valuestring);
        char saved[PATH_CAP];
        size_t saved_len = c->slen;
        memcpy(saved, c->spath, sizeof(saved));
        c->slen = (size_t)snprintf(c->spath, sizeof(c->spath), "%s", k->valuestring);
        int r = target ? validate(c, target, v) : vfail(c, "", false, "unresolved $ref");
        memcpy(c->spath, saved, sizeof(saved));
        c->slen = saved_len;
        if (r)
            goto out;
    }
    rc = 0;
out:
    c->depth--;
    return rc;
}

int schema_validate(const struct schema *s, const cJSON *value, char *why, size_t cap)
{
    struct vctx *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    c->s = s;
    push(c->ipath, &c->ilen, "$");
    push(c->spath, &c->slen, "#");
    int rc = s->root ? validate(c, s->root, value) : vfail(c, "", false, "no schema loaded");
    if (cap)
        snprintf(why, cap, "%s", rc ? c->why : "");
    free(c);
    return rc;
}

int schema_validate_text(const struct schema *s, const char *text, size_t len, char *why,
                         size_t cap)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!v) {
        snprintf(why, cap, "not JSON: %.*s", (int)(len > 80 ? 80 : len), text);
        return -1;
    }
    for (const char *p = end; p < text + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(v);
            snprintf(why, cap, "not JSON: text after the value at byte %td", p - text);
            return -1;
        }
    int rc = schema_validate(s, v, why, cap);
    cJSON_Delete(v);
    return rc;
}
