/* log.c — see log.h. A mutex keeps lines from different threads whole. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int g_level = VRT_LOG_INFO;
static int g_format = VRT_LOG_TEXT;
static FILE *g_stream;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void vrt_log_set_level(int level)
{
    if (level >= VRT_LOG_DEBUG && level <= VRT_LOG_OFF)
        g_level = level;
}

int vrt_log_get_level(void)
{
    return g_level;
}

void vrt_log_set_format(int format)
{
    g_format = format == VRT_LOG_JSON ? VRT_LOG_JSON : VRT_LOG_TEXT;
}

void vrt_log_set_stream(FILE *f)
{
    g_stream = f;
}

int vrt_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i <= VRT_LOG_OFF; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return VRT_LOG_WARN;
    return -1;
}

/* Writes s as the inside of a JSON string. */
static void put_json_string(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
}

void vrt_log(int level, const char *fmt, ...)
{
    if (level < g_level || level >= VRT_LOG_OFF)
        return;
    char msg[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof when - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));

    pthread_mutex_lock(&g_lock);
    FILE *f = g_stream ? g_stream : stderr;
    if (g_format == VRT_LOG_JSON) {
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", when, level_names[level]);
        put_json_string(f, msg);
        fputs("\"}\n", f);
    } else {
        static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
        fprintf(f, "%s %s %s\n", when, tags[level], msg);
    }
    fflush(f);
    pthread_mutex_unlock(&g_lock);
}
