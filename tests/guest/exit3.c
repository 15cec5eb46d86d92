/* Exits with status 3: `kos run` must exit with the program's status. */
int main(void) { return 3; }
