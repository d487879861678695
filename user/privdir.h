/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The agent's own directories: root's alone (privdir.c). */
#ifndef EPHPORT_PRIVDIR_H
#define EPHPORT_PRIVDIR_H

#include <stdbool.h>
#include <sys/stat.h>

/* a directory owned by root or by us, that no one else may enter */
bool privdir_trusted(const struct stat *st);
/*
 * path as a directory of ours, mode 0700; anything else found there is moved
 * aside and removed, with a note on stderr. 0, or a negative errno after one line.
 */
int privdir_make(const char *path);
/* 0 if path is a trusted directory; -EPERM if it is not, or the errno of lstat */
int privdir_check(const char *path);

#endif /* EPHPORT_PRIVDIR_H */
