/* Touches memory until the VM runs out: the run must end with the memory
 * limit named. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    for (size_t mib = 1;; ++mib) {
        char* p = malloc(1 << 20);
        if (!p) {
            printf("malloc failed at %zu MiB\n", mib);
            return 1;
        }
        memset(p, 1, 1 << 20);
    }
}
