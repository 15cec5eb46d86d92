/* The hello example: a static Linux program (built with musl-gcc -static)
 * that kos runs unmodified. */
#include <stdio.h>

int main(int argc, char** argv) {
    printf("Hello from kos: an unmodified Linux program in a kos microkernel VM.\n");
    for (int i = 1; i < argc; ++i)
        printf("argv[%d] = %s\n", i, argv[i]);
    return 0;
}
