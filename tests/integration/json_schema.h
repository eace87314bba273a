/*
 * json_schema.h - a small JSON Schema validator over cJSON, for checking real herald.v1 traffic
 * against the schemas in proto/schemas/ in the integration tests.
 *
 * It implements exactly the draft 2020-12 subset that proto/schemas/README.md lists, and nothing
 * more: type (a single name), properties, required, additionalProperties (a boolean), enum,
 * const, oneOf, minimum, maxLength (in code points), pattern (POSIX ERE via regcomp, unanchored
 * search as in JSON Schema), $defs at the root and local "$ref": "#/$defs/NAME"; the annotations
 * $schema, title and description are accepted and ignored. Any other keyword, a boolean schema,
 * a keyword given twice, or a malformed value of a known keyword makes schema_load fail, so the
 * subset cannot silently grow keywords that are then not checked.
 *
 * One strictness beyond JSON Schema: an object in the instance with the same member name twice
 * is invalid (JSON Schema's data model has no duplicates; herald never sends them).
 */
#ifndef HERALD_TEST_JSON_SCHEMA_H
#define HERALD_TEST_JSON_SCHEMA_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct schema_regex;

struct schema {
    cJSON *root;
    struct schema_regex *res; /* compiled "pattern"s, by schema node */
    size_t nres, capres;
    char path[1024];  /* the file loaded */
    char error[1024]; /* why schema_load failed */
};

/*
 * schema_load - reads and checks the schema file `path`. A relative path is taken from the
 * repository root: first the one above the directory of $HERALD_BIN (.../build/herald), then
 * the current directory. Returns 0, or -1 with s->error set (and nothing to free).
 */
int schema_load(struct schema *s, const char *path);

/* schema_load_string - the same for a schema given as text (s->path is "(string)"). */
int schema_load_string(struct schema *s, const char *text);

void schema_free(struct schema *s);

/*
 * schema_validate - 0 if `value` is valid against the schema, else -1 with a reason in why
 * (NUL-terminated, at most cap bytes) that names the failing node of the instance ($ for the
 * root, $.recover.offset ...), the keyword and where it sits in the schema.
 */
int schema_validate(const struct schema *s, const cJSON *value, char *why, size_t cap);

/* schema_validate_text - parses `text` (one JSON value, only whitespace after it) and validates
 * it; text that does not parse is invalid ("not JSON"). */
int schema_validate_text(const struct schema *s, const char *text, size_t len, char *why,
                         size_t cap);

#endif
