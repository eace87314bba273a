/* Unit tests for request path normalisation. */
#include <criterion/criterion.h>
#include <string.h>

#include "path.h"

struct path_case {
    const char *in;
    int rc;          /* expected length or negative status */
    const char *out; /* expected result when rc >= 0 */
    int is_dir;
};

static const struct path_case cases[] = {
    {"/", 0, "", 1},
    {"/index.html", 10, "index.html", 0},
    {"/a/b/c.txt", 9, "a/b/c.txt", 0},
    {"/a/b/", 3, "a/b", 1},
    {"//a///b", 3, "a/b", 0},
    {"/a/./b", 3, "a/b", 0},
    {"/a/../b", 1, "b", 0},
    {"/a/b/../../c", 1, "c", 0},
    {"/../../etc/passwd", 10, "etc/passwd", 0},
    {"/a/..", 0, "", 1},
    {"/a/.", 1, "a", 1},
    {"/..", 0, "", 1},
    {"/%2e%2e/%2E%2E/etc/passwd", 10, "etc/passwd", 0},
    {"/hello%20world.txt", 15, "hello world.txt", 0},
    {"/caf%C3%A9", 5, "caf\xc3\xa9", 0},
    {"/a%2Fb", -400, NULL, 0},
    {"/a%2fb", -400, NULL, 0},
    {"/a%00b", -400, NULL, 0},
    {"/a%zzb", -400, NULL, 0},
    {"/a%4", -400, NULL, 0},
    {"/a%", -400, NULL, 0},
    {"relative", -400, NULL, 0},
    {"", -400, NULL, 0},
    {"/.env", -404, NULL, 0},
    {"/.git/config", -404, NULL, 0},
    {"/a/.hidden/b", -404, NULL, 0},
    {"/%2egit/config", -404, NULL, 0},
    {"/...", -404, NULL, 0},
    {"/a/b/.htaccess", -404, NULL, 0},
};

Test(path, normalizes_table)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct path_case *c = &cases[i];
        char out[256];
        int is_dir = -1;
        int rc = path_normalize(c->in, strlen(c->in), out, sizeof(out), &is_dir);
        cr_assert_eq(rc, c->rc, "%s: rc %d, want %d", c->in, rc, c->rc);
        if (rc >= 0) {
            cr_assert_str_eq(out, c->out, "%s", c->in);
            cr_assert_eq(is_dir, c->is_dir, "%s: is_dir %d", c->in, is_dir);
        }
    }
}

Test(path, reports_overflow_instead_of_writing_past_the_buffer)
{
    char in[600];
    in[0] = '/';
    memset(in + 1, 'x', sizeof(in) - 1);
    char out[258];
    memset(out, 0x55, sizeof(out));
    int is_dir;
    cr_assert_eq(path_normalize(in, sizeof(in), out, 256, &is_dir), -414);
    cr_assert_eq((unsigned char)out[256], 0x55);
    cr_assert_eq((unsigned char)out[257], 0x55);
    /* Exactly fitting: 255 characters and the NUL. */
    cr_assert_eq(path_normalize(in, 256, out, 256, &is_dir), 255);
}
