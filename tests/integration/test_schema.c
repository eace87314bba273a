/*
 * Integration: real herald.v1 traffic against the JSON Schemas in proto/schemas/. Every message
 * the server sends in these tests (welcome, each kind of ack, pong, msg, every error code the
 * server can produce) is validated against server-message.schema.json, and every request sent
 * against client-request.schema.json, where the deliberately broken ones must fail. Tampered
 * server messages must fail too, so the validation cannot pass vacuously; and the validator's
 * loader must refuse keywords outside the subset it implements (json_schema.h).
 *
 * Not produced here: `forbidden` (reserved, not sent by this version) and `internal` (only when
 * the server runs out of memory).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json_schema.h"
#include "wsc.h"

#define REQUEST_SCHEMA "proto/schemas/client-request.schema.json"
#define SERVER_SCHEMA  "proto/schemas/server-message.schema.json"

static struct herald_proc srv;
static bool srv_running;
static struct schema req_schema, msg_schema;
/* The text of the last server message received. */
static char last_raw[1 << 16];

static void load_schemas(void)
{
    cr_assert_eq(schema_load(&req_schema, REQUEST_SCHEMA), 0, "%s", req_schema.error);
    cr_assert_eq(schema_load(&msg_schema, SERVER_SCHEMA), 0, "%s", msg_schema.error);
}

static void start(const char *const *args)
{
    herald_start(&srv, args);
    srv_running = true;
    load_schemas();
}

static void setup(void)
{
    const char *args[] = {"--log-level", "warn", NULL};
    start(args);
}

static void setup_two_subs(void)
{
    const char *args[] = {"--log-level", "warn", "--max-subscriptions", "2", NULL};
    start(args);
}

static void teardown(void)
{
    if (srv_running)
        free(herald_stop(&srv));
    srv_running = false;
    schema_free(&req_schema);
    schema_free(&msg_schema);
}

