/* Spins forever: the run must be stopped by the wall-time limit. */
int main(void) { for (;;) { } }
