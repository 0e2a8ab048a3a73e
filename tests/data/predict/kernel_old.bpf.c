#define OLD 1
#include "fake_kernel.h"
