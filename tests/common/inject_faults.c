/*
 * A fault-injecting file layer for tests, loaded into the real gateway binary with LD_PRELOAD.
 *
 * It wraps the libc calls the gateway's persistence makes (open, write, fsync/fdatasync,
 * rename, ftruncate) and, for files whose path contains $PGW_FAULT_MATCH, fails them as the
 * control file $PGW_FAULT_CONTROL says. The control file holds one rule per line,
 * "<call> <errno> <count>": <call> is open, write, fsync, rename or ftruncate; <errno> is
 * ENOSPC, EIO, EROFS or EACCES; <count> is how many calls fail (-1: all). The file is read
 * again whenever it changes, which resets the counts, so a test changes faults while the
 * gateway runs. Everything else passes through untouched.
 *
 * A failed fsync also drops what was written to the file since its last fsync that succeeded,
 * as the kernel may (it marks the pages clean after a failed writeback): a program that
 * retried the fsync, got success and trusted the data would lose it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

enum call { OPEN, WRITE, FSYNC, RENAME, FTRUNCATE, CALLS };
static const char *call_names[CALLS] = {"open", "write", "fsync", "rename", "ftruncate"};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int rule_errno[CALLS];
static long rule_count[CALLS];
static struct timespec control_mtime;
static ino_t control_ino;
static off_t control_size = -1;

static int errno_by_name(const char *name) {
    if (!strcmp(name, "ENOSPC")) return ENOSPC;
    if (!strcmp(name, "EIO")) return EIO;
    if (!strcmp(name, "EROFS")) return EROFS;
    if (!strcmp(name, "EACCES")) return EACCES;
    return 0;
}

/* Re-reads the control file if it changed. Called with the lock held. Uses raw syscalls so
 * that it does not come back through the wrappers. */
static void refresh(void) {
    const char *control = getenv("PGW_FAULT_CONTROL");
    struct stat st;
    if (!control || syscall(SYS_stat, control, &st) != 0) {
        memset(rule_count, 0, sizeof rule_count);
        control_size = -1;
        return;
    }
    if (st.st_ino == control_ino && st.st_size == control_size &&
        st.st_mtim.tv_sec == control_mtime.tv_sec && st.st_mtim.tv_nsec == control_mtime.tv_nsec)
        return;
    control_ino = st.st_ino;
    control_size = st.st_size;
    control_mtime = st.st_mtim;
    memset(rule_count, 0, sizeof rule_count);
    char text[4096];
    int fd = syscall(SYS_openat, AT_FDCWD, control, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = syscall(SYS_read, fd, text, sizeof text - 1);
    syscall(SYS_close, fd);
    if (n <= 0) return;
    text[n] = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[32], err[32];
        long count;
        if (sscanf(line, "%31s %31s %ld", name, err, &count) != 3) continue;
        for (int c = 0; c < CALLS; c++) {
            if (!strcmp(name, call_names[c])) {
                rule_errno[c] = errno_by_name(err);
                rule_count[c] = count;
            }
        }
    }
}

static int matches(const char *path) {
    const char *match = getenv("PGW_FAULT_MATCH");
    return path && match && *match && strstr(path, match) != NULL;
}

static int fd_matches(int fd) {
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = syscall(SYS_readlink, link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return matches(path);
}

/* Whether this call fails now; sets errno if so. */
static int inject(enum call call, int relevant) {
    if (!relevant) return 0;
    int fail = 0;
    pthread_mutex_lock(&lock);
    refresh();
    if (rule_count[call] != 0 && rule_errno[call] != 0) {
        fail = rule_errno[call];
        if (rule_count[call] > 0) rule_count[call]--;
    }
    pthread_mutex_unlock(&lock);
    if (fail) errno = fail;
    return fail != 0;
}

#define REAL(name, ret, params) \
    static ret(*real_##name) params; \
    if (!real_##name) real_##name = (ret(*) params)dlsym(RTLD_NEXT, #name)

static int open_common(const char *which, int dirfd, const char *path, int flags, mode_t mode) {
    if (inject(OPEN, (flags & (O_CREAT | O_WRONLY | O_RDWR)) && matches(path))) return -1;
    typedef int (*openat_t)(int, const char *, int, ...);
    openat_t real = (openat_t)dlsym(RTLD_NEXT, which);
    return real(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    if (inject(OPEN, (flags & (O_CREAT | O_WRONLY | O_RDWR)) && matches(path))) return -1;
    REAL(open, int, (const char *, int, ...));
    return real_open(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    if (inject(OPEN, (flags & (O_CREAT | O_WRONLY | O_RDWR)) && matches(path))) return -1;
    REAL(open64, int, (const char *, int, ...));
    return real_open64(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    return open_common("openat", dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, int); va_end(ap);
    return open_common("openat64", dirfd, path, flags, mode);
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (fd > 2 && inject(WRITE, fd_matches(fd))) {
        /* A write that hits a full disk often gets part of its bytes in first. */
        if (errno == ENOSPC && count > 1) {
            REAL(write, ssize_t, (int, const void *, size_t));
            real_write(fd, buf, count / 2);
            errno = ENOSPC;
        }
        return -1;
    }
    REAL(write, ssize_t, (int, const void *, size_t));
    return real_write(fd, buf, count);
}

/* The size of each file at its last fsync that succeeded, by descriptor. */
#define TRACKED 4096
static off_t synced_size[TRACKED];

static int sync_common(int fd, int (*real)(int)) {
    int relevant = fd_matches(fd);
    if (inject(FSYNC, relevant)) {
        int err = errno;
        if (fd >= 0 && fd < TRACKED && synced_size[fd] > 0) {
            REAL(ftruncate, int, (int, off_t));
            real_ftruncate(fd, synced_size[fd]);
        }
        errno = err;
        return -1;
    }
    int result = real(fd);
    struct stat st;
    if (result == 0 && relevant && fd >= 0 && fd < TRACKED && fstat(fd, &st) == 0)
        synced_size[fd] = st.st_size;
    return result;
}

int fsync(int fd) {
    REAL(fsync, int, (int));
    return sync_common(fd, real_fsync);
}

int fdatasync(int fd) {
    REAL(fdatasync, int, (int));
    return sync_common(fd, real_fdatasync);
}

int rename(const char *from, const char *to) {
    if (inject(RENAME, matches(to))) return -1;
    REAL(rename, int, (const char *, const char *));
    return real_rename(from, to);
}

int ftruncate(int fd, off_t length) {
    if (inject(FTRUNCATE, fd_matches(fd))) return -1;
    REAL(ftruncate, int, (int, off_t));
    return real_ftruncate(fd, length);
}

int ftruncate64(int fd, off_t length) {
    if (inject(FTRUNCATE, fd_matches(fd))) return -1;
    REAL(ftruncate64, int, (int, off_t));
    return real_ftruncate64(fd, length);
}
