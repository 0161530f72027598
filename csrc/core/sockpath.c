/*
 * The listener's socket path: the address, whether a live listener holds
 * it (decided from the kernel's socket table, never by connecting), making
 * it free for a bind, and unlinking only the socket file we bound.
 *
 * The rule throughout: never delete what might be someone else's. Anything
 * that is not a socket file, or a socket whose liveness cannot be told, is
 * refused and left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"

/* Linux marks listening sockets with this flag in /proc/net/unix. */
#define UNIX_FLAG_ACCEPTCON 0x10000ul
/* The St column: SS_UNCONNECTED, a bound socket that is not connected. */
#define UNIX_STATE_UNCONNECTED 1u

int tachyon_sockpath_addr(const char *path, struct sockaddr_un *addr)
{
	if (!path || !path[0])
		return -EINVAL;
	if (strlen(path) > sizeof addr->sun_path - 1)
		return -ENAMETOOLONG;
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, path, strlen(path) + 1);
	return 0;
}

/* The directory part of path made canonical (symlinks, "..", "//" gone) and
 * the last component, so two spellings of one socket file compare equal.
 * Returns 0 or -1 (the directory cannot be resolved). */
static int split_canonical(const char *path, char *dir, const char **base)
{
	char tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');
	*base = slash ? slash + 1 : path;
	if (!slash) {
		snprintf(tmp, sizeof tmp, ".");
	} else if (slash == path) {
		snprintf(tmp, sizeof tmp, "/");
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof tmp)
			return -1;
		memcpy(tmp, path, n);
		tmp[n] = '\0';
	}
	return realpath(tmp, dir) ? 0 : -1;
}

/*
 * Does a live socket hold path? Decided from the kernel's table of Unix
 * sockets, never by connecting: a probe connection would be accepted as a
 * live listener's one peer and break it. Returns 1 live, 0 stale, or
 * -errno when the table cannot be read (then nobody can tell, and the
 * caller must not delete the file).
 *
 * The table shows the path each socket was bound with, as its binder spelt
 * it. So the match is: same last component, and the same canonical
 * directory; a relative entry (bound relative to another process's working
 * directory) cannot be resolved from here and counts as a match. Erring
 * towards "live" only costs a refusal; erring towards "stale" would delete
 * a live listener's path. Sockets of other network namespaces are not in
 * our table: a listener there looks stale.
 */
static int path_has_listener(const char *path)
{
	char our_dir[PATH_MAX];
	const char *our_base;
	int have_dir = split_canonical(path, our_dir, &our_base) == 0;

	FILE *f = fopen("/proc/net/unix", "re");
	if (!f)
		return -errno;
	/* "Num RefCount Protocol Flags Type St Inode Path": the path is the
	 * rest of the line; a pathname socket's path has no NULs. */
	char line[PATH_MAX + 256];
	int live = 0;
	int first = 1;
	while (!live && fgets(line, sizeof line, f)) {
		size_t n = strlen(line);
		if (n && line[n - 1] == '\n')
			line[--n] = '\0';
		if (first) { /* the column titles */
			first = 0;
			continue;
		}
		unsigned long flags;
		unsigned st;
		int consumed = 0;
		if (sscanf(line, "%*s %*s %*s %lx %*s %x %*s %n", &flags, &st, &consumed) < 2 ||
		    consumed == 0)
			continue;
		/* A listening socket; or one bound but not (yet) listening, as a
		 * listener is between its bind and its listen: deleting its file
		 * would break it as surely. Accepted sockets (connected) share
		 * their listener's path and prove nothing once it is gone. */
		if (!(flags & UNIX_FLAG_ACCEPTCON) && st != UNIX_STATE_UNCONNECTED)
			continue;
		const char *entry = line + consumed;
		if (entry[0] == '\0' || entry[0] == '@') /* unbound or abstract */
			continue;
		if (strcmp(entry, path) == 0) {
			live = 1;
			break;
		}
		const char *slash = strrchr(entry, '/');
		const char *entry_base = slash ? slash + 1 : entry;
		if (strcmp(entry_base, our_base) != 0)
			continue;
		if (entry[0] != '/' || !have_dir) {
			live = 1; /* cannot resolve: assume it is ours */
			break;
		}
		char entry_dir[PATH_MAX];
		const char *ignored;
		if (split_canonical(entry, entry_dir, &ignored) < 0 || strcmp(entry_dir, our_dir) == 0)
			live = 1;
	}
	int rc = ferror(f) ? -EIO : live;
	fclose(f);
	return rc;
}

int tachyon_sockpath_clear(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISLNK(st.st_mode) || !S_ISSOCK(st.st_mode))
		return -EEXIST;
	int live = path_has_listener(path);
	if (live != 0)
		return -TACHYON_EBUSYPATH;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int tachyon_sockpath_id(const char *path, tachyon_file_id *id)
{
	memset(id, 0, sizeof *id);
#ifdef STATX_BTIME
	struct statx stx;
	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_INO | STATX_BTIME,
	          &stx) == 0) {
		if (!S_ISSOCK(stx.stx_mode))
			return -ENOTSOCK;
		id->dev = makedev(stx.stx_dev_major, stx.stx_dev_minor);
		id->ino = (ino_t)stx.stx_ino;
		if (stx.stx_mask & STATX_BTIME) {
			id->has_btime = 1;
			id->btime_sec = stx.stx_btime.tv_sec;
			id->btime_nsec = stx.stx_btime.tv_nsec;
		}
		return 0;
	}
	if (errno != ENOSYS && errno != EPERM) /* EPERM: a seccomp filter */
		return -errno;
#endif
	struct stat st;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	return 0;
}

/* After a stale-replacement by another listener the path is someone
 * else's: unlink only the very file we bound. */
void tachyon_sockpath_unlink_if(const char *path, const tachyon_file_id *bound)
{
	tachyon_file_id now;
	if (tachyon_sockpath_id(path, &now) < 0 || now.dev != bound->dev || now.ino != bound->ino)
		return;
	if (now.has_btime && bound->has_btime &&
	    (now.btime_sec != bound->btime_sec || now.btime_nsec != bound->btime_nsec))
		return;
	unlink(path);
}
