// ErrorOr<T>: the result type of freestanding kos code (kernel, runtime,
// security engine). An error is a Linux errno value (positive), so the
// POSIX layer maps it 1:1; no exceptions, no allocation.
#pragma once

#include <stdint.h>

namespace kos {

struct Errno {
    int32_t code;
};

template <class T> class [[nodiscard]] ErrorOr {
public:
    ErrorOr(T value) : m_value(value), m_error(0) {}
    ErrorOr(Errno e) : m_value(), m_error(e.code) {}
    bool is_error() const { return m_error != 0; }
    explicit operator bool() const { return m_error == 0; }
    int32_t error() const { return m_error; }
    T value() const { return m_value; }
    T operator*() const { return m_value; }
    // As a native-call result: the value, or the negated errno.
    int64_t as_syscall_result() const {
        return m_error ? -static_cast<int64_t>(m_error) : static_cast<int64_t>(m_value);
    }

private:
    T m_value;
    int32_t m_error;
};

template <> class [[nodiscard]] ErrorOr<void> {
public:
    ErrorOr() : m_error(0) {}
    ErrorOr(Errno e) : m_error(e.code) {}
    bool is_error() const { return m_error != 0; }
    explicit operator bool() const { return m_error == 0; }
    int32_t error() const { return m_error; }
    int64_t as_syscall_result() const { return -static_cast<int64_t>(m_error); }

private:
    int32_t m_error;
};

} // namespace kos

// KOS_TRY_KERNEL(expr): returns the error of an ErrorOr from the enclosing
// function (which must return an ErrorOr), else yields nothing.
#define KOS_TRY_KERNEL(expr)                                                             \
    do {                                                                                 \
        auto kos_try_r_ = (expr);                                                        \
        if (kos_try_r_.is_error()) [[unlikely]]                                          \
            return ::kos::Errno{kos_try_r_.error()};                                     \
    } while (0)
