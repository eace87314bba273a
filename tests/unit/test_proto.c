/*
 * test_proto.c - the herald.v1 JSON codec: request parsing and reply writing.
 *
 * Every request is copied so that it ends right before a PROT_NONE page and carries no NUL, so
 * reading past the frame (by cJSON or by our scanner) crashes instead of passing silently. Raw
 * spans ("id", "data", "topic") are compared byte for byte with what was sent. Replies are parsed
 * back with cJSON and written into buffers that also end at a PROT_NONE page.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"
#include "proto.h"

/* ---- parsing helpers ---- */

struct parsed {
    struct guard g;
    const char *text; /* the guarded copy the request's pointers point into */
    struct proto_request req;
    const char *code, *message;
    int rc;
};

static struct parsed parse_n(const char *s, size_t n)
{
    struct parsed p = {.g = guard_new(n)};
    char *copy = guard_tail(&p.g, n);
    memcpy(copy, s, n);
    p.text = copy;
    p.rc = proto_parse(copy, n, &p.req, &p.code, &p.message);
    return p;
}

static struct parsed parse(const char *s)
{
    return parse_n(s, strlen(s));
}

static void parsed_free(struct parsed *p)
{
    guard_free(&p->g);
}

/* Asserts that ptr[0..len) is exactly `want` and lies inside the input. */
static void assert_span(const struct parsed *p, const char *ptr, size_t len, const char *want)
{
    cr_assert_not_null(ptr, "expected span %s", want);
    cr_assert(ptr >= p->text, "span outside the input");
    cr_assert_eq(len, strlen(want), "span length %zu, want %zu (%s)", len, strlen(want), want);
    cr_assert_eq(memcmp(ptr, want, len), 0, "span \"%.*s\", want %s", (int)len, ptr, want);
}

static struct parsed parse_ok(const char *s)
{
    struct parsed p = parse(s);
    cr_assert_eq(p.rc, 0, "refused %s: %s (%s)", s, p.code, p.message);
    return p;
}

static void expect_error(const char *s, const char *code)
{
    struct parsed p = parse(s);
    cr_assert_eq(p.rc, -1, "accepted %s", s);
    cr_assert_str_eq(p.code, code, "%s: got %s (%s)", s, p.code, p.message);
    cr_assert_not_null(p.message);
    cr_assert_gt(strlen(p.message), 0);
    parsed_free(&p);
}

/* Parses a pub with the given raw data and checks that the data span is exactly it. */
static void expect_data(const char *data)
{
    char buf[512];
    snprintf(buf, sizeof(buf), "{\"op\":\"pub\",\"topic\":\"t\",\"data\":%s,\"id\":1}", data);
    struct parsed p = parse_ok(buf);
    assert_span(&p, p.req.data, p.req.data_len, data);
    parsed_free(&p);
    snprintf(buf, sizeof(buf), "{\"data\" :\n\t%s \r\n, \"op\":\"pub\",\"topic\":\"t\"}", data);
    p = parse_ok(buf);
    assert_span(&p, p.req.data, p.req.data_len, data);
    parsed_free(&p);
}

/* Parses a ping with the given raw id and checks that it is echoed exactly. */
static void expect_id(const char *id)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "{\"id\":%s,\"op\":\"ping\"}", id);
    struct parsed p = parse_ok(buf);
    assert_span(&p, p.req.id, p.req.id_len, id);
    parsed_free(&p);
}

/* ---- valid requests ---- */

Test(proto_parse, sub_minimal)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"chat.room1\"}");
    cr_assert_eq(p.req.op, PROTO_SUB);
    assert_span(&p, p.req.topic, p.req.topic_len, "chat.room1");
    cr_assert_null(p.req.id);
    cr_assert_null(p.req.data);
    cr_assert_not(p.req.recover);
    cr_assert_eq(p.req.last, 0);
    parsed_free(&p);
}

Test(proto_parse, sub_with_recover)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"chat.room1\",\"id\":1,"
                               "\"recover\":{\"epoch\":\"0123456789abcdef-1\",\"offset\":41}}");
    cr_assert_eq(p.req.op, PROTO_SUB);
    cr_assert(p.req.recover);
    cr_assert_str_eq(p.req.epoch, "0123456789abcdef-1");
    cr_assert_eq(p.req.offset, 41);
    assert_span(&p, p.req.id, p.req.id_len, "1");
    parsed_free(&p);
}

Test(proto_parse, sub_with_last)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"chat.>\",\"last\":10}");
    cr_assert_eq(p.req.last, 10);
    assert_span(&p, p.req.topic, p.req.topic_len, "chat.>");
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\",\"last\":1e3}");
    cr_assert_eq(p.req.last, 1000);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\",\"last\":1000000}");
    cr_assert_eq(p.req.last, 1000000);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\",\"last\":0}");
    cr_assert_eq(p.req.last, 0);
    parsed_free(&p);
}

Test(proto_parse, sub_with_recover_and_last)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\",\"last\":5,"
                               "\"recover\":{\"offset\":0,\"epoch\":\"\"}}");
    cr_assert(p.req.recover);
    cr_assert_str_eq(p.req.epoch, "");
    cr_assert_eq(p.req.offset, 0);
    cr_assert_eq(p.req.last, 5);
    parsed_free(&p);
}

Test(proto_parse, recover_limits)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\","
                               "\"recover\":{\"epoch\":\"123456789012345678901234567890123456789\","
                               "\"offset\":9007199254740991}}");
    cr_assert_eq(strlen(p.req.epoch), 39);
    cr_assert_eq(p.req.offset, 9007199254740991ull);
    parsed_free(&p);
}

