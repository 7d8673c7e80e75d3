/* server.h — `v100rt serve`: the HTTP server (loop thread) in front of the
 * engine thread.
 *
 * The server listens first and loads the model in the background, so that
 * GET /health answers 503 while loading and 200 once ready. Generation
 * routes parse and validate on the loop thread (api_req.h), tokenize, and
 * submit to the engine; engine events are copied and posted back to the
 * loop, where they become SSE chunks or the final JSON (api_res.h). A client
 * that disconnects cancels its request. SIGTERM/SIGINT stop accepting,
 * drain in-flight requests for up to 30 s, and exit 0 (a second signal
 * exits at once).
 */
#ifndef VRT_SERVER_SERVER_H
#define VRT_SERVER_SERVER_H

#include "server/route.h"
#include "vrt.h"

#include <stddef.h>

/* Runs the server for a loaded config until a signal stops it. Returns the
 * process exit code (0 after a clean drain). port_file, when not NULL, gets
 * the bound port once listening (tests use port 0). */
int vrt_serve(const vrt_config *cfg, const char *port_file, vrt_err *err);

/* The route table of the server (*n rows), in the order the 404 message
 * lists the paths. */
const vrt_route *vrt_server_routes(size_t *n);

#endif
