/* libwl-plugin.so, built -O2 -fomit-frame-pointer: loaded by wl-dlopen
 * while it runs. plugin_outer -> plugin_spin. */
#include "common.h"

__attribute__((noinline)) void plugin_spin(void) { SPIN(1000000); }
__attribute__((noinline)) void plugin_outer(void) { plugin_spin(); __asm__ volatile(""); }