Test(proto_parse, unsub)
{
    struct parsed p = parse_ok("{\"op\":\"unsub\",\"topic\":\"chat.room1\",\"id\":\"u1\"}");
    cr_assert_eq(p.req.op, PROTO_UNSUB);
    assert_span(&p, p.req.topic, p.req.topic_len, "chat.room1");
    assert_span(&p, p.req.id, p.req.id_len, "\"u1\"");
    parsed_free(&p);
}

Test(proto_parse, pub)
{
    struct parsed p =
        parse_ok("{\"op\":\"pub\",\"topic\":\"chat.room1\",\"data\":{\"text\":\"hi\"}}");
    cr_assert_eq(p.req.op, PROTO_PUB);
    assert_span(&p, p.req.topic, p.req.topic_len, "chat.room1");
    assert_span(&p, p.req.data, p.req.data_len, "{\"text\":\"hi\"}");
    cr_assert_null(p.req.id);
    parsed_free(&p);
}

Test(proto_parse, ping)
{
    struct parsed p = parse_ok("{\"op\":\"ping\"}");
    cr_assert_eq(p.req.op, PROTO_PING);
    cr_assert_null(p.req.id);
    cr_assert_null(p.req.topic);
    parsed_free(&p);
    p = parse_ok(" \t\r\n{ \"op\" : \"ping\" , \"id\" : 7 }\n ");
    cr_assert_eq(p.req.op, PROTO_PING);
    assert_span(&p, p.req.id, p.req.id_len, "7");
    parsed_free(&p);
}

Test(proto_parse, ignores_fields_an_op_does_not_use)
{
    struct parsed p = parse_ok("{\"op\":\"ping\",\"topic\":5,\"data\":1,\"last\":-1,\"x\":[{}]}");
    cr_assert_eq(p.req.op, PROTO_PING);
    cr_assert_null(p.req.topic);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"unsub\",\"topic\":\"a\",\"recover\":5,\"last\":\"x\"}");
    cr_assert_not(p.req.recover);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\",\"data\":1}");
    cr_assert_null(p.req.data);
    parsed_free(&p);
}

Test(proto_parse, nested_members_are_not_top_level)
{
    struct parsed p = parse_ok("{\"op\":\"pub\",\"topic\":\"t\","
                               "\"data\":{\"id\":5,\"op\":\"x\",\"topic\":{},\"data\":[1]},"
                               "\"meta\":{\"id\":{}},\"id\":\"outer\"}");
    assert_span(&p, p.req.id, p.req.id_len, "\"outer\"");
    assert_span(&p, p.req.data, p.req.data_len,
                "{\"id\":5,\"op\":\"x\",\"topic\":{},\"data\":[1]}");
    assert_span(&p, p.req.topic, p.req.topic_len, "t");
    parsed_free(&p);
}

Test(proto_parse, topic_bytes_pass_through)
{
    /* Non-ASCII and odd names are the broker's to judge, not the codec's. */
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"caf\xc3\xa9.*\"}");
    assert_span(&p, p.req.topic, p.req.topic_len, "caf\xc3\xa9.*");
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"\"}");
    cr_assert_not_null(p.req.topic);
    cr_assert_eq(p.req.topic_len, 0);
    parsed_free(&p);
}

/* ---- id ---- */

Test(proto_parse, id_echoed_raw)
{
    expect_id("1");
    expect_id("1.50");
    expect_id("-0");
    expect_id("1e3");
    expect_id("-12.5E-3");
    expect_id("18446744073709551616123");
    expect_id("\"a\\\"b\"");
    expect_id("\"\"");
    expect_id("\"\\u00e9 \xc3\xa9 \\/\"");
}

Test(proto_parse, id_absent)
{
    struct parsed p = parse_ok("{\"op\":\"pub\",\"topic\":\"t\",\"data\":null}");
    cr_assert_null(p.req.id);
    cr_assert_eq(p.req.id_len, 0);
    parsed_free(&p);
}

Test(proto_parse, id_of_bad_type)
{
    const char *ids[] = {"{}", "{\"a\":1}", "[]", "[1]", "true", "false", "null"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"op\":\"ping\",\"id\":%s}", ids[i]);
        struct parsed p = parse(buf);
        cr_assert_eq(p.rc, -1, "accepted id %s", ids[i]);
        cr_assert_str_eq(p.code, PROTO_E_BAD_REQUEST);
        cr_assert_null(p.req.id, "a bad id must not be echoed");
        parsed_free(&p);
    }
}

Test(proto_parse, errors_keep_the_id)
{
    struct parsed p = parse("{\"id\":\"x-1\",\"op\":\"subscribe\"}");
    cr_assert_eq(p.rc, -1);
    cr_assert_str_eq(p.code, PROTO_E_UNKNOWN_OP);
    assert_span(&p, p.req.id, p.req.id_len, "\"x-1\"");
    parsed_free(&p);
    p = parse("{\"op\":\"pub\",\"topic\":\"a\",\"id\":42}");
    cr_assert_str_eq(p.code, PROTO_E_MISSING_FIELD);
    assert_span(&p, p.req.id, p.req.id_len, "42");
    parsed_free(&p);
    p = parse("{\"op\":\"sub\",\"topic\":\"a\",\"id\":4.0,\"last\":-1}");
    cr_assert_str_eq(p.code, PROTO_E_BAD_REQUEST);
    assert_span(&p, p.req.id, p.req.id_len, "4.0");
    parsed_free(&p);
}

/* ---- data ---- */

Test(proto_parse, data_containers)
{
    expect_data("{}");
    expect_data("[]");
    expect_data("{\"text\":\"hi\",\"n\":[1,2,{\"x\":null}]}");
    expect_data("[1, \"two\", [3], {\"four\": 4}]");
    expect_data("{ \"a\" : { \"b\" : { \"c\" : [ [ [ ] ] ] } } }");
}