TestSuite(schema, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(schema_limits, .init = setup_two_subs, .fini = teardown, .timeout = 60);
TestSuite(schema_validator, .init = load_schemas, .fini = teardown, .timeout = 30);

/* ---- talking to the server, validating everything ---- */

/* The next server message: a text frame, valid against server-message.schema.json. Server pings
 * are answered and skipped. Caller deletes; the text stays in last_raw. */
static cJSON *recv_valid(struct wsc *c)
{
    struct wsc_frame f;
    for (;;) {
        int rc = wsc_recv(c, &f, 10000);
        cr_assert_eq(rc, 0, "no message from the server (rc %d)", rc);
        if (f.opcode != WS_OP_PING)
            break;
        wsc_send(c, WS_OP_PONG, f.data, f.len);
        wsc_frame_free(&f);
    }
    cr_assert_eq(f.opcode, WS_OP_TEXT, "opcode %d", f.opcode);
    cr_assert_lt(f.len, sizeof(last_raw));
    memcpy(last_raw, f.data, f.len);
    last_raw[f.len] = '\0';
    wsc_frame_free(&f);
    char why[1024];
    int rc = schema_validate_text(&msg_schema, last_raw, strlen(last_raw), why, sizeof(why));
    cr_assert_eq(rc, 0, "server message %s is not valid against %s: %s", last_raw, msg_schema.path,
                 why);
    cJSON *j = cJSON_Parse(last_raw);
    cr_assert_not_null(j);
    return j;
}

static const char *str(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *j, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* The next message must have this type and, for an ack, this op; for an error, this code. */
static cJSON *expect(struct wsc *c, const char *type, const char *op_or_code)
{
    cJSON *j = recv_valid(c);
    const char *t = str(j, "type");
    cr_assert(t && strcmp(t, type) == 0, "expected a %s, got %s", type, last_raw);
    if (op_or_code) {
        const char *k = str(j, strcmp(type, "error") == 0 ? "code" : "op");
        cr_assert(k && strcmp(k, op_or_code) == 0, "expected %s %s, got %s", type, op_or_code,
                  last_raw);
    }
    return j;
}

static void expect_drop(struct wsc *c, const char *type, const char *op_or_code)
{
    cJSON_Delete(expect(c, type, op_or_code));
}

/* Opens a connection and validates the welcome. */
static void sopen(struct wsc *c, int port)
{
    char head[2048];
    int st =
        wsc_connect(c, port, "/ws", "Sec-WebSocket-Protocol: herald.v1\r\n", head, sizeof(head));
    cr_assert_eq(st, 101, "%s", head);
    cJSON *j = expect(c, "welcome", NULL);
    cr_assert_str_eq(str(j, "version"), "herald.v1");
    cJSON_Delete(j);
}

/* Sends a request after checking it against client-request.schema.json; `valid` says whether
 * the schema must accept it. */
static void send_req(struct wsc *c, const char *json, bool valid)
{
    char why[1024];
    int rc = schema_validate_text(&req_schema, json, strlen(json), why, sizeof(why));
    if (valid)
        cr_assert_eq(rc, 0, "request %s should be valid against %s: %s", json, req_schema.path,
                     why);
    else
        cr_assert_eq(rc, -1, "request %s should be invalid against %s", json, req_schema.path);
    cr_assert_eq(wsc_send(c, WS_OP_TEXT, json, strlen(json)), 0);
}

/* The raw text of member `key` in last_raw must be `raw` (NULL: the member must be absent). */
static void expect_raw_member(const char *key, const char *raw)
{
    char pat[512];
    snprintf(pat, sizeof(pat), "\"%s\":%s", key, raw ? raw : "");
    char *at = strstr(last_raw, pat);
    if (!raw) {
        cr_assert_null(at, "%s should have no %s", last_raw, key);
        return;
    }
    cr_assert_not_null(at, "%s should have %s", last_raw, pat);
    char after = at[strlen(pat)];
    cr_assert(after == ',' || after == '}', "%s should have %s", last_raw, pat);
}

/* ---- every message type ---- */

Test(schema, welcome_pong_and_the_acks_of_sub_unsub_pub)
{
    struct wsc a, b;
    sopen(&a, srv.port);
    /* Also without a subprotocol: the same welcome. */
    char head[2048];
    cr_assert_eq(wsc_connect(&b, srv.port, "/ws", NULL, head, sizeof(head)), 101);
    expect_drop(&b, "welcome", NULL);

    send_req(&a, "{\"op\":\"ping\"}", true);
    expect_drop(&a, "pong", NULL);
    expect_raw_member("id", NULL);
    const char *ids[] = {"7", "\"p1\"", "1.50", "-3e2", "\"\"", "\"caf\\u00e9\""};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char req[128];
        snprintf(req, sizeof(req), "{\"op\":\"ping\",\"id\":%s}", ids[i]);
        send_req(&a, req, true);
        expect_drop(&a, "pong", NULL);
        expect_raw_member("id", ids[i]);
    }
    /* An id over 256 bytes is not echoed. */
    char req[512];
    snprintf(req, sizeof(req), "{\"op\":\"ping\",\"id\":\"%0300d\"}", 0);
    send_req(&a, req, true);
    expect_drop(&a, "pong", NULL);

    /* Acks of sub: exact name (with id), wildcard patterns (epoch "", offset 0). */
    send_req(&a, "{\"op\":\"sub\",\"topic\":\"chat.room1\",\"id\":1}", true);
    cJSON *j = expect(&a, "ack", "sub");
    expect_raw_member("id", "1");
    cr_assert_str_eq(str(j, "topic"), "chat.room1");
    cr_assert_neq(str(j, "epoch")[0], '\0');
    cr_assert_eq(num(j, "offset"), 0);
    cr_assert_eq(num(j, "replay"), 0);
    cr_assert_null(cJSON_GetObjectItem(j, "recovered"));
    cJSON_Delete(j);
    const char *patterns[] = {"chat.*", "*.room1", "chat.>", ">", "user:42.inbox"};
    for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        snprintf(req, sizeof(req), "{\"op\":\"sub\",\"topic\":\"%s\",\"id\":\"s%zu\"}", patterns[i],
                 i);
        send_req(&b, req, true);
        j = expect(&b, "ack", "sub");
        cr_assert_str_eq(str(j, "topic"), patterns[i]);
        if (strchr(patterns[i], '*') || strchr(patterns[i], '>'))
            cr_assert_str_eq(str(j, "epoch"), "");
        cJSON_Delete(j);
    }

    /* Ack of pub, then the msg (once to b despite its four matching subscriptions). */
    send_req(&b, "{\"op\":\"pub\",\"topic\":\"chat.room1\",\"data\":{\"text\":\"hi\"},\"id\":3}",
             true);
    j = expect(&b, "ack", "pub");
    expect_raw_member("id", "3");
    cr_assert_eq(num(j, "offset"), 1);
    cr_assert_eq(num(j, "reach"), 2);
    cJSON_Delete(j);
    j = expect(&b, "msg", NULL);
    cr_assert_eq(num(j, "offset"), 1);
    cJSON_Delete(j);
    j = expect(&a, "msg", NULL);
    cr_assert_str_eq(str(j, "topic"), "chat.room1");
    cJSON_Delete(j);
    /* A pub without id, reaching nobody. */
    send_req(&a, "{\"op\":\"pub\",\"topic\":\"nobody.here\",\"data\":1}", true);
    j = expect(&a, "ack", "pub");
    expect_raw_member("id", NULL);
    cr_assert_eq(num(j, "reach"), 1, "b's \">\" subscription");
    cJSON_Delete(j);
    expect_drop(&b, "msg", NULL);

    /* An exact subscription whose replay repeats what b's patterns were sent: "delivered". */
    send_req(&b, "{\"op\":\"sub\",\"topic\":\"chat.room1\",\"last\":5}", true);
    j = expect(&b, "ack", "sub");
    cr_assert_eq(num(j, "replay"), 1);
    cr_assert_eq(num(j, "delivered"), 1, "%s", last_raw);
    cJSON_Delete(j);
    j = expect(&b, "msg", NULL);
    cr_assert_eq(num(j, "offset"), 1);
    cJSON_Delete(j);

    /* Acks of unsub, with and without id, of a name and of a pattern. */
    send_req(&a, "{\"op\":\"unsub\",\"topic\":\"chat.room1\",\"id\":2}", true);
    j = expect(&a, "ack", "unsub");
    expect_raw_member("id", "2");
    cr_assert_str_eq(str(j, "topic"), "chat.room1");
    cJSON_Delete(j);
    send_req(&b, "{\"op\":\"unsub\",\"topic\":\"chat.>\"}", true);
    expect_drop(&b, "ack", "unsub");
    expect_raw_member("id", NULL);

    /* Unknown fields and fields the op does not use are ignored by the server, but the strict
     * schema refuses them. */
    send_req(&a, "{\"op\":\"ping\",\"extra\":1}", false);
    expect_drop(&a, "pong", NULL);
    send_req(&a, "{\"op\":\"sub\",\"topic\":\"x\",\"data\":1}", false);
    expect_drop(&a, "ack", "sub");
    wsc_close(&a);
    wsc_close(&b);
}

