#include "fake_kernel.h"