Test(proto_parse, data_with_braces_and_quotes_in_strings)
{
    expect_data("{\"a\":\"}{\\\"\",\"b\":[1,{\"c\":\"]\"}],\"d\":\"\\\\\"}");
    expect_data("[\"]\", \"}\", \"\\\"]\", \"\\\\\", \",\", \":\"]");
    expect_data("{\"}\":\"{\",\"\\\"}\":\"[\"}");
    expect_data("\"}\"");
}

Test(proto_parse, data_strings)
{
    expect_data("\"hello\"");
    expect_data("\"\"");
    expect_data("\"he said \\\"hi\\\" \\\\ \\/ \\b\\f\\n\\r\\t\"");
    expect_data("\"\\u00e9\\u4e2d \\ud83d\\ude00 caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80\"");
}

Test(proto_parse, data_numbers)
{
    expect_data("0");
    expect_data("-0");
    expect_data("42");
    expect_data("-17");
    expect_data("1e3");
    expect_data("1E+3");
    expect_data("2.5e-7");
    expect_data("-0.0");
    expect_data("123456789012345678901234567890");
}

Test(proto_parse, data_literals)
{
    expect_data("true");
    expect_data("false");
    expect_data("null");
}

Test(proto_parse, data_is_last_member)
{
    struct parsed p = parse_ok("{\"op\":\"pub\",\"topic\":\"t\",\"data\":[1,2]  }");
    assert_span(&p, p.req.data, p.req.data_len, "[1,2]");
    parsed_free(&p);
}

/* ---- duplicate and escaped keys ---- */

Test(proto_parse, duplicate_keys_last_wins)
{
    struct parsed p = parse_ok("{\"op\":\"pub\",\"topic\":\"a\",\"data\":1,\"data\":{\"x\":2},"
                               "\"topic\":\"b\",\"id\":1,\"id\":\"two\"}");
    assert_span(&p, p.req.data, p.req.data_len, "{\"x\":2}");
    assert_span(&p, p.req.topic, p.req.topic_len, "b");
    assert_span(&p, p.req.id, p.req.id_len, "\"two\"");
    parsed_free(&p);
    p = parse_ok("{\"op\":\"pub\",\"op\":\"ping\"}");
    cr_assert_eq(p.req.op, PROTO_PING);
    parsed_free(&p);
    /* The typed value and the span come from the same member. */
    p = parse_ok("{\"id\":{},\"id\":3,\"op\":\"ping\"}");
    assert_span(&p, p.req.id, p.req.id_len, "3");
    parsed_free(&p);
    p = parse("{\"id\":3,\"id\":[],\"op\":\"ping\"}");
    cr_assert_str_eq(p.code, PROTO_E_BAD_REQUEST);
    cr_assert_null(p.req.id);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\",\"last\":-1,\"last\":2,"
                 "\"recover\":{\"epoch\":\"e\",\"offset\":1,\"offset\":9}}");
    cr_assert_eq(p.req.last, 2);
    cr_assert_eq(p.req.offset, 9);
    parsed_free(&p);
}

Test(proto_parse, escaped_keys_never_match)
{
    /* cJSON decodes "\u0069d" to "id"; we ignore it, and the value used must agree. */
    struct parsed p = parse_ok("{\"op\":\"ping\",\"id\":1,\"\\u0069d\":{}}");
    assert_span(&p, p.req.id, p.req.id_len, "1");
    parsed_free(&p);
    p = parse_ok("{\"op\":\"ping\",\"\\u0069d\":2}");
    cr_assert_null(p.req.id);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"pub\",\"topic\":\"t\",\"data\":1,\"d\\u0061ta\":2}");
    assert_span(&p, p.req.data, p.req.data_len, "1");
    parsed_free(&p);
    expect_error("{\"\\u006fp\":\"ping\"}", PROTO_E_MISSING_FIELD);
    expect_error("{\"op\":\"p\\u0069ng\"}", PROTO_E_UNKNOWN_OP);
}

/* ---- errors ---- */

Test(proto_parse, bad_json)
{
    const char *bad[] = {
        "",
        " ",
        "{",
        "{\"op\":\"ping\"",
        "{\"op\":\"ping\",}",
        "{\"op\":\"ping\"} x",
        "{\"op\":\"ping\"}{}",
        "{\"op\":\"ping\"}\"",
        "{'op':'ping'}",
        "{op:\"ping\"}",
        "nul",
        "\"unterminated",
        "{\"op\":\"ping\",\"id\":\"\\ud800\"}", /* lone surrogate */
        "{\"op\":\"ping\",\"id\":\"\\x41\"}",   /* bad escape */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(bad[i], PROTO_E_BAD_JSON);
}

Test(proto_parse, bad_json_that_cjson_accepts)
{
    /* Data is forwarded verbatim, so it must be JSON for every parser, not just cJSON. */
    const char *bad[] = {
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":01}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":-01}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":1.}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":-.5}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":[1.e3]}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"a\nb\"}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":\"a\tb\"}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":[1,\x01 2]}",
        "{\"op\":\"pub\",\"topic\":\"t\",\"data\":[1,\v2]}",
        "\xef\xbb\xbf{\"op\":\"ping\"}",
        "\x01{\"op\":\"ping\"}",
        "{\"op\":\"ping\"}\x1f",
        "{\"op\":\"ping\",\"id\":01}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(bad[i], PROTO_E_BAD_JSON);
}

Test(proto_parse, bad_json_nul_bytes)
{
    static const char with_nul[] = "{\"op\":\"ping\",\"id\":\"a\0b\"}";
    struct parsed p = parse_n(with_nul, sizeof(with_nul) - 1);
    cr_assert_eq(p.rc, -1);
    cr_assert_str_eq(p.code, PROTO_E_BAD_JSON);
    parsed_free(&p);
    static const char trailing_nul[] = "{\"op\":\"ping\"}\0";
    p = parse_n(trailing_nul, sizeof(trailing_nul) - 1);
    cr_assert_eq(p.rc, -1);
    cr_assert_str_eq(p.code, PROTO_E_BAD_JSON);
    parsed_free(&p);
}