/* An id too long to echo is left out of every answer, acks included, and every request is still
 * answered: acks once went unsent when the id did not fit beside the topic (over about 1,900
 * bytes), while the sub or pub itself took effect. */
Test(schema, long_ids_are_left_out_and_every_request_is_answered)
{
    struct wsc a;
    sopen(&a, srv.port);
    static const char *const heads[] = {
        "{\"op\":\"sub\",\"topic\":\"long.id\",",
        "{\"op\":\"pub\",\"topic\":\"long.id\",\"data\":1,",
        "{\"op\":\"presence\",\"topic\":\"long.id\",",
        "{\"op\":\"unsub\",\"topic\":\"long.id\",",
        "{\"op\":\"ping\",",
    };
    static const char *const ops[] = {"sub", "pub", "presence", "unsub", NULL};
    /* 300 bytes fits beside any reply but is over the 256 echoed; 2,500 would not fit. */
    static const size_t lens[] = {300, 2500};
    static char id[2501], req[2600];
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        memset(id, 'y', lens[k]);
        id[lens[k]] = '\0';
        for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
            snprintf(req, sizeof(req), "%s\"id\":\"%s\"}", heads[i], id);
            send_req(&a, req, true);
            expect_drop(&a, ops[i] ? "ack" : "pong", ops[i]);
            expect_raw_member("id", NULL);
            if (i == 1) /* the pub reaches a itself, after its ack */
                expect_drop(&a, "msg", NULL);
        }
    }
    wsc_close(&a);
}

Test(schema, msg_with_data_of_every_json_kind)
{
    struct wsc sub, pub;
    sopen(&sub, srv.port);
    sopen(&pub, srv.port);
    send_req(&sub, "{\"op\":\"sub\",\"topic\":\"kinds\"}", true);
    expect_drop(&sub, "ack", "sub");
    const char *data[] = {
        "{\"text\":\"hi\",\"n\":1.50}",
        "{}",
        "{ \"nested\" : { \"a\" : [ 1 , { } ] } }",
        "[1,\"two\",null,true,{\"x\":[]}]",
        "[]",
        "\"hello\"",
        "\"\"",
        "\"caf\\u00e9 \\\"q\\\" \\n \xe2\x82\xac\"",
        "42",
        "-7",
        "0",
        "1.5e-3",
        "-0.0",
        "12345678901234567890",
        "true",
        "false",
        "null",
    };
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++) {
        char req[256], want[256];
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"kinds\",\"data\":%s,\"id\":%zu}",
                 data[i], i);
        send_req(&pub, req, true);
        cJSON *j = expect(&pub, "ack", "pub");
        cr_assert_eq(num(j, "offset"), (double)(i + 1));
        cr_assert_eq(num(j, "reach"), 1);
        cJSON_Delete(j);
        j = expect(&sub, "msg", NULL);
        snprintf(want, sizeof(want),
                 "{\"type\":\"msg\",\"topic\":\"kinds\",\"data\":%s,\"offset\":%zu}", data[i],
                 i + 1);
        cr_assert_str_eq(last_raw, want, "data is delivered as written");
        cJSON_Delete(j);
    }
    wsc_close(&sub);
    wsc_close(&pub);
}

