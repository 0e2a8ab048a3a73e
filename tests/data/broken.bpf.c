/* Does not compile: the harness must report it, not crash. */
#include "vmlinux.h"
int oops(void *ctx) { return undefined_symbol; }