Test(proto_parse, every_truncation_is_bad_json)
{
    const char *reqs[] = {
        "{\"op\":\"pub\",\"topic\":\"chat\",\"data\":{\"a\":[1,\"}\\\"\",true]},\"id\":\"x\"}",
        "{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":\"e-1\",\"offset\":12}}",
    };
    for (size_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
        struct parsed whole = parse_ok(reqs[r]);
        parsed_free(&whole);
        for (size_t n = 0; n < strlen(reqs[r]); n++) {
            struct parsed p = parse_n(reqs[r], n);
            cr_assert_eq(p.rc, -1, "accepted prefix %.*s", (int)n, reqs[r]);
            cr_assert_str_eq(p.code, PROTO_E_BAD_JSON, "prefix %.*s", (int)n, reqs[r]);
            parsed_free(&p);
        }
    }
}

Test(proto_parse, deep_nesting_is_refused_not_recursed)
{
    size_t depth = 100000;
    char *s = malloc(depth * 2 + 64);
    size_t n = (size_t)sprintf(s, "{\"op\":\"pub\",\"topic\":\"t\",\"data\":");
    memset(s + n, '[', depth);
    memset(s + n + depth, ']', depth);
    n += 2 * depth;
    s[n++] = '}';
    struct parsed p = parse_n(s, n);
    cr_assert_eq(p.rc, -1);
    cr_assert_str_eq(p.code, PROTO_E_BAD_JSON);
    parsed_free(&p);
    free(s);
}

Test(proto_parse, not_an_object)
{
    const char *bad[] = {"[]", "[{\"op\":\"ping\"}]", "\"ping\"", "42", "null", "true"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(bad[i], PROTO_E_BAD_REQUEST);
}

Test(proto_parse, op_errors)
{
    expect_error("{}", PROTO_E_MISSING_FIELD);
    expect_error("{\"topic\":\"a\"}", PROTO_E_MISSING_FIELD);
    expect_error("{\"op\":\"subscribe\",\"topic\":\"a\"}", PROTO_E_UNKNOWN_OP);
    expect_error("{\"op\":\"SUB\",\"topic\":\"a\"}", PROTO_E_UNKNOWN_OP);
    expect_error("{\"op\":\"\"}", PROTO_E_UNKNOWN_OP);
    expect_error("{\"op\":1}", PROTO_E_BAD_REQUEST);
    expect_error("{\"op\":null}", PROTO_E_BAD_REQUEST);
    expect_error("{\"op\":[\"ping\"]}", PROTO_E_BAD_REQUEST);
}

Test(proto_parse, topic_errors)
{
    expect_error("{\"op\":\"sub\"}", PROTO_E_MISSING_FIELD);
    expect_error("{\"op\":\"unsub\"}", PROTO_E_MISSING_FIELD);
    expect_error("{\"op\":\"pub\",\"data\":1}", PROTO_E_MISSING_FIELD);
    expect_error("{\"op\":\"sub\",\"topic\":5}", PROTO_E_BAD_REQUEST);
    expect_error("{\"op\":\"sub\",\"topic\":null}", PROTO_E_BAD_REQUEST);
    expect_error("{\"op\":\"unsub\",\"topic\":[\"a\"]}", PROTO_E_BAD_REQUEST);
    expect_error("{\"op\":\"pub\",\"topic\":{},\"data\":1}", PROTO_E_BAD_REQUEST);
    expect_error("{\"op\":\"sub\",\"topic\":\"chat\\u002eroom\"}", PROTO_E_BAD_TOPIC);
    expect_error("{\"op\":\"sub\",\"topic\":\"a\\\\b\"}", PROTO_E_BAD_TOPIC);
    expect_error("{\"op\":\"pub\",\"topic\":\"a\\\"b\",\"data\":1}", PROTO_E_BAD_TOPIC);

    struct parsed p = parse("{\"op\":\"sub\",\"topic\":\"\\u0061\"}");
    cr_assert_str_eq(p.message, "escapes are not allowed in topic names");
    parsed_free(&p);
}

Test(proto_parse, data_missing)
{
    expect_error("{\"op\":\"pub\",\"topic\":\"a\"}", PROTO_E_MISSING_FIELD);
    expect_error("{\"op\":\"pub\",\"topic\":\"a\",\"d\\u0061ta\":1}", PROTO_E_MISSING_FIELD);
}

Test(proto_parse, recover_errors)
{
    const char *pre = "{\"op\":\"sub\",\"topic\":\"a\",\"recover\":";
    struct {
        const char *recover, *code;
    } cases[] = {
        {"5", PROTO_E_BAD_REQUEST},
        {"[]", PROTO_E_BAD_REQUEST},
        {"\"e-1\"", PROTO_E_BAD_REQUEST},
        {"null", PROTO_E_BAD_REQUEST},
        {"{}", PROTO_E_MISSING_FIELD},
        {"{\"offset\":1}", PROTO_E_MISSING_FIELD},
        {"{\"epoch\":\"e\"}", PROTO_E_MISSING_FIELD},
        {"{\"epoch\":5,\"offset\":1}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":null,\"offset\":1}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"1234567890123456789012345678901234567890\",\"offset\":1}",
         PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"e\",\"offset\":-1}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"e\",\"offset\":1.5}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"e\",\"offset\":\"3\"}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"e\",\"offset\":null}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"e\",\"offset\":9007199254740992}", PROTO_E_BAD_REQUEST},
        {"{\"epoch\":\"e\",\"offset\":1e400}", PROTO_E_BAD_REQUEST},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s%s}", pre, cases[i].recover);
        expect_error(buf, cases[i].code);
    }
}