/* Presence over a real server: members, events, queries, errors; every message validated. */
Test(schema, presence_members_events_and_queries)
{
    struct wsc a, b;
    sopen(&a, srv.port);
    sopen(&b, srv.port);
    send_req(&a,
             "{\"op\":\"sub\",\"topic\":\"room.p\",\"id\":1,"
             "\"presence\":{\"info\":{\"name\":\"ann\", \"n\":1.50}}}",
             true);
    expect_drop(&a, "ack", "sub");
    send_req(&b, "{\"op\":\"sub\",\"topic\":\"room.p\",\"presence\":true}", true);
    expect_drop(&b, "ack", "sub");
    /* a hears b's join; info null for presence:true */
    cJSON *j = expect(&a, "join", NULL);
    cr_assert_str_eq(str(j, "topic"), "room.p");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "member");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(m, "info")), "%s", last_raw);
    char bsession[64];
    snprintf(bsession, sizeof(bsession), "%s", str(m, "session"));
    cJSON_Delete(j);

    send_req(&b, "{\"op\":\"presence\",\"topic\":\"room.p\",\"id\":\"q\"}", true);
    j = expect(&b, "ack", "presence");
    cr_assert_eq(num(j, "count"), 2);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "members")), 2);
    cr_assert_not_null(strstr(last_raw, "\"info\":{\"name\":\"ann\", \"n\":1.50}"),
                       "info passed through as written: %s", last_raw);
    cJSON_Delete(j);
    send_req(&b, "{\"op\":\"presence\",\"topic\":\"room.p\",\"limit\":1}", true);
    j = expect(&b, "ack", "presence");
    cr_assert_eq(num(j, "count"), 2);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "members")), 1);
    cJSON_Delete(j);
    send_req(&b, "{\"op\":\"presence\",\"topic\":\"nobody.here\",\"limit\":0}", true);
    j = expect(&b, "ack", "presence");
    cr_assert_eq(num(j, "count"), 0);
    cJSON_Delete(j);
    send_req(&b, "{\"op\":\"presence\",\"topic\":\"room.*\",\"id\":5}", false);
    expect_drop(&b, "error", "bad_topic");
    send_req(&b, "{\"op\":\"sub\",\"topic\":\"room.*\",\"presence\":true}", true);
    expect_drop(&b, "error", "bad_request");
    send_req(&b, "{\"op\":\"sub\",\"topic\":\"room.q\",\"presence\":{\"info\":\"bob\"}}", false);
    expect_drop(&b, "error", "bad_request");
    send_req(&b, "{\"op\":\"presence\",\"topic\":\"room.p\",\"limit\":1001}", false);
    expect_drop(&b, "error", "bad_request");
    /* "info": null is a member without info (broker.md), for the schema as for the server. */
    send_req(&b, "{\"op\":\"sub\",\"topic\":\"room.n\",\"presence\":{\"info\":null}}", true);
    expect_drop(&b, "ack", "sub");

    /* b leaves by closing: a hears it */
    wsc_close(&b);
    j = expect(&a, "leave", NULL);
    cr_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(j, "member"), "session"), bsession);
    cJSON_Delete(j);
    send_req(&a, "{\"op\":\"presence\",\"topic\":\"room.p\"}", true);
    j = expect(&a, "ack", "presence");
    cr_assert_eq(num(j, "count"), 1);
    cJSON_Delete(j);
    wsc_close(&a);
}

Test(schema, sub_with_last_and_recover)
{
    struct wsc p, s;
    sopen(&p, srv.port);
    sopen(&s, srv.port);
    send_req(&p, "{\"op\":\"sub\",\"topic\":\"hist.a\",\"id\":0}", true);
    cJSON *j = expect(&p, "ack", "sub");
    char epoch[64];
    snprintf(epoch, sizeof(epoch), "%s", str(j, "epoch"));
    cJSON_Delete(j);
    for (int i = 1; i <= 5; i++) {
        char req[128];
        snprintf(req, sizeof(req), "{\"op\":\"pub\",\"topic\":\"hist.a\",\"data\":%d}", i);
        send_req(&p, req, true);
        expect_drop(&p, "ack", "pub");
        expect_drop(&p, "msg", NULL);
    }

    struct {
        const char *extra; /* fields after the topic; EPOCH: the epoch */
        int replay, first; /* replayed messages and the first one's offset */
        const char *recovered;
    } cases[] = {
        {",\"last\":3", 3, 3, NULL},
        {",\"last\":0", 0, 0, NULL},
        {",\"last\":1000000", 5, 1, NULL},
        {",\"recover\":{\"epoch\":\"EPOCH\",\"offset\":2}", 3, 3, "true"},
        {",\"recover\":{\"epoch\":\"EPOCH\",\"offset\":5}", 0, 0, "true"},
        {",\"recover\":{\"epoch\":\"EPOCH\",\"offset\":0},\"last\":1", 5, 1, "true"},
        {",\"recover\":{\"epoch\":\"not-this-one\",\"offset\":2}", 0, 0, "false"},
        {",\"recover\":{\"epoch\":\"\",\"offset\":0}", 0, 0, "false"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char extra[128], req[256];
        /* EPOCH stands for the topic's epoch. */
        const char *at = strstr(cases[i].extra, "EPOCH");
        if (at)
            snprintf(extra, sizeof(extra), "%.*s%s%s", (int)(at - cases[i].extra), cases[i].extra,
                     epoch, at + 5);
        else
            snprintf(extra, sizeof(extra), "%s", cases[i].extra);
        snprintf(req, sizeof(req), "{\"op\":\"sub\",\"topic\":\"hist.a\"%s,\"id\":\"r%zu\"}", extra,
                 i);
        send_req(&s, req, true);
        j = expect(&s, "ack", "sub");
        cr_assert_str_eq(str(j, "epoch"), epoch, "case %zu", i);
        cr_assert_eq(num(j, "offset"), 5, "case %zu", i);
        cr_assert_eq(num(j, "replay"), cases[i].replay, "case %zu: %s", i, last_raw);
        expect_raw_member("recovered", cases[i].recovered);
        cJSON_Delete(j);
        for (int k = 0; k < cases[i].replay; k++) {
            j = expect(&s, "msg", NULL);
            cr_assert_eq(num(j, "offset"), cases[i].first + k, "case %zu", i);
            cJSON_Delete(j);
        }
        /* Nothing more: the ping's pong is next. */
        send_req(&s, "{\"op\":\"ping\"}", true);
        expect_drop(&s, "pong", NULL);
    }
    /* On a pattern, recover and last are ignored; the ack is still valid. */
    send_req(&s, "{\"op\":\"sub\",\"topic\":\"hist.*\",\"last\":5}", true);
    j = expect(&s, "ack", "sub");
    cr_assert_eq(num(j, "replay"), 0);
    cJSON_Delete(j);
    char req[256];
    snprintf(req, sizeof(req),
             "{\"op\":\"sub\",\"topic\":\"hist.>\",\"recover\":{\"epoch\":\"%s\",\"offset\":1}}",
             epoch);
    send_req(&s, req, true);
    j = expect(&s, "ack", "sub");
    cr_assert_eq(num(j, "replay"), 0);
    expect_raw_member("recovered", NULL); /* neither a hit nor a miss: nothing was tried */
    cJSON_Delete(j);
    send_req(&s, "{\"op\":\"ping\"}", true);
    expect_drop(&s, "pong", NULL);
    wsc_close(&p);
    wsc_close(&s);
}

/* ---- every error ---- */

struct error_case {
    const char *req;
    const char *code;
    const char *id;    /* the id the error must echo, raw; NULL: none */
    bool schema_valid; /* whether client-request.schema.json accepts the request */
};

static void run_error_cases(struct wsc *c, const struct error_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        send_req(c, cases[i].req, cases[i].schema_valid);
        cJSON *j = expect(c, "error", cases[i].code);
        cr_assert_neq(str(j, "message")[0], '\0');
        expect_raw_member("id", cases[i].id);
        cJSON_Delete(j);
    }
}

