/*
 *    Licensed under the Apache License, Version 2.0 (the "License"); you may
 *    not use this file except in compliance with the License. You may obtain
 *    a copy of the License at
 *
 *         http://www.apache.org/licenses/LICENSE-2.0
 *
 *    Unless required by applicable law or agreed to in writing, software
 *    distributed under the License is distributed on an "AS IS" BASIS,
 *    WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or
 *    implied. See the License for the specific language governing
 *    permissions and limitations under the License.
 */

/*
 * scini_shim: an LD_PRELOAD library playing the PowerFlex SDC's /dev/scini.
 *
 * Why: on a real compute or volume host the SDC kernel module provides the
 * character device /dev/scini, and os-brick's unmodified ScaleIOConnector
 * asks it (os_brick/privileged/scaleio.py, in its privsep daemon) for the
 * host's SDC GUID and to rescan volumes. The test cloud runs in a VM with
 * no SDC module (and no CUSE to fake a character device in user space), so
 * processes started with this library preloaded see a /dev/scini of their
 * own instead:
 *
 *   open("/dev/scini", ...)   opens /dev/null with the same flags and
 *                             remembers the descriptor;
 *   ioctl(fd, GET_GUID, buf)  writes the GUID of $POWERFLEX_SDC_GUID
 *                             (canonical UUID text) as 16 raw bytes at
 *                             buf + 8, zeroes the 8-byte return code at buf
 *                             and returns 0; -1/ENODEV when the variable is
 *                             missing or not a UUID;
 *   ioctl(fd, RESCAN_VOLS)    returns 0 (the simulator publishes the
 *                             /dev/disk/by-id links itself);
 *   ioctl(fd, other)          returns -1/ENOTTY;
 *   close(fd)                 forgets the descriptor.
 *
 * Everything else goes to the next definition (libc) through
 * dlsym(RTLD_NEXT). CPython calls open64/openat64/close/ioctl (nm -D of
 * libpython); open/openat and the _FORTIFY_SOURCE __open*_2 variants are
 * covered too for other callers.
 *
 * Build: gcc -shared -fPIC -O2 -o libscini_shim.so scini_shim.c -ldl
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define SCINI_PATH "/dev/scini"
#define GUID_ENV "POWERFLEX_SDC_GUID"

/* _IO('a', 14) and _IO('a', 10), as ScaleIOConnector computes them. */
#define GET_GUID_OP_CODE ((unsigned long)_IO('a', 14))
#define RESCAN_VOLS_OP_CODE ((unsigned long)_IO('a', 10))

/* Descriptors handed out for /dev/scini (-1: free slot). Few are ever open
 * at once: os-brick opens, issues one ioctl and closes; a descriptor that
 * finds no free slot is a plain /dev/null (its ioctls fail with ENOTTY).
 * Slots change by atomic compare-and-swap, not under a mutex: the privsep
 * daemon is multithreaded and forks, and a child must never find a lock
 * held by a thread that does not exist there. */
#define MAX_SCINI_FDS 64
static int scini_fds[MAX_SCINI_FDS] = {
    [0 ... MAX_SCINI_FDS - 1] = -1
};

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static int (*real_ioctl)(int, unsigned long, ...);

/* Resolve the real libc functions at load time, so that a forked child
 * never runs the dynamic loader between fork and exec; REAL() covers calls
 * made before this constructor ran (other libraries' constructors). */
#define REAL(name) \
    do { \
        if (!real_##name) \
            real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name); \
    } while (0)

__attribute__((constructor)) static void resolve_real(void)
{
    REAL(open);
    REAL(open64);
    REAL(openat);
    REAL(openat64);
    REAL(close);
    REAL(ioctl);
}

static int is_scini(const char *path)
{
    return path != NULL && strcmp(path, SCINI_PATH) == 0;
}

/* Is fd in scini_fds? */
static int fd_known(int fd)
{
    int i;

    if (fd < 0)
        return 0;
    for (i = 0; i < MAX_SCINI_FDS; i++)
        if (__atomic_load_n(&scini_fds[i], __ATOMIC_SEQ_CST) == fd)
            return 1;
    return 0;
}