Test(proto_parse, last_errors)
{
    const char *bad[] = {"-1", "1000001", "1.5", "\"10\"", "true", "null", "[]", "1e7"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"op\":\"sub\",\"topic\":\"a\",\"last\":%s}", bad[i]);
        expect_error(buf, PROTO_E_BAD_REQUEST);
    }
}

Test(proto_parse, sub_with_presence)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"room\",\"presence\":true}");
    cr_assert(p.req.presence);
    cr_assert_null(p.req.info);
    parsed_free(&p);
    /* info passes through byte for byte, spacing and number spelling included */
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"room\",\"presence\":{\"info\": {\"name\":\"ann\","
                 " \"n\":1.50}}}");
    cr_assert(p.req.presence);
    assert_span(&p, p.req.info, p.req.info_len, "{\"name\":\"ann\", \"n\":1.50}");
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"room\",\"presence\":{}}");
    cr_assert(p.req.presence);
    cr_assert_null(p.req.info);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"room\",\"presence\":{\"info\":null}}");
    cr_assert(p.req.presence);
    cr_assert_null(p.req.info);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"room\",\"presence\":false}");
    cr_assert_not(p.req.presence);
    parsed_free(&p);
    /* the last plain "info" counts; an escaped spelling is an unknown field */
    p = parse_ok("{\"op\":\"sub\",\"topic\":\"room\",\"presence\":{\"info\":{\"a\":1},"
                 "\"\\u0069nfo\":{\"b\":2}}}");
    assert_span(&p, p.req.info, p.req.info_len, "{\"a\":1}");
    parsed_free(&p);
    /* presence means nothing on other ops */
    p = parse_ok("{\"op\":\"pub\",\"topic\":\"room\",\"data\":1,\"presence\":7}");
    cr_assert_not(p.req.presence);
    parsed_free(&p);
}

Test(proto_parse, presence_errors)
{
    const char *bad[] = {
        "1", "\"yes\"", "null", "[]", "{\"info\":1}", "{\"info\":\"ann\"}", "{\"info\":[]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"op\":\"sub\",\"topic\":\"a\",\"presence\":%s}", bad[i]);
        expect_error(buf, PROTO_E_BAD_REQUEST);
    }
    /* info up to 256 bytes, not one more */
    char info[300], buf[400];
    for (size_t n = 255; n <= 257; n++) {
        memset(info, 'x', sizeof(info));
        memcpy(info, "{\"k\":\"", 6);
        memcpy(info + n - 2, "\"}", 3);
        snprintf(buf, sizeof(buf), "{\"op\":\"sub\",\"topic\":\"a\",\"presence\":{\"info\":%s}}",
                 info);
        if (n <= PROTO_INFO_MAX) {
            struct parsed p = parse_ok(buf);
            cr_assert_eq(p.req.info_len, n);
            parsed_free(&p);
        } else {
            expect_error(buf, PROTO_E_BAD_REQUEST);
        }
    }
}

Test(proto_parse, presence_query)
{
    struct parsed p = parse_ok("{\"op\":\"presence\",\"topic\":\"room\",\"id\":4}");
    cr_assert_eq(p.req.op, PROTO_PRESENCE);
    cr_assert_eq(p.req.limit, PROTO_LIMIT_DEFAULT);
    assert_span(&p, p.req.topic, p.req.topic_len, "room");
    parsed_free(&p);
    p = parse_ok("{\"op\":\"presence\",\"topic\":\"room\",\"limit\":0}");
    cr_assert_eq(p.req.limit, 0);
    parsed_free(&p);
    p = parse_ok("{\"op\":\"presence\",\"topic\":\"room\",\"limit\":1000}");
    cr_assert_eq(p.req.limit, 1000);
    parsed_free(&p);
    expect_error("{\"op\":\"presence\"}", PROTO_E_MISSING_FIELD);
    const char *bad[] = {"-1", "1001", "2.5", "\"5\"", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[128];
        snprintf(buf, sizeof(buf), "{\"op\":\"presence\",\"topic\":\"a\",\"limit\":%s}", bad[i]);
        expect_error(buf, PROTO_E_BAD_REQUEST);
    }
}

/* ---- replies ---- */

/* Writes with the writer at every capacity up to the needed one, into a buffer ending at a guard
 * page: too small must give 0 and stay in bounds; exactly enough must give the full text. */
#define CHECK_CAPS(want, call_with_out_cap)                                                        \
    do {                                                                                           \
        for (size_t cap = 0; cap <= strlen(want) + 1; cap++) {                                     \
            struct guard g_ = guard_new(cap);                                                      \
            char *out = guard_tail(&g_, cap);                                                      \
            size_t n_ = call_with_out_cap;                                                         \
            if (cap <= strlen(want))                                                               \
                cr_assert_eq(n_, 0, "cap %zu", cap);                                               \
            else                                                                                   \
                cr_assert_str_eq(out, want);                                                       \
            guard_free(&g_);                                                                       \
        }                                                                                          \
    } while (0)

/* Parses a reply back; it must be one JSON object. */
static cJSON *reparse(const char *out, size_t n)
{
    cr_assert_gt(n, 0, "reply did not fit");
    cr_assert_eq(strlen(out), n, "reply not NUL-terminated at its length");
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(out, n, &end, 0);
    cr_assert_not_null(j, "reply is not JSON: %s", out);
    cr_assert_eq(end, out + n, "trailing bytes in %s", out);
    cr_assert(cJSON_IsObject(j));
    return j;
}

static const char *str_field(const cJSON *j, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, name);
    cr_assert(cJSON_IsString(f), "field %s not a string", name);
    return f->valuestring;
}