Test(schema, every_error_code_the_server_sends)
{
    struct wsc c;
    sopen(&c, srv.port);
    char seg65[128], seg17[256], long_topic[512], long_epoch[128];
    char req65[256], req17[512], req_long[640], req_epoch[256];
    memset(seg65, 'a', 65);
    seg65[65] = '\0';
    seg17[0] = '\0';
    for (int i = 0; i < 17; i++)
        strcat(seg17, i ? ".s" : "s");
    long_topic[0] = '\0';
    for (int i = 0; i < 4; i++) {
        char seg[65];
        memset(seg, 'b', 64);
        seg[64] = '\0';
        if (i)
            strcat(long_topic, ".");
        strcat(long_topic, seg);
    }
    memset(long_epoch, 'e', 40);
    long_epoch[40] = '\0';
    snprintf(req65, sizeof(req65), "{\"op\":\"sub\",\"topic\":\"%s\"}", seg65);
    snprintf(req17, sizeof(req17), "{\"op\":\"sub\",\"topic\":\"%s\"}", seg17);
    snprintf(req_long, sizeof(req_long), "{\"op\":\"sub\",\"topic\":\"%s\"}", long_topic);
    snprintf(req_epoch, sizeof(req_epoch),
             "{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":\"%s\",\"offset\":1}}",
             long_epoch);
    const struct error_case cases[] = {
        /* bad_json */
        {"{not json", "bad_json", NULL, false},
        {"{\"op\":\"ping\",}", "bad_json", NULL, false},
        {"{\"op\":\"ping\",\"id\":1} {}", "bad_json", NULL, false},
        {"", "bad_json", NULL, false},
        /* bad_request */
        {"[1,2]", "bad_request", NULL, false},
        {"\"ping\"", "bad_request", NULL, false},
        {"{\"op\":5,\"id\":2}", "bad_request", "2", false},
        {"{\"op\":\"ping\",\"id\":true}", "bad_request", NULL, false},
        {"{\"op\":\"ping\",\"id\":{\"a\":1}}", "bad_request", NULL, false},
        {"{\"op\":\"sub\",\"topic\":7,\"id\":3}", "bad_request", "3", false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"last\":-1,\"id\":4}", "bad_request", "4", false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"last\":2.5}", "bad_request", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"last\":\"3\"}", "bad_request", NULL, false},
        /* The upper bound of recover.offset is not in the schema (README); that of last is. */
        {"{\"op\":\"sub\",\"topic\":\"a\",\"last\":1000001}", "bad_request", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":\"e\",\"offset\":"
         "9007199254740992}}",
         "bad_request", NULL, true},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":[]}", "bad_request", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":5,\"offset\":1}}", "bad_request",
         NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":\"e\",\"offset\":-1}}",
         "bad_request", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":\"e\",\"offset\":1.5}}",
         "bad_request", NULL, false},
        {req_epoch, "bad_request", NULL, false},
        /* unknown_op */
        {"{\"op\":\"dance\",\"id\":\"x\"}", "unknown_op", "\"x\"", false},
        {"{\"op\":\"SUB\",\"topic\":\"a\"}", "unknown_op", NULL, false},
        /* missing_field */
        {"{\"id\":1}", "missing_field", "1", false},
        {"{}", "missing_field", NULL, false},
        {"{\"op\":\"sub\",\"id\":5}", "missing_field", "5", false},
        {"{\"op\":\"unsub\"}", "missing_field", NULL, false},
        {"{\"op\":\"pub\",\"data\":1}", "missing_field", NULL, false},
        {"{\"op\":\"pub\",\"topic\":\"t\",\"id\":6}", "missing_field", "6", false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"epoch\":\"e\"}}", "missing_field", NULL,
         false},
        {"{\"op\":\"sub\",\"topic\":\"a\",\"recover\":{\"offset\":1}}", "missing_field", NULL,
         false},
        /* bad_topic */
        {"{\"op\":\"sub\",\"topic\":\"bad topic!\",\"id\":7}", "bad_topic", "7", false},
        {"{\"op\":\"sub\",\"topic\":\"chat..room\"}", "bad_topic", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\".chat\"}", "bad_topic", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"\"}", "bad_topic", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"a.>.b\"}", "bad_topic", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"chat/room\"}", "bad_topic", NULL, false},
        {"{\"op\":\"sub\",\"topic\":\"caf\xc3\xa9\"}", "bad_topic", NULL, false},
        {"{\"op\":\"unsub\",\"topic\":\"a.b*\"}", "bad_topic", NULL, false},
        {"{\"op\":\"pub\",\"topic\":\"chat.*\",\"data\":1,\"id\":8}", "bad_topic", "8", false},
        {"{\"op\":\"pub\",\"topic\":\">\",\"data\":1}", "bad_topic", NULL, false},
        {req_long, "bad_topic", NULL, false},
        /* Not expressible in the schema: escapes, segment length, segment count. */
        {"{\"op\":\"sub\",\"topic\":\"chat\\u002eroom\"}", "bad_topic", NULL, true},
        {req65, "bad_topic", NULL, true},
        {req17, "bad_topic", NULL, true},
        /* not_subscribed: a valid request */
        {"{\"op\":\"unsub\",\"topic\":\"never\",\"id\":\"u1\"}", "not_subscribed", "\"u1\"", true},
        {"{\"op\":\"unsub\",\"topic\":\"never.*\"}", "not_subscribed", NULL, true},
    };
    run_error_cases(&c, cases, sizeof(cases) / sizeof(cases[0]));

    /* binary_not_supported: not a JSON request at all. */
    cr_assert_eq(wsc_send(&c, WS_OP_BINARY, "{\"op\":\"ping\"}", 13), 0);
    expect_drop(&c, "error", "binary_not_supported");
    expect_raw_member("id", NULL);

    /* Errors never close the connection. */
    send_req(&c, "{\"op\":\"ping\",\"id\":9}", true);
    expect_drop(&c, "pong", NULL);
    wsc_close(&c);
}

