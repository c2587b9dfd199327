/* fuzz_config: the config loader on any text. A text that loads must also
 * round-trip: the effective config written back (what <run>/config.yaml
 * holds) loads to the same settings and writes the same text again;
 * anything else is a finding (abort). */
#include "fuzz_common.h"

#include "diffsamp/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    ds_settings s;
    ds_settings_defaults(&s);
    if (ds_settings_load_string(&s, text, "fuzz") == DS_OK) {
        char *a = NULL, *b = NULL;
        if (ds_settings_to_yaml(&s, &a) == DS_OK) {
            ds_settings t;
            ds_settings_defaults(&t);
            if (ds_settings_load_string(&t, a, "written") != DS_OK) {
                fprintf(stderr, "the written config does not load: %s\n---\n%s---\n", ds_error_message(), a);
                abort();
            }
            if (ds_settings_to_yaml(&t, &b) != DS_OK || strcmp(a, b) != 0) {
                fprintf(stderr, "the written config does not reproduce itself:\n---\n%s---\n%s---\n", a,
                        b ? b : "(error)");
                abort();
            }
        }
        free(a);
        free(b);
        (void)ds_settings_validate(&s);
    }
    free(text);
    return 0;
}
