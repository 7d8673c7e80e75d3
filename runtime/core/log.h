/* log.h — leveled logging to stderr, as text lines or JSON lines.
 *
 * One process-wide logger (level + format), safe to call from any thread.
 * Text:  2026-11-25T09:03:38.123Z INFO  loaded 291 tensors
 * JSON:  {"ts":"2026-11-25T09:03:38.123Z","level":"info","msg":"loaded 291 tensors"}
 */
#ifndef VRT_CORE_LOG_H
#define VRT_CORE_LOG_H

#include <stdio.h>

typedef enum {
    VRT_LOG_DEBUG = 0,
    VRT_LOG_INFO = 1,
    VRT_LOG_WARN = 2,
    VRT_LOG_ERROR = 3,
    VRT_LOG_OFF = 4,
} vrt_log_level;

typedef enum { VRT_LOG_TEXT = 0, VRT_LOG_JSON = 1 } vrt_log_format;

void vrt_log_set_level(int level);
int vrt_log_get_level(void);
void vrt_log_set_format(int format);
/* Redirects output (tests); NULL restores stderr. */
void vrt_log_set_stream(FILE *f);
/* Parses "debug" | "info" | "warn" | "error" | "off"; -1 when unknown. */
int vrt_log_level_parse(const char *s);

void vrt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define VRT_DEBUG(...) vrt_log(VRT_LOG_DEBUG, __VA_ARGS__)
#define VRT_INFO(...) vrt_log(VRT_LOG_INFO, __VA_ARGS__)
#define VRT_WARN(...) vrt_log(VRT_LOG_WARN, __VA_ARGS__)
#define VRT_ERROR(...) vrt_log(VRT_LOG_ERROR, __VA_ARGS__)

#endif
