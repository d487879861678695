/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the fuzz targets share (fuzz.c). Each target is one LLVMFuzzerTestOneInput that
 * hands its input to one of ephport's parsers of outside input, built with libFuzzer,
 * ASan and UBSan (make fuzz). Besides crashes and sanitizer reports, a target checks
 * what it can of the answer (FUZZ_ASSERT): a wrong answer fails it as a crash does.
 */
#ifndef EPHPORT_FUZZ_H
#define EPHPORT_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* the input as a C string (a NUL in it ends it early): free() it */
char *fuzz_str(const uint8_t *data, size_t size);
/*
 * The input cut at each NUL byte into at most max words, in one allocation (*buf,
 * free() it); the words after the max-th are left out. The number of words.
 */
size_t fuzz_split(const uint8_t *data, size_t size, char **words, size_t max, char **buf);

/* a property of an answer that must hold: the target aborts, and libFuzzer keeps the input */
#define FUZZ_ASSERT(c) ((c) ? (void)0 : fuzz_fail(#c, __FILE__, __LINE__))
void fuzz_fail(const char *what, const char *file, int line) __attribute__((noreturn));

#endif /* EPHPORT_FUZZ_H */
