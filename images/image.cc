// The guest image is assembled from the kos_microkernel library (boot code,
// kernel) and the embedded personality runtime; this translation unit only
// anchors the link.
extern "C" void kernel_main(unsigned long);
[[gnu::used]] static void (*const kos_image_entry_anchor)(unsigned long) = kernel_main;
