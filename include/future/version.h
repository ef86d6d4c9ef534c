/* libfuture — version and export macros. */
#ifndef FUTURE_VERSION_H
#define FUTURE_VERSION_H

#define FUT_VERSION_MAJOR 0
#define FUT_VERSION_MINOR 1
#define FUT_VERSION_PATCH 0
#define FUT_VERSION_HEX                                                        \
  ((FUT_VERSION_MAJOR << 16) | (FUT_VERSION_MINOR << 8) | FUT_VERSION_PATCH)

#if defined(__GNUC__)
#define FUT_EXTERN __attribute__((visibility("default")))
#define FUT_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define FUT_EXTERN
#define FUT_PRINTF(fmt, args)
#endif

#ifdef __cplusplus
extern "C" {
#endif
/* The version of the library actually linked, as FUT_VERSION_HEX. */
FUT_EXTERN unsigned fut_version(void);
/* "MAJOR.MINOR.PATCH" of the linked library; static string. */
FUT_EXTERN const char *fut_version_string(void);
#ifdef __cplusplus
}
#endif
#endif
