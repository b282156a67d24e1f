/* Heap blocks that start on a 64-byte cache line (src/fastbp/_memory.py says
 * why for the Python side). malloc aligns to 16 bytes; mid-line, each 64-byte
 * vector access spans two lines, and threads writing side by side share the
 * line at their boundary. */
#ifndef FB_ALLOC_H
#define FB_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define FB_CACHE_LINE 64

/* The first line boundary at or after p (NULL stays NULL). */
static inline void* fb_line_start(void* p)
{
    return p == NULL ? NULL
                     : (void*)(((uintptr_t)p + FB_CACHE_LINE - 1) & ~(uintptr_t)(FB_CACHE_LINE - 1));
}

/* `bytes` from the first line boundary of a block a line larger; *held gets
 * the block, what free() takes. NULL when out of memory. */
static inline void* fb_alloc_lines(size_t bytes, void** held)
{
    *held = malloc(bytes + FB_CACHE_LINE);
    return fb_line_start(*held);
}

#endif