/* Replace fd by `to` in the first slot holding `from` (-1: a free slot). */
static void fd_swap(int from, int to)
{
    int i;

    for (i = 0; i < MAX_SCINI_FDS; i++) {
        int expected = from;

        if (__atomic_compare_exchange_n(&scini_fds[i], &expected, to, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return;
    }
}

static void fd_forget(int fd)
{
    while (fd_known(fd))
        fd_swap(fd, -1);
}

/* A new descriptor from the real open: forget any stale mark on its number
 * (an fd closed behind our back, e.g. by close_range), then, for
 * /dev/scini, remember it. */
static int opened(int fd, int scini)
{
    if (fd >= 0) {
        fd_forget(fd);
        if (scini)
            fd_swap(-1, fd);
    }
    return fd;
}

/* The mode argument exists only with O_CREAT or O_TMPFILE (glibc's
 * __OPEN_NEEDS_MODE). */
#define MODE_ARG(flags, mode) \
    do { \
        if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
            va_list ap; \
            va_start(ap, flags); \
            mode = va_arg(ap, mode_t); \
            va_end(ap); \
        } \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    REAL(open);
    MODE_ARG(flags, mode);
    if (is_scini(path))
        return opened(real_open("/dev/null", flags & ~O_CREAT, mode), 1);
    return opened(real_open(path, flags, mode), 0);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    REAL(open64);
    MODE_ARG(flags, mode);
    if (is_scini(path))
        return opened(real_open64("/dev/null", flags & ~O_CREAT, mode), 1);
    return opened(real_open64(path, flags, mode), 0);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    REAL(openat);
    MODE_ARG(flags, mode);
    if (is_scini(path))  /* absolute: dirfd does not matter */
        return opened(real_openat(dirfd, "/dev/null", flags & ~O_CREAT,
                                  mode), 1);
    return opened(real_openat(dirfd, path, flags, mode), 0);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    REAL(openat64);
    MODE_ARG(flags, mode);
    if (is_scini(path))
        return opened(real_openat64(dirfd, "/dev/null", flags & ~O_CREAT,
                                    mode), 1);
    return opened(real_openat64(dirfd, path, flags, mode), 0);
}

/* _FORTIFY_SOURCE variants of open without a mode argument. */
int __open_2(const char *path, int flags)
{
    return open(path, flags);
}

int __open64_2(const char *path, int flags)
{
    return open64(path, flags);
}

int __openat_2(int dirfd, const char *path, int flags)
{
    return openat(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    return openat64(dirfd, path, flags);
}

int close(int fd)
{
    REAL(close);
    fd_forget(fd);
    return real_close(fd);
}

/* Parse canonical UUID text into 16 bytes; return 0, or -1 if malformed. */
static int parse_guid(const char *text, unsigned char out[16])
{
    int i, n = 0, hi = -1;

    if (text == NULL || strlen(text) != 36)
        return -1;
    for (i = 0; i < 36; i++) {
        char c = text[i];
        int v;

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return -1;
            continue;
        }
        if (c >= '0' && c <= '9')
            v = c - '0';
        else if (c >= 'a' && c <= 'f')
            v = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v = c - 'A' + 10;
        else
            return -1;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (unsigned char)(hi << 4 | v);
            hi = -1;
        }
    }
    return 0;
}

/* Is fd one of ours? It must also still be the /dev/null we opened: a
 * descriptor closed without close() (close_range) and reused by socket(),
 * pipe(), dup()... is forgotten and passed through. */
static int is_scini_fd(int fd)
{
    struct stat st;

    if (!fd_known(fd))
        return 0;
    if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) &&
            st.st_rdev == makedev(1, 3))
        return 1;
    fd_forget(fd);
    return 0;
}

/* glibc declares ioctl(int, unsigned long, ...); every request we know
 * takes a pointer argument. */
int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *arg;
    unsigned char guid[16];
    REAL(ioctl);

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (!is_scini_fd(fd))
        return real_ioctl(fd, request, arg);

    if (request == GET_GUID_OP_CODE) {
        /* buf: 8-byte return code, then the GUID as 16 raw UUID bytes. */
        if (parse_guid(getenv(GUID_ENV), guid) != 0) {
            errno = ENODEV;
            return -1;
        }
        if (arg == NULL) {
            errno = EFAULT;
            return -1;
        }
        memset(arg, 0, 8);
        memcpy((unsigned char *)arg + 8, guid, sizeof(guid));
        return 0;
    }
    if (request == RESCAN_VOLS_OP_CODE)
        return 0;
    errno = ENOTTY;
    return -1;
}