static double num_field(const cJSON *j, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, name);
    cr_assert(cJSON_IsNumber(f), "field %s not a number", name);
    return f->valuedouble;
}

static int count_fields(const cJSON *j)
{
    int n = 0;
    for (const cJSON *c = j->child; c; c = c->next)
        n++;
    return n;
}

Test(proto_reply, welcome)
{
    char out[256];
    size_t n = proto_welcome(out, sizeof(out), "s-42");
    cr_assert_str_eq(out, "{\"type\":\"welcome\",\"version\":\"herald.v1\",\"session\":\"s-42\"}");
    cJSON *j = reparse(out, n);
    cr_assert_str_eq(str_field(j, "version"), PROTO_VERSION);
    cJSON_Delete(j);
    n = proto_welcome(out, sizeof(out), "a\"b\\c");
    j = reparse(out, n);
    cr_assert_str_eq(str_field(j, "session"), "a\"b\\c");
    cJSON_Delete(j);
}

Test(proto_reply, error_with_and_without_id)
{
    char out[256];
    size_t n = proto_error(out, sizeof(out), "\"a\\\"b\"", 6, PROTO_E_UNKNOWN_OP, "no such op");
    cr_assert_str_eq(out, "{\"type\":\"error\",\"id\":\"a\\\"b\",\"code\":\"unknown_op\","
                          "\"message\":\"no such op\"}");
    cJSON *j = reparse(out, n);
    cr_assert_str_eq(str_field(j, "type"), "error");
    cr_assert_str_eq(str_field(j, "id"), "a\"b");
    cr_assert_str_eq(str_field(j, "code"), "unknown_op");
    cJSON_Delete(j);

    n = proto_error(out, sizeof(out), NULL, 0, PROTO_E_BAD_JSON, "not valid JSON");
    j = reparse(out, n);
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "id"));
    cr_assert_eq(count_fields(j), 3);
    cJSON_Delete(j);
}

Test(proto_reply, error_message_is_escaped)
{
    char out[256];
    const char *msg = "say \"hi\" \\ tab\there\nnew \x01 end";
    size_t n = proto_error(out, sizeof(out), "1.50", 4, PROTO_E_BAD_REQUEST, msg);
    cJSON *j = reparse(out, n);
    cr_assert_str_eq(str_field(j, "message"), msg);
    cr_assert_not_null(strstr(out, "\"id\":1.50,"), "id not echoed raw: %s", out);
    cJSON_Delete(j);
}

Test(proto_reply, pong)
{
    char out[64];
    size_t n = proto_pong(out, sizeof(out), NULL, 0);
    cr_assert_str_eq(out, "{\"type\":\"pong\"}");
    n = proto_pong(out, sizeof(out), "7", 1);
    cr_assert_str_eq(out, "{\"type\":\"pong\",\"id\":7}");
    cJSON *j = reparse(out, n);
    cr_assert_eq(num_field(j, "id"), 7);
    cJSON_Delete(j);
}

Test(proto_reply, ids_from_requests_are_echoed_byte_for_byte)
{
    const char *ids[] = {"1.50", "-0", "1e3", "\"a\\\"b\"", "\"\\u00e9\"", "\"\""};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char req[128], out[256], want[256];
        snprintf(req, sizeof(req), "{\"op\":\"ping\",\"id\":%s}", ids[i]);
        struct parsed p = parse_ok(req);
        size_t n = proto_pong(out, sizeof(out), p.req.id, p.req.id_len);
        snprintf(want, sizeof(want), "{\"type\":\"pong\",\"id\":%s}", ids[i]);
        cr_assert_str_eq(out, want);
        cJSON_Delete(reparse(out, n));
        parsed_free(&p);
    }
}

Test(proto_reply, ack_sub)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"chat.room1\",\"id\":1}");
    char out[512];
    size_t n = proto_ack_sub(out, sizeof(out), &p.req, "abc-1", 41, 3, 0, true);
    cr_assert_str_eq(out, "{\"type\":\"ack\",\"op\":\"sub\",\"id\":1,\"topic\":\"chat.room1\","
                          "\"epoch\":\"abc-1\",\"offset\":41,\"replay\":3}");
    cJSON *j = reparse(out, n);
    cr_assert_eq(count_fields(j), 7);
    cJSON_Delete(j);
    parsed_free(&p);
}

/* "delivered" only when the replay repeats what the connection had; 0 leaves it out. */
Test(proto_reply, ack_sub_delivered)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"chat.room1\",\"last\":5}");
    char out[512];
    size_t n = proto_ack_sub(out, sizeof(out), &p.req, "abc-1", 41, 5, 39, PROTO_RECOVERY_IGNORED);
    cr_assert_str_eq(out, "{\"type\":\"ack\",\"op\":\"sub\",\"topic\":\"chat.room1\","
                          "\"epoch\":\"abc-1\",\"offset\":41,\"replay\":5,\"delivered\":39}");
    cJSON *j = reparse(out, n);
    cr_assert_eq(count_fields(j), 7);
    cJSON_Delete(j);
    proto_ack_sub(out, sizeof(out), &p.req, "abc-1", 41, 5, 0, PROTO_RECOVERY_IGNORED);
    cr_assert_null(strstr(out, "delivered"));
    parsed_free(&p);
}

Test(proto_reply, ack_sub_recovered)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"a\","
                               "\"recover\":{\"epoch\":\"abc-1\",\"offset\":38}}");
    char out[512];
    size_t n = proto_ack_sub(out, sizeof(out), &p.req, "abc-1", 41, 3, 0, true);
    cJSON *j = reparse(out, n);
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "recovered")));
    cr_assert_eq(num_field(j, "replay"), 3);
    cr_assert_eq(num_field(j, "offset"), 41);
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(j, "id"));
    cJSON_Delete(j);
    n = proto_ack_sub(out, sizeof(out), &p.req, "xyz-9", 41, 0, 0, false);
    j = reparse(out, n);
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "recovered")));
    cr_assert_str_eq(str_field(j, "epoch"), "xyz-9");
    cJSON_Delete(j);
    parsed_free(&p);
}