Test(schema_limits, too_many_subscriptions)
{
    struct wsc c;
    sopen(&c, srv.port);
    send_req(&c, "{\"op\":\"sub\",\"topic\":\"a\"}", true);
    expect_drop(&c, "ack", "sub");
    send_req(&c, "{\"op\":\"sub\",\"topic\":\"b.*\"}", true);
    expect_drop(&c, "ack", "sub");
    const struct error_case full[] = {
        {"{\"op\":\"sub\",\"topic\":\"c\",\"id\":1}", "too_many_subscriptions", "1", true},
        {"{\"op\":\"sub\",\"topic\":\">\"}", "too_many_subscriptions", NULL, true},
    };
    run_error_cases(&c, full, 2);
    /* Subscribing again to what is subscribed is not an error. */
    send_req(&c, "{\"op\":\"sub\",\"topic\":\"a\",\"last\":1}", true);
    expect_drop(&c, "ack", "sub");
    send_req(&c, "{\"op\":\"unsub\",\"topic\":\"a\"}", true);
    expect_drop(&c, "ack", "unsub");
    send_req(&c, "{\"op\":\"sub\",\"topic\":\"c\",\"id\":2}", true);
    expect_drop(&c, "ack", "sub");
    wsc_close(&c);
}

/* ---- the validation is not vacuous ---- */

/* `mutated` (consumed) must be invalid, with a reason containing `needle`. */
static void expect_invalid(cJSON *mutated, const char *needle)
{
    char why[1024];
    char *txt = cJSON_PrintUnformatted(mutated);
    int rc = schema_validate(&msg_schema, mutated, why, sizeof(why));
    cr_assert_eq(rc, -1, "tampered message %s passed validation", txt);
    cr_assert_not_null(strstr(why, needle), "reason for %s: \"%s\" should mention %s", txt, why,
                       needle);
    free(txt);
    cJSON_Delete(mutated);
}

static cJSON *copy(const cJSON *j)
{
    cJSON *d = cJSON_Duplicate(j, true);
    char why[1024];
    cr_assert_eq(schema_validate(&msg_schema, d, why, sizeof(why)), 0, "%s", why);
    return d;
}

