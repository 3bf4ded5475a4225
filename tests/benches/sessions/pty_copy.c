/*
 * The floor under any wrapper that interposes a pty: the least a program
 * can do between sshd's pty and a second one. It starts the command
 * (sshd's $SSH_ORIGINAL_COMMAND, else a shell) on a new pty, puts the
 * outer terminal in raw mode, and copies: one thread the pty's output to
 * stdout, one stdin to the pty, each a blocking 64 KiB read and one write
 * per read. No recording, no deadline, no checks.
 *
 * The sessions bench (tests/benches/sessions.rs) compiles it with `cc`
 * and runs it as a row's force-command, so the wrapper's rate can be read
 * against what a second pty leaves on the same machine in the same run.
 * A measuring tool only: never installed, never a force-command on a host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <pty.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int master;

static int write_all(int fd, const char *p, ssize_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, (size_t)n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= w;
	}
	return 0;
}

static void *keys(void *unused)
{
	char buf[4096];
	(void)unused;
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || write_all(master, buf, n) < 0)
			return NULL;
	}
}

int main(void)
{
	struct termios saved, raw;
	struct winsize ws;
	int tty = tcgetattr(0, &saved) == 0;
	int sized = ioctl(0, TIOCGWINSZ, &ws) == 0;
	pid_t child = forkpty(&master, NULL, tty ? &saved : NULL, sized ? &ws : NULL);
	if (child < 0)
		return 255;
	if (child == 0) {
		const char *cmd = getenv("SSH_ORIGINAL_COMMAND");
		if (cmd)
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		else
			execl("/bin/sh", "-sh", (char *)NULL);
		_exit(127);
	}
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(0, TCSANOW, &raw);
	}
	pthread_t t;
	pthread_create(&t, NULL, keys, NULL);
	static char buf[65536];
	for (;;) {
		ssize_t n = read(master, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		/* EIO: the pty's slave is closed everywhere. */
		if (n <= 0 || write_all(1, buf, n) < 0)
			break;
	}
	int status = 0;
	waitpid(child, &status, 0);
	if (tty)
		tcsetattr(0, TCSANOW, &saved);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