Test(proto_reply, numbers_are_unsigned_decimal)
{
    struct parsed p = parse_ok("{\"op\":\"pub\",\"topic\":\"a\",\"data\":1}");
    char out[512];
    proto_ack_sub(out, sizeof(out), &p.req, "", UINT64_MAX, UINT64_MAX, 0, false);
    cr_assert_not_null(strstr(out, "\"offset\":18446744073709551615,"));
    cr_assert_not_null(strstr(out, "\"replay\":18446744073709551615}"));
    size_t n = proto_ack_pub(out, sizeof(out), &p.req, UINT64_MAX, UINT32_MAX);
    cr_assert_str_eq(out, "{\"type\":\"ack\",\"op\":\"pub\",\"topic\":\"a\","
                          "\"offset\":18446744073709551615,\"reach\":4294967295}");
    cJSON_Delete(reparse(out, n));
    parsed_free(&p);
}

Test(proto_reply, ack_unsub_and_pub)
{
    struct parsed p = parse_ok("{\"op\":\"unsub\",\"topic\":\"chat.*\",\"id\":\"u\"}");
    char out[256];
    size_t n = proto_ack_unsub(out, sizeof(out), &p.req);
    cr_assert_str_eq(out, "{\"type\":\"ack\",\"op\":\"unsub\",\"id\":\"u\",\"topic\":\"chat.*\"}");
    cJSON_Delete(reparse(out, n));
    parsed_free(&p);

    p = parse_ok("{\"op\":\"pub\",\"topic\":\"chat\",\"data\":\"x\",\"id\":9}");
    n = proto_ack_pub(out, sizeof(out), &p.req, 12, 3);
    cJSON *j = reparse(out, n);
    cr_assert_str_eq(str_field(j, "type"), "ack");
    cr_assert_str_eq(str_field(j, "op"), "pub");
    cr_assert_str_eq(str_field(j, "topic"), "chat");
    cr_assert_eq(num_field(j, "id"), 9);
    cr_assert_eq(num_field(j, "offset"), 12);
    cr_assert_eq(num_field(j, "reach"), 3);
    cr_assert_eq(count_fields(j), 6);
    cJSON_Delete(j);
    parsed_free(&p);
}

Test(proto_reply, bounded_at_every_capacity)
{
    struct parsed p = parse_ok("{\"op\":\"sub\",\"topic\":\"chat\",\"id\":\"q\\\"\","
                               "\"recover\":{\"epoch\":\"e\",\"offset\":1}}");
    char full[512];
    proto_ack_sub(full, sizeof(full), &p.req, "e\"1", 5, 2, 0, true);
    CHECK_CAPS(full, proto_ack_sub(out, cap, &p.req, "e\"1", 5, 2, 0, true));
    proto_ack_pub(full, sizeof(full), &p.req, 5, 2);
    CHECK_CAPS(full, proto_ack_pub(out, cap, &p.req, 5, 2));
    proto_ack_unsub(full, sizeof(full), &p.req);
    CHECK_CAPS(full, proto_ack_unsub(out, cap, &p.req));
    proto_error(full, sizeof(full), p.req.id, p.req.id_len, "c", "m\n");
    CHECK_CAPS(full, proto_error(out, cap, p.req.id, p.req.id_len, "c", "m\n"));
    proto_welcome(full, sizeof(full), "s\x02");
    CHECK_CAPS(full, proto_welcome(out, cap, "s\x02"));
    proto_pong(full, sizeof(full), p.req.id, p.req.id_len);
    CHECK_CAPS(full, proto_pong(out, cap, p.req.id, p.req.id_len));
    CHECK_CAPS("a\\\"b", proto_json_escape(out, cap, "a\"b", 3));
    parsed_free(&p);
}

Test(proto_reply, one_kib_plus_id_and_topic_always_fits)
{
    char req[2048], id[600], topic[300];
    memset(id, 'i', sizeof(id));
    id[0] = id[sizeof(id) - 2] = '"';
    id[sizeof(id) - 1] = '\0';
    memset(topic, 't', sizeof(topic) - 1);
    topic[sizeof(topic) - 1] = '\0';
    snprintf(req, sizeof(req),
             "{\"op\":\"sub\",\"topic\":\"%s\",\"id\":%s,\"recover\":"
             "{\"epoch\":\"123456789012345678901234567890123456789\",\"offset\":1}}",
             topic, id);
    struct parsed p = parse_ok(req);
    size_t cap = 1024 + p.req.id_len + p.req.topic_len;
    char *out = malloc(cap);
    char epoch[40];
    memset(epoch, '"', 39); /* worst case: every byte escaped */
    epoch[39] = '\0';
    cr_assert_gt(proto_ack_sub(out, cap, &p.req, epoch, UINT64_MAX, UINT64_MAX, UINT64_MAX, true),
                 0);
    cr_assert_gt(proto_ack_pub(out, cap, &p.req, UINT64_MAX, UINT32_MAX), 0);
    cr_assert_gt(proto_ack_unsub(out, cap, &p.req), 0);
    cr_assert_gt(proto_pong(out, cap, p.req.id, p.req.id_len), 0);
    cr_assert_gt(proto_error(out, cap, p.req.id, p.req.id_len, PROTO_E_TOO_MANY_SUBS,
                             "escapes are not allowed in topic names"),
                 0);
    free(out);
    parsed_free(&p);
}

