/*
 * tachyon/api.h - TACHYON_API, the mark on every function of the C API.
 *
 * The shared library is built with hidden visibility and
 * TACHYON_BUILDING_SHARED, so that exactly the marked functions leave it;
 * everywhere else (the static library, the Python extension, a program
 * including the headers) the mark is empty. Included by the public headers.
 */
#ifndef TACHYON_API_H
#define TACHYON_API_H

#ifndef TACHYON_API
#if defined(TACHYON_BUILDING_SHARED) && defined(__GNUC__)
#define TACHYON_API __attribute__((visibility("default")))
#else
#define TACHYON_API
#endif
#endif

#endif /* TACHYON_API_H */
