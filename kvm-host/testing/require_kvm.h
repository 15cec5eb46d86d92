// For tests that boot VMs: skip with a clear message where /dev/kvm is not
// usable, but fail in CI (CI machines have /dev/kvm, so the tests must run).
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kvm-host/kvm.h"

#define KOS_REQUIRE_KVM()                                                                   \
    do {                                                                                    \
        std::string kos_kvm_why_;                                                           \
        if (!::kos::vmm::kvm_usable(&kos_kvm_why_)) {                                       \
            if (std::getenv("CI"))                                                          \
                FAIL() << "/dev/kvm is not usable in CI, where VM tests must run: "         \
                       << kos_kvm_why_;                                                     \
            GTEST_SKIP() << "VM test skipped: /dev/kvm is not usable here: " << kos_kvm_why_; \
        }                                                                                   \
    } while (0)