Test(schema, tampered_server_messages_are_rejected)
{
    struct wsc c;
    char head[2048];
    cr_assert_eq(wsc_connect(&c, srv.port, "/ws", NULL, head, sizeof(head)), 101);
    cJSON *welcome = expect(&c, "welcome", NULL);
    send_req(&c, "{\"op\":\"sub\",\"topic\":\"t\",\"id\":1}", true);
    cJSON *ack_sub = expect(&c, "ack", "sub");
    send_req(&c, "{\"op\":\"pub\",\"topic\":\"t\",\"data\":[1]}", true);
    cJSON *ack_pub = expect(&c, "ack", "pub");
    cJSON *msg = expect(&c, "msg", NULL);
    send_req(&c, "{\"op\":\"ping\",\"id\":\"x\"}", true);
    cJSON *pong = expect(&c, "pong", NULL);
    send_req(&c, "{\"op\":\"dance\"}", false);
    cJSON *err = expect(&c, "error", "unknown_op");
    wsc_close(&c);

    cJSON *m = copy(ack_sub);
    cJSON_AddNumberToObject(m, "extra", 1);
    expect_invalid(m, "$.extra: member not allowed");
    m = copy(ack_sub);
    cJSON_DeleteItemFromObject(m, "replay");
    expect_invalid(m, "\"replay\" is missing");
    m = copy(ack_sub);
    cJSON_ReplaceItemInObject(m, "epoch",
                              cJSON_CreateString("0123456789012345678901234567890123456789"));
    expect_invalid(m, "$.epoch");
    m = copy(ack_sub);
    cJSON_AddStringToObject(m, "recovered", "yes");
    expect_invalid(m, "recovered");
    m = copy(ack_sub);
    cJSON_ReplaceItemInObject(m, "id", cJSON_CreateTrue());
    expect_invalid(m, "$.id");
    m = copy(ack_pub);
    cJSON_ReplaceItemInObject(m, "offset", cJSON_CreateNumber(0));
    expect_invalid(m, "$.offset: 0 is below the minimum 1");
    m = copy(ack_pub);
    cJSON_ReplaceItemInObject(m, "op", cJSON_CreateString("ping"));
    expect_invalid(m, "none of the 11 alternatives");
    m = copy(ack_pub);
    cJSON_ReplaceItemInObject(m, "topic", cJSON_CreateString("t.*"));
    expect_invalid(m, "$.topic");
    m = copy(msg);
    cJSON_DeleteItemFromObject(m, "offset");
    expect_invalid(m, "\"offset\" is missing");
    m = copy(msg);
    cJSON_ReplaceItemInObject(m, "offset", cJSON_CreateNumber(1.5));
    expect_invalid(m, "not of type integer");
    m = copy(msg);
    cJSON_DeleteItemFromObject(m, "data");
    expect_invalid(m, "\"data\" is missing");
    m = copy(msg);
    cJSON_AddNumberToObject(m, "id", 1);
    expect_invalid(m, "$.id");
    m = copy(welcome);
    cJSON_ReplaceItemInObject(m, "version", cJSON_CreateString("herald.v2"));
    expect_invalid(m, "$.version");
    m = copy(welcome);
    cJSON_ReplaceItemInObject(m, "type", cJSON_CreateString("hello"));
    expect_invalid(m, "none of the 11 alternatives");
    m = copy(pong);
    cJSON_ReplaceItemInObject(m, "id", cJSON_CreateNull());
    expect_invalid(m, "$.id");
    m = copy(err);
    cJSON_ReplaceItemInObject(m, "code", cJSON_CreateString("nope"));
    expect_invalid(m, "$.code");
    m = copy(err);
    cJSON_DeleteItemFromObject(m, "message");
    expect_invalid(m, "\"message\" is missing");
    m = copy(err);
    cJSON_AddStringToObject(m, "code", "bad_json");
    expect_invalid(m, "appears twice");
    expect_invalid(cJSON_CreateArray(), "none of the 11 alternatives");

    cJSON_Delete(welcome);
    cJSON_Delete(ack_sub);
    cJSON_Delete(ack_pub);
    cJSON_Delete(msg);
    cJSON_Delete(pong);
    cJSON_Delete(err);
}

/* ---- the validator itself, without a server ---- */

/* Every request and server message shown in broker.md is valid. */
Test(schema_validator, the_examples_of_broker_md_are_valid)
{
    /* broker.md is next to the schemas' directory, wherever schema_load found it. */
    char path[1100];
    snprintf(path, sizeof(path), "%s", msg_schema.path);
    char *at = strstr(path, "schemas/server-message.schema.json");
    cr_assert_not_null(at, "%s", path);
    strcpy(at, "broker.md");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char line[1024];
    int requests = 0, messages = 0;
    while (fgets(line, sizeof(line), f)) {
        char *p = line;
        if ((p[0] == '<' || p[0] == '>') && p[1] == ' ')
            p += 2;
        p[strcspn(p, "\n")] = '\0';
        const struct schema *s = NULL;
        if (strncmp(p, "{\"op\"", 5) == 0) {
            s = &req_schema;
            requests++;
        } else if (strncmp(p, "{\"type\"", 7) == 0) {
            s = &msg_schema;
            messages++;
        } else {
            continue;
        }
        char why[1024];
        cr_expect_eq(schema_validate_text(s, p, strlen(p), why, sizeof(why)), 0, "%s: %s", p, why);
    }
    fclose(f);
    cr_assert_geq(requests, 8);
    cr_assert_geq(messages, 10);
}

