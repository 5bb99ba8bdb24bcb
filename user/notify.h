/* Telling whoever started us that traffic is now captured. */
#ifndef SPROXY_NOTIFY_H
#define SPROXY_NOTIFY_H

/* The ready line starts with this, and no other line does. */
#define NOTIFY_READY_PREFIX "sproxy-bpf: ready: "

/* The ready line on stderr, then READY=1 to $NOTIFY_SOCKET (systemd's
 * Type=notify) when it is set.  fmt describes what is captured. */
void notify_ready(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
