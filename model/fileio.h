/* Writing files so that a reader never sees half of one: write PATH.tmp,
 * fsync, rename over PATH; on any failure remove PATH.tmp and report one
 * line naming PATH and the problem. One implementation for every output
 * of freelunch (checkpoints, token files, JSON, copies). */
#ifndef FL_FILEIO_H
#define FL_FILEIO_H
#include <stddef.h>
#include <stdio.h>

/* Opens PATH.tmp for writing; *tmp receives its (malloc'd) name. NULL with
 * a message on failure. */
FILE *fl_tmp_open(const char *path, char **tmp);
/* Finishes a file from fl_tmp_open: `ok` says whether every write went
 * well. Flushes, syncs, closes, renames (or unlinks), frees tmp. */
int fl_tmp_commit(FILE *fp, char *tmp, const char *path, int ok);
/* A whole buffer, atomically. */
int fl_write_file_atomic(const char *path, const void *data, size_t n);
/* A copy of src at dst, atomically. */
int fl_copy_file_atomic(const char *src, const char *dst);

/* rm -rf PATH without a shell (a path is input: `system("rm -rf '...'")`
 * would run a quote in it as a command); symbolic links are removed, never
 * followed. 0 if PATH is gone afterwards (or never was), else -1 with a
 * message naming the first entry that could not be removed. */
int fl_remove_tree(const char *path);

/* mkdir -p: DIR and its missing parents; an error names DIR. */
int fl_mkdir_p(const char *dir);

/* The whole of PATH, NUL-terminated, malloc'd into *buf (len may be NULL);
 * -1 with a message naming PATH. */
int fl_read_file(const char *path, char **buf, size_t *len);
/* The last line of a text file with more than blanks (and gnuplot's '^'
 * markers), leading blanks trimmed; "" if none or unreadable. Error lines of
 * logs. */
void fl_last_line(const char *path, char *out, size_t n);

#endif