Test(schema_validator, the_loader_refuses_keywords_outside_the_subset)
{
    struct {
        const char *schema, *needle;
    } bad[] = {
        {"{\"type\":\"string\",\"minLength\":1}", "\"minLength\" is not in the supported subset"},
        {"{\"properties\":{\"a\":{\"minItems\":1}}}",
         "\"minItems\" is not in the supported subset"},
        {"{\"type\":[\"string\",\"null\"]}", "type must be one type name"},
        {"{\"additionalProperties\":{}}", "must be a boolean"},
        {"{\"$ref\":\"#/$defs/missing\",\"$defs\":{}}", "$ref"},
        {"{\"$ref\":\"other.json#/$defs/a\",\"$defs\":{\"a\":{}}}", "$ref"},
        {"{\"pattern\":\"(\"}", "POSIX"},
        {"{\"properties\":{\"a\":{\"$defs\":{}}}}", "only at the root"},
        {"{\"properties\":{\"a\":true}}", "boolean schemas"},
        {"{\"type\":\"string\",\"type\":\"number\"}", "given twice"},
        {"{\"$schema\":\"http://json-schema.org/draft-07/schema#\"}", "$schema"},
        {"{\"oneOf\":[]}", "non-empty"},
        {"{\"maxLength\":-1}", "non-negative"},
        {"[]", "must be an object"},
        {"{\"type\":", "not JSON"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct schema s;
        cr_assert_eq(schema_load_string(&s, bad[i].schema), -1, "%s loaded", bad[i].schema);
        cr_assert_not_null(strstr(s.error, bad[i].needle), "%s: \"%s\" should mention %s",
                           bad[i].schema, s.error, bad[i].needle);
    }
    struct schema s;
    cr_assert_eq(schema_load(&s, "proto/schemas/no-such.schema.json"), -1);
    cr_assert_not_null(strstr(s.error, "cannot read"), "%s", s.error);
}

Test(schema_validator, keyword_semantics)
{
    struct schema s;
    cr_assert_eq(schema_load_string(&s, "{\"$defs\":{\"n\":{\"type\":\"integer\",\"minimum\":2}},"
                                        "\"type\":\"object\",\"properties\":{"
                                        "\"i\":{\"$ref\":\"#/$defs/n\"},"
                                        "\"s\":{\"type\":\"string\",\"maxLength\":2,"
                                        "\"pattern\":\"^[a-z\\u00e9]+$\"},"
                                        "\"e\":{\"enum\":[1,\"one\",null]},"
                                        "\"c\":{\"const\":{\"k\":[1,2]}},"
                                        "\"o\":{\"oneOf\":[{\"type\":\"number\"},"
                                        "{\"type\":\"integer\"}]},"
                                        "\"a\":{\"type\":\"array\",\"maxItems\":2,"
                                        "\"items\":{\"type\":\"integer\",\"maximum\":9}}},"
                                        "\"required\":[\"i\"],\"additionalProperties\":false}"),
                 0, "%s", s.error);
    struct {
        const char *json;
        int rc;
        const char *needle;
    } cases[] = {
        {"{\"i\":2}", 0, NULL},
        {"{\"i\":3.0}", 0, NULL},
        {"{\"i\":2.5}", -1, "$.i: 2.5 is not of type integer (schema #/$defs/n/type)"},
        {"{\"i\":1}", -1, "$.i: 1 is below the minimum 2"},
        {"{}", -1, "$: required member \"i\" is missing"},
        {"{\"i\":2,\"x\":0}", -1, "$.x: member not allowed"},
        {"{\"i\":2,\"i\":3}", -1, "appears twice"},
        {"{\"i\":2,\"s\":\"\xc3\xa9\xc3\xa9\"}", 0, NULL},
        {"{\"i\":2,\"s\":\"abc\"}", -1, "$.s: \"abc\" is longer than 2"},
        {"{\"i\":2,\"s\":\"A\"}", -1, "$.s: \"A\" does not match"},
        {"{\"i\":2,\"e\":\"one\"}", 0, NULL},
        {"{\"i\":2,\"e\":\"two\"}", -1, "$.e: \"two\" is not one of the enum"},
        {"{\"i\":2,\"c\":{\"k\":[1,2]}}", 0, NULL},
        {"{\"i\":2,\"c\":{\"k\":[2,1]}}", -1, "$.c"},
        {"{\"i\":2,\"o\":1.5}", 0, NULL},
        {"{\"i\":2,\"o\":1}", -1, "$.o: matches 2 alternatives of oneOf"},
        {"{\"i\":2,\"a\":[1,9]}", 0, NULL},
        {"{\"i\":2,\"a\":[]}", 0, NULL},
        {"{\"i\":2,\"a\":[1,10]}", -1, "$.a[1]: 10 is above the maximum 9"},
        {"{\"i\":2,\"a\":[1,\"x\"]}", -1, "$.a[1]: \"x\" is not of type integer"},
        {"{\"i\":2,\"a\":[1,2,3]}", -1, "$.a: 3 items, more than 2"},
        {"[]", -1, "$: [] is not of type object"},
        {"{\"i\":2} x", -1, "not JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char why[1024];
        int rc = schema_validate_text(&s, cases[i].json, strlen(cases[i].json), why, sizeof(why));
        cr_expect_eq(rc, cases[i].rc, "%s: %d (%s)", cases[i].json, rc, why);
        if (cases[i].needle)
            cr_expect_not_null(strstr(why, cases[i].needle), "%s: \"%s\" should contain \"%s\"",
                               cases[i].json, why, cases[i].needle);
    }
    schema_free(&s);
}