/* ---- escaping ---- */

Test(proto_reply, presence_head_and_member)
{
    struct parsed p = parse_ok("{\"op\":\"presence\",\"topic\":\"room\",\"id\":\"q\"}");
    char out[512];
    size_t n = proto_ack_presence_head(out, sizeof(out), &p.req, 3);
    cr_assert_str_eq(out, "{\"type\":\"ack\",\"op\":\"presence\",\"id\":\"q\",\"topic\":\"room\","
                          "\"count\":3,\"members\":[");
    cr_assert_eq(n, strlen(out));
    parsed_free(&p);
    n = proto_member(out, sizeof(out), "s-1", "{\"name\":\"ann\"}", 14);
    cr_assert_str_eq(out, "{\"session\":\"s-1\",\"info\":{\"name\":\"ann\"}}");
    cr_assert_eq(n, strlen(out));
    proto_member(out, sizeof(out), "s-\"2", NULL, 0);
    cr_assert_str_eq(out, "{\"session\":\"s-\\\"2\",\"info\":null}");
    cr_assert_eq(proto_member(out, 10, "s-1", NULL, 0), 0, "does not fit");
}

Test(proto_json_escape, escapes_quotes_backslashes_and_controls)
{
    char out[128];
    const char in[] = "a\"b\\c\nd\x01\x1f\x7f\xc3\xa9/";
    size_t n = proto_json_escape(out, sizeof(out), in, sizeof(in) - 1);
    cr_assert_str_eq(out, "a\\\"b\\\\c\\u000ad\\u0001\\u001f\x7f\xc3\xa9/");
    cr_assert_eq(n, strlen(out));
}

Test(proto_json_escape, nul_byte_and_empty)
{
    char out[16];
    cr_assert_eq(proto_json_escape(out, sizeof(out), "a\0b", 3), 8);
    cr_assert_str_eq(out, "a\\u0000b");
    cr_assert_eq(proto_json_escape(out, sizeof(out), "", 0), 0);
    cr_assert_str_eq(out, "");
}

Test(proto_json_escape, does_not_fit)
{
    char out[4];
    cr_assert_eq(proto_json_escape(out, sizeof(out), "\"", 1), 2);
    cr_assert_eq(proto_json_escape(out, sizeof(out), "\"\"", 2), 0);
    cr_assert_eq(proto_json_escape(out, sizeof(out), "\x01", 1), 0);
}

Test(proto, http_publish_bodies)
{
    struct proto_request req;
    const char *code, *message;
    const char *one = "{\"topic\":\"news\",\"data\":{\"a\":[1,2]}}";
    cr_assert_eq(proto_parse_publish(one, strlen(one), &req, &code, &message), 0);
    cr_assert_eq(req.op, PROTO_PUB);
    cr_assert_eq(req.data_len, 11);
    cr_assert_eq(memcmp(req.data, "{\"a\":[1,2]}", 11), 0);
    const char *with_op = "{\"op\":\"pub\",\"topic\":\"news\",\"data\":1}";
    cr_assert_eq(proto_parse_publish(with_op, strlen(with_op), &req, &code, &message), 0);
    const char *sub = "{\"op\":\"sub\",\"topic\":\"news\"}";
    cr_assert_eq(proto_parse_publish(sub, strlen(sub), &req, &code, &message), -1);
    cr_assert_str_eq(code, "unknown_op");
    const char *nodata = "{\"topic\":\"news\"}";
    cr_assert_eq(proto_parse_publish(nodata, strlen(nodata), &req, &code, &message), -1);
    cr_assert_str_eq(code, "missing_field");
    /* Without op, proto_parse still insists on one. */
    cr_assert_eq(proto_parse(one, strlen(one), &req, &code, &message), -1);
    cr_assert_str_eq(code, "missing_field");
}

Test(proto, array_elements_with_their_raw_text)
{
    const char *a = " [ {\"x\":\"],[\"} , 2 ,[3,[4]] ] ";
    size_t pos = 0, n;
    const char *el;
    cr_assert_eq(proto_array_next(a, strlen(a), &pos, &el, &n), 1);
    cr_assert_eq(n, 11);
    cr_assert_eq(memcmp(el, "{\"x\":\"],[\"}", 11), 0);
    cr_assert_eq(proto_array_next(a, strlen(a), &pos, &el, &n), 1);
    cr_assert_eq(memcmp(el, "2", n), 0);
    cr_assert_eq(proto_array_next(a, strlen(a), &pos, &el, &n), 1);
    cr_assert_eq(memcmp(el, "[3,[4]]", n), 0);
    cr_assert_eq(proto_array_next(a, strlen(a), &pos, &el, &n), 0);
    pos = 0;
    cr_assert_eq(proto_array_next("[]", 2, &pos, &el, &n), 0);
    pos = 0;
    cr_assert_eq(proto_array_next("{}", 2, &pos, &el, &n), -1);
    pos = 0;
    cr_assert_eq(proto_array_next("[1 2]", 5, &pos, &el, &n), -1);
}

/* An array cut off after a comma is not an array: "[1," once ended the walk as if it were "[1]",
 * and the HTTP API published such a batch. */
Test(proto, an_array_cut_after_a_comma_or_unclosed_is_malformed)
{
    const char *cut[] = {"[1,", "[1, ", "[1", "[1 ", "[", "[{\"a\":1},"};
    for (size_t k = 0; k < sizeof(cut) / sizeof(cut[0]); k++) {
        size_t pos = 0, n;
        const char *el;
        int rc;
        while ((rc = proto_array_next(cut[k], strlen(cut[k]), &pos, &el, &n)) == 1)
            ;
        cr_assert_eq(rc, -1, "\"%s\" walked to the end (%d)", cut[k], rc);
    }
}
