/* The LAPACK routines freelunch calls, declared once. OpenBLAS exports the
 * Fortran interface (with its own blocked, threaded potrf and trtri), so
 * every argument is a pointer, and each CHARACTER argument adds a hidden
 * length argument at the end of the list: gfortran passes these as size_t
 * (since GCC 8). Leaving them out happens to work on x86-64 today, but it is
 * undefined behaviour, and LAPACK built with newer compilers may read them. */
#ifndef FL_LAPACK_H
#define FL_LAPACK_H
#include <stddef.h>

/* Cholesky factor of a symmetric positive definite matrix (U^T U or L L^T). */
void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
/* Its inverse, from the Cholesky factor. */
void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
/* A solve with the Cholesky factor. */
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda, double *b,
             const int *ldb, int *info, size_t uplo_len);
/* Inverse of a triangular matrix. */
void strtri_(const char *uplo, const char *diag, const int *n, float *a, const int *lda, int *info,
             size_t uplo_len, size_t diag_len);

#endif
